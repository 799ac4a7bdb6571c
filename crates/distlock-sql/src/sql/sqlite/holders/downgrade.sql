-- Undoes an upgrade whose caller went away before learning it happened, first
-- half: the exclusive hold of ?2 is copied back into a reader row with the
-- same expiry. free.sql follows in the same transaction. ?1 = key, ?2 = owner
-- token, ?3 = the fencing token that upgrade took (the fence it read, plus
-- one: a later upgrade of the same reader, which took a greater one, is left
-- alone). Returns nothing.
INSERT INTO "{table}_holders" (name, owner, kind, permits, expires_at)
SELECT name, owner, 's', 0, expires_at
  FROM "{table}"
 WHERE name = ?1
   AND owner = ?2
   AND fence = ?3
   AND expires_at > CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)
