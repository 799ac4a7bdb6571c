-- Releases a reader or permit holder. ?1 = key, ?2 = owner token.
-- Affects one row when the owner still held it unexpired, none otherwise.
DELETE FROM "{table}_holders"
 WHERE name = ?1
   AND owner = ?2
   AND kind IN ('s', 'p')
   AND expires_at > CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)
