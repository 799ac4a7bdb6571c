-- Removes a writer's intent (granted, gave up, or cancelled).
-- ?1 = key, ?2 = owner token. Returns nothing.
DELETE FROM "{table}_holders"
 WHERE name = ?1
   AND owner = ?2
   AND kind = 'w'
