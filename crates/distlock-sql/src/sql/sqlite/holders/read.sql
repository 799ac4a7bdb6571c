-- In a grant transaction, after expire.sql: every hold on the name and every
-- waiting writer's intent (not the exclusive waiters' queue places, which
-- are no holds: kind 'q'). ?1 = key.
-- Returns one row per hold or intent: (kind, permits, owner, remaining_ms,
-- fence): kind 'x' for the live exclusive holder (from the locks table),
-- otherwise the holders table's kind ('s', 'p', 'w') and permit count; fence
-- is the name's last fencing token, on every row. Every holders row left by
-- expire.sql counts as live, even if its time ran out since.
SELECT 'x' AS kind,
       0 AS permits,
       owner,
       expires_at - CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) AS remaining_ms,
       fence
  FROM "{table}"
 WHERE name = ?1
   AND owner IS NOT NULL
   AND expires_at > CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)
UNION ALL
SELECT h.kind,
       h.permits,
       h.owner,
       h.expires_at - CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER),
       l.fence
  FROM "{table}_holders" h
  JOIN "{table}" l ON l.name = h.name
 WHERE h.name = ?1
   AND h.kind <> 'q'
