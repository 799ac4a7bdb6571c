-- Takes the lock exclusively (the mutex, the writer) when its row is absent,
-- or released or expired with no reader or permit holder alive, and issues
-- the next fencing token; otherwise reports how long the holders have left.
-- $1 = key, $2 = owner token, $3 = ttl in microseconds, $4 = the holder's
-- label (an elected leader's identity; NULL for none), $5 = the channel of
-- labelled grants.
-- Returns one row (acquired, fence, remaining_us, shared_us, notified): (true,
-- new fence, NULL, NULL, _) when acquired; (false, fence, the exclusive
-- holder's time left, the readers' or permit holders' time left, NULL) when
-- held, each time NULL when that kind of holder is absent. It returns no row in one corner: the row was
-- inserted by a transaction that committed after this statement's snapshot.
-- Readers and permit holders are judged by the row's own shared_count and
-- shared_until (kept by their grants, renewals and releases): the one extra
-- check on the mutex path, on the row the statement reads anyway. Taking the
-- row clears them, so that a reader whose time ran out can never be renewed.
-- The NOT EXISTS pre-check keeps an attempt on a visibly held lock read-only:
-- without it, ON CONFLICT DO UPDATE would lock the holder's row (a WAL write
-- and a commit flush) even when its WHERE refuses the update. The guard in
-- DO UPDATE ... WHERE, evaluated on the latest row version, is what decides.
-- A labelled grant (leader election) notifies channel $5 with the key, for
-- observers; delivered when the statement commits. An unlabelled one sends
-- nothing (CASE evaluates pg_notify only for a label).
-- now() is the database clock at the start of the statement.
WITH taken AS (
    INSERT INTO "{table}" AS l (name, owner, fence, expires_at, label)
    SELECT $1, $2, 1, now() + make_interval(secs => $3::float8 / 1000000), $4::text
     WHERE NOT EXISTS (
           SELECT 1
             FROM "{table}" h
            WHERE h.name = $1
              AND (h.expires_at > now()
                   OR (h.shared_count > 0 AND h.shared_until > now())))
    ON CONFLICT (name) DO UPDATE
       SET owner = EXCLUDED.owner,
           fence = l.fence + 1,
           expires_at = EXCLUDED.expires_at,
           label = EXCLUDED.label,
           shared_count = 0,
           shared_until = NULL
     WHERE (l.expires_at IS NULL OR l.expires_at <= now())
       AND (l.shared_count = 0 OR l.shared_until IS NULL OR l.shared_until <= now())
    RETURNING l.fence
)
SELECT true AS acquired, fence, NULL::bigint AS remaining_us, NULL::bigint AS shared_us,
       CASE WHEN $4::text IS NOT NULL THEN length(pg_notify($5, $1)::text) END AS notified
  FROM taken
UNION ALL
SELECT false,
       l.fence,
       (EXTRACT(EPOCH FROM (l.expires_at - now())) * 1000000)::bigint,
       CASE WHEN l.shared_count > 0
            THEN (EXTRACT(EPOCH FROM (l.shared_until - now())) * 1000000)::bigint
       END,
       NULL::int
  FROM "{table}" l
 WHERE l.name = $1
   AND NOT EXISTS (SELECT 1 FROM taken)
