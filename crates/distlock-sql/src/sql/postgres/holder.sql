-- Reads who holds a lock. $1 = key.
-- Returns at most one row: (owner, fence, remaining_us), where remaining_us is
-- the holder's time left on the database clock (zero or negative when expired,
-- NULL when released).
SELECT owner,
       fence,
       (EXTRACT(EPOCH FROM (expires_at - now())) * 1000000)::bigint AS remaining_us
  FROM "{table}"
 WHERE name = $1
