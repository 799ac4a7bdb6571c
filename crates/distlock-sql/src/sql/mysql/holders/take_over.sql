-- In an upgrade transaction, after drop_own.sql: makes the reader (now the
-- only holder) the exclusive holder, with the next fencing token and no label.
-- Parameters: owner token, ttl in microseconds, key.
-- Returns no rows: the new fence travels in the OK packet's last-insert-id.
UPDATE `{table}`
   SET fence = LAST_INSERT_ID(fence + 1),
       owner = ?,
       expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND,
       shared_count = 0,
       shared_until = NULL,
       label = NULL
 WHERE name = ?
