-- Whether a name is held under the session strategy (MySQL / MariaDB): a
-- session holds its GET_LOCK, or a reader or permit holder's row lives.
-- `{table}` is replaced.
-- Parameters: the GET_LOCK name, the row key.
-- Returns one row (held): 1 or 0. (MySQL cannot tell how many wait.)
SELECT (IS_USED_LOCK(?) IS NOT NULL
        OR EXISTS(SELECT 1
                    FROM `{table}_holders`
                   WHERE name = ?
                     AND kind IN ('s', 'p')
                     AND expires_at > UTC_TIMESTAMP(6))) AS held
