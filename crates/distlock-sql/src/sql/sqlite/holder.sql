-- Reads who holds a lock. ?1 = key.
-- Returns at most one row: (owner, fence, remaining_ms), where remaining_ms is
-- the holder's time left on the database clock (zero or negative when expired,
-- NULL when released).
SELECT owner,
       fence,
       expires_at - CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) AS remaining_ms
  FROM "{table}"
 WHERE name = ?1
