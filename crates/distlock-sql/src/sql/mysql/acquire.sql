-- Takes the lock exclusively (the mutex, the writer) when its row is absent,
-- or released or expired with no reader or permit holder alive and it is the
-- owner's turn in the queue of waiters, and issues the next fencing token.
-- Parameters: key, owner token, ttl in microseconds, label (the insert
-- branch); the owner token twice (the queue check); the owner token, five
-- times; the ttl again; the owner token and the label again. The label is the
-- holder's (an elected leader's identity), NULL for none.
-- Returns no rows. The outcome travels in the OK packet's last-insert-id,
-- set through LAST_INSERT_ID(expr): 1 for a new row, the new fence for a
-- taken-over row, 0 when someone holds the lock (or another waiter goes
-- first; the update branch then rewrites the row with its own values and
-- calls LAST_INSERT_ID(0)).
-- Readers and permit holders are judged by the row's own shared_count and
-- shared_until (kept by their grants, renewals and releases), on the row the
-- statement locks anyway. Taking the row clears them, so that a reader whose
-- time ran out can never be renewed.
-- The queue: places are {table}_holders rows of kind 'q' (see enqueue.sql),
-- first come first served by ticket, then owner token. It is the owner's
-- turn when no live place of another owner is ahead of its own live place
-- (with no place of its own, every live place is ahead). A name's row exists
-- before anyone queues for it, so the insert branch needs no such check. The
-- check refers to the row (`{table}`.name): InnoDB then reads the places
-- after it locked the row, as every statement on a name's holders does (a
-- check on bound values alone is evaluated, and locks the places it reads,
-- before the row is locked: a deadlock with a grant transaction).
-- The first assignment decides, once, on the row as it was; the others see
-- its outcome in `owner` (a new owner token is this acquire's own: no row
-- holds it before).
-- UTC_TIMESTAMP(6) is the database clock at the start of the statement,
-- independent of the session time zone.
INSERT INTO `{table}` (name, owner, fence, expires_at, label)
VALUES (?, ?, LAST_INSERT_ID(1), UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, ?)
ON DUPLICATE KEY UPDATE
    owner        = IF((expires_at IS NULL OR expires_at <= UTC_TIMESTAMP(6))
                      AND (shared_count = 0 OR shared_until IS NULL
                           OR shared_until <= UTC_TIMESTAMP(6))
                      AND NOT EXISTS (
                          SELECT 1
                            FROM `{table}_holders` q
                           WHERE q.name = `{table}`.name
                             AND q.kind = 'q'
                             AND q.owner <> ?
                             AND q.expires_at > UTC_TIMESTAMP(6)
                             AND NOT EXISTS (
                                 SELECT 1
                                   FROM `{table}_holders` m
                                  WHERE m.name = `{table}`.name
                                    AND m.owner = ?
                                    AND m.kind = 'q'
                                    AND m.expires_at > UTC_TIMESTAMP(6)
                                    AND (m.permits < q.permits
                                         OR (m.permits = q.permits AND m.owner < q.owner)))),
                      ?, owner),
    fence        = IF(owner <=> ?, LAST_INSERT_ID(fence + 1), fence + LAST_INSERT_ID(0)),
    shared_until = IF(owner <=> ?, NULL, shared_until),
    shared_count = IF(owner <=> ?, 0, shared_count),
    expires_at   = IF(owner <=> ?, UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, expires_at),
    label        = IF(owner <=> ?, ?, label)
