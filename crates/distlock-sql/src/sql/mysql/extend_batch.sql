-- Extends several held locks in one statement, each to its own ttl.
-- {rows} is `SELECT ? AS name, ? AS owner, ? AS ttl_us` for the first lease
-- and ` UNION ALL SELECT ?, ?, ?` for each further one: key, owner token, ttl
-- in microseconds. The (key, owner) pairs are distinct and sorted by key, so
-- concurrent batches lock rows in the same order.
-- Matches one row per lock whose owner still holds an unexpired lease, and
-- extends exactly those (sqlx asks for found rows: the count is of rows
-- matched). MySQL has no RETURNING on UPDATE: when the count falls short of
-- the batch, held_batch.sql tells which were extended.
-- UTC_TIMESTAMP(6) is the database clock at the start of the statement.
UPDATE `{table}` AS l
  JOIN ({rows}) AS b
    ON l.name = b.name
   AND l.owner = b.owner
   SET l.expires_at = UTC_TIMESTAMP(6) + INTERVAL b.ttl_us MICROSECOND
 WHERE l.expires_at > UTC_TIMESTAMP(6)
