-- Which of several leases their owners still hold, after a batched extension
-- whose count fell short. {pairs} is `(?, ?)` once per lease, joined by `, `:
-- key, owner token.
-- Returns one row (name, owner) per lease still held. A lease is held now only
-- if it was held when the extension ran (once lost, a lease never comes back),
-- so these are exactly the leases it extended; one that expired in between
-- is reported lost, which is on the safe side.
SELECT name, owner
  FROM `{table}`
 WHERE (name, owner) IN ({pairs})
   AND expires_at > UTC_TIMESTAMP(6)
