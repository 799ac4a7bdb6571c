-- Records (or refreshes) a waiting writer's intent: while it lives, no new
-- reader or permit is granted. $1 = key, $2 = owner token, $3 = how long it
-- lives, in microseconds. Returns nothing.
INSERT INTO "{table}_holders" (name, owner, kind, permits, expires_at)
VALUES ($1, $2, 'w', 0, now() + make_interval(secs => $3::float8 / 1000000))
ON CONFLICT (name, owner, kind) DO UPDATE
   SET expires_at = EXCLUDED.expires_at
