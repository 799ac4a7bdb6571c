-- Reads who holds a lock. ? = key, twice.
-- Returns at most one row: (owner, fence, label, remaining_us, shared_us), where
-- remaining_us is the exclusive holder's time left on the database clock (zero
-- or negative when expired, NULL when released) and shared_us the time left of
-- the longest-lived reader or permit holder (NULL when none lives), and label
-- the exclusive holder's label (meaningful only while it holds).
SELECT l.owner,
       l.fence,
       l.label,
       TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), l.expires_at) AS remaining_us,
       (SELECT TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), MAX(h.expires_at))
          FROM `{table}_holders` h
         WHERE h.name = ?
           AND h.kind IN ('s', 'p')
           AND h.expires_at > UTC_TIMESTAMP(6)
           AND l.shared_until > UTC_TIMESTAMP(6)) AS shared_us
  FROM `{table}` l
 WHERE l.name = ?
