-- In an upgrade transaction: removes the upgrading reader's row and its
-- intent. ?1 = key, ?2 = owner token. Returns nothing.
DELETE FROM "{table}_holders"
 WHERE name = ?1
   AND owner = ?2
   AND kind IN ('s', 'w')
