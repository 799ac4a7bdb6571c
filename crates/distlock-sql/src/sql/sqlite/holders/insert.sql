-- In a grant transaction: adds a reader or permit holder.
-- ?1 = key, ?2 = owner token, ?3 = kind ('s' or 'p'), ?4 = permit count (0 for
-- a reader), ?5 = ttl in milliseconds. Returns nothing.
INSERT INTO "{table}_holders" (name, owner, kind, permits, expires_at)
VALUES (?1, ?2, ?3, ?4, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) + ?5)
