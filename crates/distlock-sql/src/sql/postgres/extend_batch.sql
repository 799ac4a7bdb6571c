-- Extends several held locks in one statement, each to its own ttl.
-- $1 = keys, $2 = owner tokens, $3 = ttls in microseconds: three arrays of
-- the same length, one element per lease; the (key, owner) pairs are distinct.
-- Returns one row (name, owner) per lock extended: those whose owner still
-- holds an unexpired lease. A lease missing from the answer was released,
-- taken over or expired, and stays that way (an expired lease is never
-- brought back).
-- now() is the database clock at the start of the statement.
UPDATE "{table}" AS l
   SET expires_at = now() + make_interval(secs => b.ttl_us::float8 / 1000000)
  FROM unnest($1::text[], $2::text[], $3::bigint[]) AS b(name, owner, ttl_us)
 WHERE l.name = b.name
   AND l.owner = b.owner
   AND l.expires_at > now()
RETURNING l.name, l.owner
