-- Extends a held lock. ?1 = key, ?2 = owner token, ?3 = ttl in milliseconds.
-- Affects one row when the owner still holds an unexpired lease, none otherwise.
UPDATE "{table}"
   SET expires_at = CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) + ?3
 WHERE name = ?1
   AND owner = ?2
   AND expires_at > CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)
