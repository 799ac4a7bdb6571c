-- In a grant transaction, after expire.sql: every hold on the name and every
-- waiting writer's intent (not the exclusive waiters' queue places, which
-- are no holds: kind 'q'). ? = key, twice.
-- Returns one row per hold or intent: (kind, permits, owner, remaining_us,
-- fence): kind 'x' for the live exclusive holder (from the locks table),
-- otherwise the holders table's kind ('s', 'p', 'w') and permit count; fence
-- is the name's last fencing token, on every row. Every holders row left by
-- expire.sql counts as live, even if its time ran out since.
-- A consistent read: the transaction's snapshot is taken here, after lock.sql
-- locked the name's row, so it holds every change to the name's readers and
-- permits (each of which locks that row first).
SELECT CAST('x' AS BINARY) AS kind,
       CAST(0 AS UNSIGNED) AS permits,
       owner,
       TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), expires_at) AS remaining_us,
       fence
  FROM `{table}`
 WHERE name = ?
   AND owner IS NOT NULL
   AND expires_at > UTC_TIMESTAMP(6)
UNION ALL
SELECT h.kind,
       h.permits,
       h.owner,
       TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), h.expires_at),
       l.fence
  FROM `{table}_holders` h
  JOIN `{table}` l ON l.name = h.name
 WHERE h.name = ?
   AND h.kind <> 'q'
