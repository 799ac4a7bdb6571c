-- Takes or keeps a waiter's place in the queue of a name's exclusive
-- waiters: a row of kind 'q', living the given time on the database clock,
-- whose permits column holds its ticket (the database clock, in microseconds
-- since the epoch, when the place was taken). Keeping a place keeps its
-- ticket, even one that lapsed (its waiter was held up, not gone).
-- Parameters: key, owner token, life in microseconds, then the life again.
-- Returns nothing.
INSERT INTO `{table}_holders` (name, owner, kind, permits, expires_at)
VALUES (?, ?, 'q',
        TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)),
        UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND)
ON DUPLICATE KEY UPDATE
    expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND
