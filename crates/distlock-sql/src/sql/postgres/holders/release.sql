-- Releases a reader or permit holder, and notifies the waiters listening on
-- channel $3 (the table name) with the key. $1 = key, $2 = owner token.
-- Returns one row when the owner still held it unexpired, none otherwise.
-- The name's row is locked first (as every change to its holders does), and
-- judged on its latest version: a hold whose row the exclusive acquire
-- cleared (shared_until) is gone, whatever its own expiry says.
WITH locked AS (
    SELECT name
      FROM "{table}"
     WHERE name = $1
       AND shared_until > now()
       FOR UPDATE
), gone AS (
    DELETE FROM "{table}_holders" h
     USING locked
     WHERE h.name = locked.name
       AND h.owner = $2
       AND h.kind IN ('s', 'p')
       AND h.expires_at > now()
    RETURNING h.name
), counted AS (
    UPDATE "{table}" AS l
       SET shared_count = greatest(l.shared_count - 1, 0)
      FROM gone
     WHERE l.name = gone.name
)
SELECT length(pg_notify($3, name)::text) AS notified
  FROM gone
