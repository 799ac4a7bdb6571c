-- Undoes an upgrade whose caller went away before learning it happened: the
-- exclusive hold of $2 becomes a reader again, with the same expiry, and the
-- waiters listening on channel $3 are notified. $1 = key, $2 = owner token,
-- $3 = channel, $4 = the fencing token that upgrade took (the fence it read,
-- plus one): a later upgrade of the same reader, which took a greater one,
-- is left alone. Returns one row when there was something to undo.
WITH old AS (
    SELECT name, expires_at
      FROM "{table}"
     WHERE name = $1
       AND owner = $2
       AND fence = $4
       AND expires_at > now()
       FOR UPDATE
), back AS (
    INSERT INTO "{table}_holders" (name, owner, kind, permits, expires_at)
    SELECT name, $2, 's', 0, expires_at
      FROM old
), freed AS (
    UPDATE "{table}" AS l
       SET owner = NULL,
           expires_at = NULL,
           shared_count = 1,
           shared_until = old.expires_at
      FROM old
     WHERE l.name = old.name
    RETURNING l.name
)
SELECT length(pg_notify($3, name)::text) AS notified
  FROM freed
