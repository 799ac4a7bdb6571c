-- Extends several readers and permit holders in one statement, each to its
-- own ttl. ?1 = the batch as one JSON array with one [key, owner token, ttl in
-- milliseconds] per lease; the (key, owner) pairs are distinct.
-- Returns one row (name, owner) per hold extended: those whose owner still
-- holds them unexpired. A lease missing from the answer was released or
-- expired, and stays that way.
WITH batch(key, owner, ttl_ms) AS (
    SELECT json_extract(value, '$[0]'),
           json_extract(value, '$[1]'),
           json_extract(value, '$[2]')
      FROM json_each(?1))
UPDATE "{table}_holders" AS h
   SET expires_at = CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) + batch.ttl_ms
  FROM batch
 WHERE h.name = batch.key
   AND h.owner = batch.owner
   AND h.kind IN ('s', 'p')
   AND h.expires_at > CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)
RETURNING name, owner
