-- Takes the lock exclusively (the mutex, the writer) when its row is absent,
-- or released or expired with no reader or permit holder alive and it is the
-- owner's turn in the queue of waiters, and issues the next fencing token.
-- ?1 = key, ?2 = owner token, ?3 = ttl in milliseconds, ?4 = the holder's label
-- (an elected leader's identity; NULL for none).
-- Returns one row (fence) when acquired, no row when someone holds it (or
-- another waiter goes first).
-- The readers' check is one primary-key range probe of the holders table.
-- The queue: places are holders rows of kind 'q' (see holders/enqueue.sql),
-- first come first served by ticket, then owner token. It is the owner's
-- turn when no live place of another owner is ahead of its own live place
-- (with no place of its own, every live place is ahead).
-- Holders and places exist only for names whose row exists (a grant creates
-- it first; waiters queue for a row they found held), so the insert branch
-- needs neither check.
-- "Now" is the database clock: julianday('now') in milliseconds since the epoch,
-- fixed for the whole statement, read once the statement holds the write lock.
INSERT INTO "{table}" AS l (name, owner, fence, expires_at, label)
VALUES (?1, ?2, 1, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) + ?3, ?4)
ON CONFLICT (name) DO UPDATE
   SET owner = excluded.owner,
       fence = l.fence + 1,
       expires_at = excluded.expires_at,
       label = excluded.label
 WHERE (l.expires_at IS NULL
        OR l.expires_at <= CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER))
   AND NOT EXISTS (
       SELECT 1
         FROM "{table}_holders" h
        WHERE h.name = ?1
          AND h.kind IN ('s', 'p')
          AND h.expires_at > CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER))
   AND NOT EXISTS (
       SELECT 1
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
                      OR (m.permits = q.permits AND m.owner < q.owner))))
RETURNING fence
