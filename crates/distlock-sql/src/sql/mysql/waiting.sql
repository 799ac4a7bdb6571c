-- Reads who holds a lock, and where a waiter stands in its queue, for an
-- exclusive attempt that did not take it. Parameters: owner token, three
-- times; key.
-- Returns at most one row: (owner, fence, label, remaining_us, shared_us) as
-- holder.sql, then (ahead, queued_us): how many live places of the queue are
-- ahead of the owner's (every live place when it has none), and its own
-- place's time left (NULL when it has no live place). Places are
-- {table}_holders rows of kind 'q' (see enqueue.sql), first come first
-- served by ticket (the permits column), then owner token.
SELECT l.owner,
       l.fence,
       l.label,
       TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), l.expires_at) AS remaining_us,
       (SELECT TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), MAX(h.expires_at))
          FROM `{table}_holders` h
         WHERE h.name = l.name
           AND h.kind IN ('s', 'p')
           AND h.expires_at > UTC_TIMESTAMP(6)
           AND l.shared_until > UTC_TIMESTAMP(6)) AS shared_us,
       (SELECT COUNT(*)
          FROM `{table}_holders` q
         WHERE q.name = l.name
           AND q.kind = 'q'
           AND q.owner <> ?
           AND q.expires_at > UTC_TIMESTAMP(6)
           AND NOT EXISTS (
               SELECT 1
                 FROM `{table}_holders` m
                WHERE m.name = l.name
                  AND m.owner = ?
                  AND m.kind = 'q'
                  AND m.expires_at > UTC_TIMESTAMP(6)
                  AND (m.permits < q.permits
                       OR (m.permits = q.permits AND m.owner < q.owner)))) AS ahead,
       (SELECT TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), m.expires_at)
          FROM `{table}_holders` m
         WHERE m.name = l.name
           AND m.owner = ?
           AND m.kind = 'q'
           AND m.expires_at > UTC_TIMESTAMP(6)) AS queued_us
  FROM `{table}` l
 WHERE l.name = ?
