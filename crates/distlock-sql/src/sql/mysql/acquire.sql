-- Takes the lock when its row is absent, released or expired, and issues the
-- next fencing token. Parameters: key, owner token, ttl in microseconds, then
-- the owner token and the ttl again (for the update branch).
-- Returns no rows. The outcome travels in the OK packet's last-insert-id,
-- set through LAST_INSERT_ID(expr): 1 for a new row, the new fence for a
-- taken-over row, 0 when someone holds the lock (the update branch then
-- rewrites the row with its own values and calls LAST_INSERT_ID(0)).
-- The assignments run left to right and each sees the ones before it, so
-- expires_at, which every condition reads, is assigned last.
-- UTC_TIMESTAMP(6) is the database clock at the start of the statement,
-- independent of the session time zone.
INSERT INTO `{table}` (name, owner, fence, expires_at)
VALUES (?, ?, LAST_INSERT_ID(1), UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND)
ON DUPLICATE KEY UPDATE
    owner      = IF(expires_at IS NULL OR expires_at <= UTC_TIMESTAMP(6), ?, owner),
    fence      = IF(expires_at IS NULL OR expires_at <= UTC_TIMESTAMP(6),
                    LAST_INSERT_ID(fence + 1),
                    fence + LAST_INSERT_ID(0)),
    expires_at = IF(expires_at IS NULL OR expires_at <= UTC_TIMESTAMP(6),
                    UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND,
                    expires_at)
