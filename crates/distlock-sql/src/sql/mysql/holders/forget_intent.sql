-- Removes a writer's intent (granted, gave up, or cancelled).
-- Parameters: key, owner token. Returns nothing.
DELETE FROM `{table}_holders`
 WHERE name = ?
   AND owner = ?
   AND kind = 'w'
