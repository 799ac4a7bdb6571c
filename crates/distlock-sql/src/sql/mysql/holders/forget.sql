-- After release.sql: deletes the row it marked released (a grant of the
-- name would delete it too, but a name may never be taken again).
-- Parameters: key, owner token. Returns nothing.
DELETE FROM `{table}_holders`
 WHERE name = ?
   AND owner = ?
   AND kind IN ('s', 'p')
   AND expires_at = '1000-01-01 00:00:00'
