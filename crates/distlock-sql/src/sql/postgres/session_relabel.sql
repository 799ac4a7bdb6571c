-- Renews the label row of a session lock's exclusive holder (PostgreSQL) to
-- ttl from now, if it lives. `{table}` is replaced.
-- $1 = the name's row key, $2 = owner token, $3 = ttl in microseconds.
-- Affects one row when the label lives, none otherwise.
UPDATE "{table}_holders"
   SET expires_at = now() + make_interval(secs => $3::float8 / 1000000)
 WHERE name = $1
   AND owner = $2
   AND kind = 'l'
   AND expires_at > now()
