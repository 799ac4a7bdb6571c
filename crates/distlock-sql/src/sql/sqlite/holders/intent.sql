-- Records (or refreshes) a waiting writer's intent: while it lives, no new
-- reader or permit is granted. ?1 = key, ?2 = owner token, ?3 = how long it
-- lives, in milliseconds. Returns nothing.
INSERT INTO "{table}_holders" (name, owner, kind, permits, expires_at)
VALUES (?1, ?2, 'w', 0, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) + ?3)
ON CONFLICT (name, owner, kind) DO UPDATE
   SET expires_at = excluded.expires_at
