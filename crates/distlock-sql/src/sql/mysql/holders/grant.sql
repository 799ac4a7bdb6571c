-- In a grant transaction, after insert.sql: issues the next fencing token to
-- the new reader or permit holder and counts it in the row. The exclusive
-- hold was found absent or expired; clearing it here means an expired
-- writer's lease can never be extended again.
-- Parameters: how many readers or permit holders hold the name with this one
-- (the rows read.sql returned, plus one), ttl in microseconds, key.
-- Returns no rows: the new fence travels in the OK packet's last-insert-id
-- (LAST_INSERT_ID(expr)). shared_until is computed after insert.sql's expiry,
-- so it is never earlier.
UPDATE `{table}`
   SET fence = LAST_INSERT_ID(fence + 1),
       owner = NULL,
       expires_at = NULL,
       shared_count = ?,
       shared_until = GREATEST(COALESCE(shared_until, UTC_TIMESTAMP(6)),
                               UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND)
 WHERE name = ?
