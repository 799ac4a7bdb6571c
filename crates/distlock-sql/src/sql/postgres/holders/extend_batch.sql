-- Extends several readers and permit holders in one statement, each to its
-- own ttl, and raises their names' shared_until to cover them.
-- $1 = keys, $2 = owner tokens, $3 = ttls in microseconds: three arrays of the
-- same length, one element per lease; the (key, owner) pairs are distinct.
-- Returns one row (name, owner) per hold extended: those whose owner still
-- holds them unexpired. A lease missing from the answer was released or
-- expired, and stays that way.
-- The names' rows are locked first, in key order (as every change to their
-- holders does), and judged on their latest versions: a hold whose row the
-- exclusive acquire cleared (shared_until) is never brought back.
-- now() is the database clock at the start of the statement.
WITH batch AS (
    SELECT *
      FROM unnest($1::text[], $2::text[], $3::bigint[]) AS b(name, owner, ttl_us)
), locked AS (
    SELECT l.name
      FROM "{table}" l
     WHERE l.name IN (SELECT name FROM batch)
       AND l.shared_until > now()
     ORDER BY l.name
       FOR UPDATE
), extended AS (
    UPDATE "{table}_holders" AS h
       SET expires_at = now() + make_interval(secs => batch.ttl_us::float8 / 1000000)
      FROM batch
      JOIN locked ON locked.name = batch.name
     WHERE h.name = batch.name
       AND h.owner = batch.owner
       AND h.kind IN ('s', 'p')
       AND h.expires_at > now()
    RETURNING h.name, h.owner, h.expires_at
), covered AS (
    UPDATE "{table}" AS l
       SET shared_until = greatest(l.shared_until, m.until)
      FROM (SELECT name, max(expires_at) AS until FROM extended GROUP BY name) m
     WHERE l.name = m.name
)
SELECT name, owner
  FROM extended
