-- Removes a writer's intent and a waiter's queue place (granted, gave up, or
-- cancelled), and the name's places that lapsed (their waiters vanished).
-- Parameters: key, owner token. Returns nothing.
DELETE FROM `{table}_holders`
 WHERE name = ?
   AND ((owner = ? AND kind IN ('w', 'q'))
        OR (kind = 'q' AND expires_at <= UTC_TIMESTAMP(6)))
