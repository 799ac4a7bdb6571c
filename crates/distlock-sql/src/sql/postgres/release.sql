-- Releases a held lock, keeping the row so the fencing token keeps rising, and
-- notifies the waiters listening on channel $3 (the table name) with the key as
-- payload; the notification is delivered when the statement commits.
-- $1 = key, $2 = owner token, $3 = channel.
-- Returns one row when the owner still held an unexpired lease, none otherwise.
WITH released AS (
    UPDATE "{table}"
       SET owner = NULL,
           expires_at = NULL
     WHERE name = $1
       AND owner = $2
       AND expires_at > now()
    RETURNING name
)
SELECT length(pg_notify($3, name)::text) AS notified
  FROM released
