-- Keeps a held lock until a new expiry, $3 from now: it was released before
-- its lock-at-least-for minimum, which this is what is left of. Notifies the
-- waiters listening on channel $4 (the table name) with the key, so that those
-- sleeping until the old expiry look again and sleep until the new one.
-- $1 = key, $2 = owner token, $3 = how long to keep it, in microseconds,
-- $4 = channel.
-- Returns one row when the owner still held an unexpired lease, none otherwise.
WITH kept AS (
    UPDATE "{table}"
       SET expires_at = now() + make_interval(secs => $3::float8 / 1000000)
     WHERE name = $1
       AND owner = $2
       AND expires_at > now()
    RETURNING name
)
SELECT length(pg_notify($4, name)::text) AS notified
  FROM kept
