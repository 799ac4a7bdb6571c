-- Which of several readers and permit holders their owners still hold, after
-- a batched extension whose count fell short. ? = the batch's JSON array, as
-- for extend_batch.sql (its ttls and covers unread).
-- Returns one row (i) per hold still held: its position in the array, from
-- 1. A hold is held now only if it was held when the extension ran (once
-- lost, it never comes back), so these are exactly the ones it extended.
SELECT CAST(b.i AS UNSIGNED) AS i
  FROM JSON_TABLE(?, '$[*]' COLUMNS (
           i        FOR ORDINALITY,
           name_hex VARCHAR(510) PATH '$[0]',
           owner    VARCHAR(64)  PATH '$[1]')) AS b
  STRAIGHT_JOIN `{table}` AS l
    ON l.name = UNHEX(b.name_hex)
  STRAIGHT_JOIN `{table}_holders` AS h
    ON h.name = l.name
   AND h.owner = b.owner
 WHERE h.kind IN ('s', 'p')
   AND h.expires_at > UTC_TIMESTAMP(6)
   AND l.shared_until > UTC_TIMESTAMP(6)
