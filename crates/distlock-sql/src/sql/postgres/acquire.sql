-- Takes the lock when its row is absent, released or expired, and issues the
-- next fencing token; otherwise reports how long the holder has left.
-- $1 = key, $2 = owner token, $3 = ttl in microseconds.
-- Returns one row (acquired, fence, remaining_us): (true, new fence, NULL) when
-- acquired; (false, holder's fence, holder's time left) when held. It returns
-- no row in one corner: the row was inserted by a transaction that committed
-- after this statement's snapshot, and is held.
-- The NOT EXISTS pre-check keeps an attempt on a visibly held lock read-only:
-- without it, ON CONFLICT DO UPDATE would lock the holder's row (a WAL write
-- and a commit flush) even when its WHERE refuses the update. The guard in
-- DO UPDATE ... WHERE, evaluated on the latest row version, is what decides.
-- now() is the database clock at the start of the statement.
WITH taken AS (
    INSERT INTO "{table}" AS l (name, owner, fence, expires_at)
    SELECT $1, $2, 1, now() + make_interval(secs => $3::float8 / 1000000)
     WHERE NOT EXISTS (
           SELECT 1
             FROM "{table}" h
            WHERE h.name = $1
              AND h.expires_at > now())
    ON CONFLICT (name) DO UPDATE
       SET owner = EXCLUDED.owner,
           fence = l.fence + 1,
           expires_at = EXCLUDED.expires_at
     WHERE l.expires_at IS NULL OR l.expires_at <= now()
    RETURNING l.fence
)
SELECT true AS acquired, fence, NULL::bigint AS remaining_us
  FROM taken
UNION ALL
SELECT false, l.fence, (EXTRACT(EPOCH FROM (l.expires_at - now())) * 1000000)::bigint
  FROM "{table}" l
 WHERE l.name = $1
   AND NOT EXISTS (SELECT 1 FROM taken)
