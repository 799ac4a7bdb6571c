-- Records (or refreshes) a waiting writer's intent: while it lives, no new
-- reader or permit is granted. Parameters: key, owner token, how long it
-- lives in microseconds, then that time again (for the update branch).
-- Returns nothing.
INSERT INTO `{table}_holders` (name, owner, kind, permits, expires_at)
VALUES (?, ?, 'w', 0, UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND)
ON DUPLICATE KEY UPDATE
    expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND
