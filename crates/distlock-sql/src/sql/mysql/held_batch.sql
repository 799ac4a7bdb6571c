-- Which of several leases their owners still hold, after a batched extension
-- whose count fell short. ? = the batch's JSON array, as for
-- extend_batch.sql (its ttls unread).
-- Returns one row (i) per lease still held: its position in the array,
-- from 1. A lease is held now only if it was held when the extension ran
-- (once lost, a lease never comes back), so these are exactly the leases it
-- extended; one that expired in between is reported lost, which is on the
-- safe side.
SELECT CAST(b.i AS UNSIGNED) AS i
  FROM JSON_TABLE(?, '$[*]' COLUMNS (
           i        FOR ORDINALITY,
           name_hex VARCHAR(510) PATH '$[0]',
           owner    VARCHAR(64)  PATH '$[1]')) AS b
  STRAIGHT_JOIN `{table}` AS l
    ON l.name = UNHEX(b.name_hex)
   AND l.owner = b.owner
 WHERE l.expires_at > UTC_TIMESTAMP(6)
