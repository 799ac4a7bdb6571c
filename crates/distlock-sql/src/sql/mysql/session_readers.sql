-- A writer holding the name's GET_LOCK asks whether readers or permit
-- holders are still in (MySQL / MariaDB): none once every presence slot is
-- free, else none once no live row of theirs is left. `{table}` is replaced,
-- the free placeholder as in session_take.sql.
-- Parameters: the GET_LOCK name once per slot, the row key, the row key.
-- Returns one row (token, readers_us): token 0 while some live, with
-- readers_us the time until the soonest of them ends; else the fencing
-- token (UUID_SHORT()).
SELECT CAST(IF({free}
                 OR NOT EXISTS(SELECT 1
                                 FROM `{table}_holders`
                                WHERE name = ?
                                  AND kind IN ('s', 'p')
                                  AND expires_at > UTC_TIMESTAMP(6)),
               UUID_SHORT(),
               0) AS UNSIGNED) AS token,
       (SELECT TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), MIN(expires_at))
          FROM `{table}_holders`
         WHERE name = ?
           AND kind IN ('s', 'p')
           AND expires_at > UTC_TIMESTAMP(6)) AS readers_us
