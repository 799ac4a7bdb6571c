-- Reads who holds a lock. ? = key.
-- Returns at most one row: (owner, fence, remaining_us), where remaining_us is
-- the holder's time left on the database clock (zero or negative when expired,
-- NULL when released).
SELECT owner,
       fence,
       TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), expires_at) AS remaining_us
  FROM `{table}`
 WHERE name = ?
