-- Stores the label of a session lock's exclusive holder (MySQL / MariaDB): an
-- elected leader's identity, in a holders row of kind 'l' living as long as
-- the hold's ttl (renewed with it, deleted at release). `{table}` is replaced.
-- Parameters: the name's row key, owner token, the hold's fencing token (the
-- leader's term), ttl in microseconds, the label; then the term, the ttl and
-- the label again (for a row left by an earlier grant of the same owner).
-- Returns nothing.
INSERT INTO `{table}_holders` (name, owner, kind, permits, expires_at, label)
VALUES (?, ?, 'l', ?, UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, ?)
ON DUPLICATE KEY UPDATE
    permits = ?,
    expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND,
    label = ?
