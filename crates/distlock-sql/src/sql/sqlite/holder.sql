-- Reads who holds a lock. ?1 = key.
-- Returns at most one row: (owner, fence, label, remaining_ms, shared_ms), where
-- remaining_ms is the exclusive holder's time left on the database clock (zero
-- or negative when expired, NULL when released) and shared_ms the time left of
-- the longest-lived reader or permit holder (NULL when none lives), and label
-- the exclusive holder's label (meaningful only while it holds).
SELECT owner,
       fence,
       label,
       expires_at - CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) AS remaining_ms,
       (SELECT MAX(h.expires_at)
          FROM "{table}_holders" h
         WHERE h.name = ?1
           AND h.kind IN ('s', 'p')
           AND h.expires_at > CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER))
       - CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) AS shared_ms
  FROM "{table}"
 WHERE name = ?1
