-- Extends a held lock. $1 = key, $2 = owner token, $3 = ttl in microseconds.
-- Affects one row when the owner still holds an unexpired lease, none otherwise.
UPDATE "{table}"
   SET expires_at = now() + make_interval(secs => $3::float8 / 1000000)
 WHERE name = $1
   AND owner = $2
   AND expires_at > now()
