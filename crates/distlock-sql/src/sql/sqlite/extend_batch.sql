-- Extends several held locks in one statement, each to its own ttl.
-- ?1 = the batch as one JSON array with one [key, owner token, ttl in
-- milliseconds] per lease (one parameter, whatever the batch's size); the
-- (key, owner) pairs are distinct.
-- Returns one row (name, owner) per lock extended: those whose owner still
-- holds an unexpired lease. A lease missing from the answer was released,
-- taken over or expired, and stays that way (an expired lease is never
-- brought back).
-- "Now" is the database clock, fixed for the whole statement.
WITH batch(key, owner, ttl_ms) AS (
    SELECT json_extract(value, '$[0]'),
           json_extract(value, '$[1]'),
           json_extract(value, '$[2]')
      FROM json_each(?1))
UPDATE "{table}" AS l
   SET expires_at = CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) + batch.ttl_ms
  FROM batch
 WHERE l.name = batch.key
   AND l.owner = batch.owner
   AND l.expires_at > CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)
RETURNING name, owner
