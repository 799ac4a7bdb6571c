-- Whether a name is held under the session strategy, and the leader's label
-- (MySQL / MariaDB): a session holds its GET_LOCK, or a presence slot is held
-- and a reader's or permit's row lives. `{table}` is replaced, the free placeholder as in
-- session_take.sql.
-- Parameters (in the order they appear): the GET_LOCK name once per slot,
-- the row key, the GET_LOCK name, the row key.
-- Returns one row (locked, held, term, label, remaining_us): whether a
-- session holds the GET_LOCK (1 or 0); whether it does or readers or permit
-- holders are in; the live label row of the highest term (a holder's label,
-- which counts only while the GET_LOCK is held), NULLs when there is none.
-- (MySQL cannot tell how many wait.)
SELECT d.locked,
       (d.locked
        OR (NOT ({free})
            AND EXISTS(SELECT 1
                         FROM `{table}_holders`
                        WHERE name = ?
                          AND kind IN ('s', 'p')
                          AND expires_at > UTC_TIMESTAMP(6)))) AS held,
       t.permits AS term,
       t.label,
       TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), t.expires_at) AS remaining_us
  FROM (SELECT IS_USED_LOCK(?) IS NOT NULL AS locked) AS d
  LEFT JOIN (SELECT permits, label, expires_at
               FROM `{table}_holders`
              WHERE name = ?
                AND kind = 'l'
                AND expires_at > UTC_TIMESTAMP(6)
              ORDER BY permits DESC
              LIMIT 1) AS t ON TRUE
