-- Undoes an upgrade, second half (after downgrade.sql, in one transaction):
-- the exclusive hold is given up. ?1 = key, ?2 = owner token, ?3 = the
-- fencing token that upgrade took. Affects one row when there was something
-- to undo.
UPDATE "{table}"
   SET owner = NULL,
       expires_at = NULL
 WHERE name = ?1
   AND owner = ?2
   AND fence = ?3
   AND expires_at > CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)
