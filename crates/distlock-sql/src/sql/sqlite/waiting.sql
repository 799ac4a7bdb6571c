-- Reads who holds a lock, and where a waiter stands in its queue, for an
-- exclusive attempt that did not take it. ?1 = key, ?2 = owner token.
-- Returns at most one row: (owner, fence, label, remaining_ms, shared_ms) as
-- holder.sql, then (ahead, queued_ms): how many live places of the queue are
-- ahead of the owner's (every live place when it has none), and its own
-- place's time left (NULL when it has no live place). Places are holders
-- rows of kind 'q' (see holders/enqueue.sql), first come first served by
-- ticket (the permits column), then owner token.
SELECT owner,
       fence,
       label,
       expires_at - CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) AS remaining_ms,
       (SELECT MAX(h.expires_at)
          FROM "{table}_holders" h
         WHERE h.name = ?1
           AND h.kind IN ('s', 'p')
           AND h.expires_at > CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER))
       - CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) AS shared_ms,
       (SELECT COUNT(*)
          FROM "{table}_holders" q
         WHERE q.name = ?1
           AND q.kind = 'q'
           AND q.owner <> ?2
           AND q.expires_at > CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)
           AND NOT EXISTS (
               SELECT 1
                 FROM "{table}_holders" m
                WHERE m.name = ?1
                  AND m.owner = ?2
                  AND m.kind = 'q'
                  AND m.expires_at > CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)
                  AND (m.permits < q.permits
                       OR (m.permits = q.permits AND m.owner < q.owner)))) AS ahead,
       (SELECT m.expires_at - CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)
          FROM "{table}_holders" m
         WHERE m.name = ?1
           AND m.owner = ?2
           AND m.kind = 'q'
           AND m.expires_at > CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)) AS queued_ms
  FROM "{table}"
 WHERE name = ?1
