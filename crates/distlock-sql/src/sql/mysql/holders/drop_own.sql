-- In an upgrade transaction: removes the upgrading reader's row and its
-- intent. Parameters: key, owner token. Returns nothing.
DELETE FROM `{table}_holders`
 WHERE name = ?
   AND owner = ?
   AND kind IN ('s', 'w')
