-- In a grant transaction, after read.sql: adds a reader or permit holder and
-- issues it the next fencing token. The exclusive hold was found absent or
-- expired; clearing it here means an expired writer's lease can never be
-- extended again.
-- $1 = key, $2 = owner token, $3 = kind ('s' or 'p'), $4 = permit count (0 for
-- a reader), $5 = ttl in microseconds, $6 = how many readers or permit holders
-- hold the name with this one (the rows read.sql left, plus one).
-- Returns one row (fence).
WITH added AS (
    INSERT INTO "{table}_holders" (name, owner, kind, permits, expires_at)
    VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5::float8 / 1000000))
    RETURNING expires_at
)
UPDATE "{table}" AS l
   SET fence = l.fence + 1,
       owner = NULL,
       expires_at = NULL,
       shared_count = $6,
       shared_until = greatest(l.shared_until, (SELECT expires_at FROM added))
 WHERE l.name = $1
RETURNING l.fence
