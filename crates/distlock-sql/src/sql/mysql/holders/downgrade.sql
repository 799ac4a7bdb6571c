-- Undoes an upgrade whose caller went away before learning it happened, first
-- half: the exclusive hold of the owner is copied back into a reader row with
-- the same expiry. downgrade_free.sql follows in the same transaction.
-- Parameters: key, owner token, the fencing token that upgrade took (the
-- fence it read, plus one: a later upgrade of the same reader, which took a
-- greater one, is left alone). Returns nothing.
INSERT INTO `{table}_holders` (name, owner, kind, permits, expires_at)
SELECT name, owner, 's', 0, expires_at
  FROM `{table}`
 WHERE name = ?
   AND owner = ?
   AND fence = ?
   AND expires_at > UTC_TIMESTAMP(6)
