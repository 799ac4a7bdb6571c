-- Deletes the label row of a session lock's exclusive holder that released it
-- (MySQL / MariaDB). `{table}` is replaced.
-- Parameters: the name's row key, owner token.
-- Affects one row when there was a label row.
DELETE FROM `{table}_holders`
 WHERE name = ?
   AND owner = ?
   AND kind = 'l'
