-- In a grant transaction: deletes the name's readers, permits and intents
-- whose time has passed. ?1 = key. Returns nothing.
DELETE FROM "{table}_holders"
 WHERE name = ?1
   AND expires_at <= CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)
