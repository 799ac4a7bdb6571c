-- Releases a held lock, keeping the row so the fencing token keeps rising.
-- ?1 = key, ?2 = owner token.
-- Affects one row when the owner still held an unexpired lease, none otherwise.
UPDATE "{table}"
   SET owner = NULL,
       expires_at = NULL
 WHERE name = ?1
   AND owner = ?2
   AND expires_at > CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)
