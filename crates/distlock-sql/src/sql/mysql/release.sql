-- Releases a held lock, keeping the row so the fencing token keeps rising.
-- Parameters: key, owner token.
-- Matches one row when the owner still held an unexpired lease, none otherwise.
UPDATE `{table}`
   SET owner = NULL,
       expires_at = NULL
 WHERE name = ?
   AND owner = ?
   AND expires_at > UTC_TIMESTAMP(6)
