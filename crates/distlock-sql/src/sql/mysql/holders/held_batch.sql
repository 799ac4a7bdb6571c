-- Which of several readers and permit holders their owners still hold, after
-- a batched extension whose count fell short. {pairs} is `(?, ?)` once per
-- lease, joined by `, `: key, owner token.
-- Returns one row (name, owner) per hold still held. A hold is held now only
-- if it was held when the extension ran (once lost, it never comes back), so
-- these are exactly the ones it extended.
SELECT h.name, h.owner
  FROM `{table}_holders` h
  JOIN `{table}` l ON l.name = h.name
 WHERE (h.name, h.owner) IN ({pairs})
   AND h.kind IN ('s', 'p')
   AND h.expires_at > UTC_TIMESTAMP(6)
   AND l.shared_until > UTC_TIMESTAMP(6)
