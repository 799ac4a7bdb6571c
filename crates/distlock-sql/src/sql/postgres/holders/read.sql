-- In a grant transaction, after lock.sql: deletes the name's readers, permits
-- and intents whose time has passed, and returns every other hold and intent.
-- $1 = key.
-- Returns one row per hold or intent: (kind, permits, owner, remaining_us,
-- fence): kind 'x' for the live exclusive holder (from the locks table),
-- otherwise the holders table's kind ('s', 'p', 'w') and permit count; fence
-- is the name's last fencing token, on every row. The deletion and the rows
-- returned use the same now(), so they are exactly the rows left.
WITH gone AS (
    DELETE FROM "{table}_holders"
     WHERE name = $1
       AND expires_at <= now()
)
SELECT 'x' AS kind,
       0::bigint AS permits,
       owner,
       (EXTRACT(EPOCH FROM (expires_at - now())) * 1000000)::bigint AS remaining_us,
       fence
  FROM "{table}"
 WHERE name = $1
   AND owner IS NOT NULL
   AND expires_at > now()
UNION ALL
SELECT h.kind,
       h.permits,
       h.owner,
       (EXTRACT(EPOCH FROM (h.expires_at - now())) * 1000000)::bigint,
       l.fence
  FROM "{table}_holders" h
  JOIN "{table}" l ON l.name = h.name
 WHERE h.name = $1
   AND h.expires_at > now()
