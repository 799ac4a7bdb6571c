-- Extends several readers and permit holders in one statement, each to its
-- own ttl, and raises their names' shared_until to cover them.
-- ? = the batch as one JSON array with one [key in hex, owner token, ttl in
-- microseconds, cover in microseconds] per lease, where the cover is the
-- longest ttl asked for that key in the batch (a name's row is updated once,
-- whichever lease matches first, so every lease of a name carries the same
-- cover). The (key, owner) pairs are distinct and sorted by key.
-- STRAIGHT_JOIN fixes the order in which rows are locked: the batch's, and
-- for each lease the name's row first, as in a grant transaction. Matches one
-- row per hold extended plus one per name (sqlx asks for found rows). MySQL
-- has no RETURNING on UPDATE: when the count falls short, held_batch.sql
-- tells which were extended.
-- A hold whose name's row the exclusive acquire cleared (shared_until) is
-- never brought back.
UPDATE JSON_TABLE(?, '$[*]' COLUMNS (
           name_hex VARCHAR(510) PATH '$[0]',
           owner    VARCHAR(64)  PATH '$[1]',
           ttl_us   BIGINT       PATH '$[2]',
           cover_us BIGINT       PATH '$[3]')) AS b
  STRAIGHT_JOIN `{table}` AS l
    ON l.name = UNHEX(b.name_hex)
  STRAIGHT_JOIN `{table}_holders` AS h
    ON h.name = l.name
   AND h.owner = b.owner
   SET h.expires_at = UTC_TIMESTAMP(6) + INTERVAL b.ttl_us MICROSECOND,
       l.shared_until = GREATEST(l.shared_until,
                                 UTC_TIMESTAMP(6) + INTERVAL b.cover_us MICROSECOND)
 WHERE h.kind IN ('s', 'p')
   AND h.expires_at > UTC_TIMESTAMP(6)
   AND l.shared_until > UTC_TIMESTAMP(6)
