-- Keeps a session lock's hold after its release, until its lock-at-least-for
-- time (MySQL / MariaDB): a holders row of kind 'a' that every grant
-- respects, living on the database clock with no client. `{table}` is
-- replaced.
-- Parameters: the name's row key, owner token, the hold's fencing token, how
-- long to keep it in microseconds; that time again.
-- Returns nothing.
INSERT INTO `{table}_holders` (name, owner, kind, permits, expires_at, label)
VALUES (?, ?, 'a', ?, UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, NULL)
ON DUPLICATE KEY UPDATE
    expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND
