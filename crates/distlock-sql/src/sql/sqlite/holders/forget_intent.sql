-- Removes a writer's intent and a waiter's queue place (granted, gave up, or
-- cancelled), and the name's places that lapsed (their waiters vanished).
-- ?1 = key, ?2 = owner token. Returns nothing.
DELETE FROM "{table}_holders"
 WHERE name = ?1
   AND ((owner = ?2 AND kind IN ('w', 'q'))
        OR (kind = 'q' AND expires_at <= CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)))
