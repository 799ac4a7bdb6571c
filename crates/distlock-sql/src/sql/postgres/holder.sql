-- Reads who holds a lock. $1 = key.
-- Returns at most one row: (owner, fence, label, remaining_us, shared_us), where
-- remaining_us is the exclusive holder's time left on the database clock (zero
-- or negative when expired, NULL when released) and shared_us the time left of
-- the longest-lived reader or permit holder (NULL when none lives), and label
-- the exclusive holder's label (meaningful only while it holds).
SELECT l.owner,
       l.fence,
       l.label,
       (EXTRACT(EPOCH FROM (l.expires_at - now())) * 1000000)::bigint AS remaining_us,
       (SELECT (EXTRACT(EPOCH FROM (max(h.expires_at) - now())) * 1000000)::bigint
          FROM "{table}_holders" h
         WHERE h.name = $1
           AND h.kind IN ('s', 'p')
           AND h.expires_at > now()
           AND l.shared_until > now()) AS shared_us
  FROM "{table}" l
 WHERE l.name = $1
