-- Renews the label row of a session lock's exclusive holder (MySQL / MariaDB)
-- to ttl from now, if it lives. `{table}` is replaced.
-- Parameters: ttl in microseconds, the name's row key, owner token.
-- Matches one row when the label lives, none otherwise.
UPDATE `{table}_holders`
   SET expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND
 WHERE name = ?
   AND owner = ?
   AND kind = 'l'
   AND expires_at > UTC_TIMESTAMP(6)
