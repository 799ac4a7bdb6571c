-- In a grant transaction: adds a reader or permit holder.
-- Parameters: key, owner token, kind ('s' or 'p'), permit count (0 for a
-- reader), ttl in microseconds. Returns nothing.
INSERT INTO `{table}_holders` (name, owner, kind, permits, expires_at)
VALUES (?, ?, ?, ?, UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND)
