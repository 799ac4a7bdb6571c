-- Undoes an upgrade, second half (after downgrade.sql, in one transaction):
-- the exclusive hold is given up, and the reader it became is counted.
-- Parameters: key, owner token, the fencing token that upgrade took.
-- Matches one row when there was something to undo. The assignments run
-- left to right: shared_until takes the expiry before it is cleared.
UPDATE `{table}`
   SET shared_until = expires_at,
       shared_count = 1,
       owner = NULL,
       expires_at = NULL
 WHERE name = ?
   AND owner = ?
   AND fence = ?
   AND expires_at > UTC_TIMESTAMP(6)
