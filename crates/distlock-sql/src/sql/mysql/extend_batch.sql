-- Extends several held locks in one statement, each to its own ttl.
-- ? = the batch as one JSON array with one [key in hex, owner token, ttl in
-- microseconds] per lease (one parameter, whatever the batch's size). The
-- (key, owner) pairs are distinct and sorted by key; STRAIGHT_JOIN reads the
-- batch first and locks the rows in that order, so concurrent batches lock
-- them in the same order, each through the primary key.
-- Matches one row per lock whose owner still holds an unexpired lease, and
-- extends exactly those (sqlx asks for found rows: the count is of rows
-- matched). MySQL has no RETURNING on UPDATE: when the count falls short of
-- the batch, held_batch.sql tells which were extended.
-- UTC_TIMESTAMP(6) is the database clock at the start of the statement.
UPDATE JSON_TABLE(?, '$[*]' COLUMNS (
           name_hex VARCHAR(510) PATH '$[0]',
           owner    VARCHAR(64)  PATH '$[1]',
           ttl_us   BIGINT       PATH '$[2]')) AS b
  STRAIGHT_JOIN `{table}` AS l
    ON l.name = UNHEX(b.name_hex)
   AND l.owner = b.owner
   SET l.expires_at = UTC_TIMESTAMP(6) + INTERVAL b.ttl_us MICROSECOND
 WHERE l.expires_at > UTC_TIMESTAMP(6)
