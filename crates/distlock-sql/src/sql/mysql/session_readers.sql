-- A writer holding the name's GET_LOCK asks whether readers or permit
-- holders are still in, or a hold kept after its release (lock-at-least-for,
-- kind 'a') (MySQL / MariaDB). `{table}` is replaced.
-- Parameters: the row key, the row key.
-- Returns one row (token, readers_us): token 0 while some live, with
-- readers_us the time until the soonest of them ends; else the fencing
-- token (UUID_SHORT()).
SELECT CAST(IF(EXISTS(SELECT 1
                        FROM `{table}_holders`
                       WHERE name = ?
                         AND kind IN ('s', 'p', 'a')
                         AND expires_at > UTC_TIMESTAMP(6)),
               0,
               UUID_SHORT()) AS UNSIGNED) AS token,
       (SELECT TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), MIN(expires_at))
          FROM `{table}_holders`
         WHERE name = ?
           AND kind IN ('s', 'p', 'a')
           AND expires_at > UTC_TIMESTAMP(6)) AS readers_us
