-- Extends a held lock. Parameters: ttl in microseconds, key, owner token.
-- Matches one row when the owner still holds an unexpired lease, none
-- otherwise (sqlx asks for found rows, so an unchanged row still counts).
UPDATE `{table}`
   SET expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND
 WHERE name = ?
   AND owner = ?
   AND expires_at > UTC_TIMESTAMP(6)
