-- Whether a name is held under the session strategy, and the leader's label
-- (MySQL / MariaDB): a session holds its GET_LOCK, or a reader's, permit's or
-- kept hold's row lives. `{table}` is replaced.
-- Parameters: the row key, the GET_LOCK name, the row key (in the order they
-- appear).
-- Returns one row (locked, held, kind, term, label, remaining_us): whether a
-- session holds the GET_LOCK (1 or 0); whether it does or such a row lives;
-- the live label or kept-hold row of the highest term (kind 'l': a holder's
-- label, which counts only while the GET_LOCK is held; kind 'a': an
-- exclusive hold kept after its release, held by itself), NULLs when there is
-- none. (MySQL cannot tell how many wait.)
SELECT d.locked,
       (d.locked
        OR EXISTS(SELECT 1
                    FROM `{table}_holders`
                   WHERE name = ?
                     AND kind IN ('s', 'p', 'a')
                     AND expires_at > UTC_TIMESTAMP(6))) AS held,
       t.kind,
       t.permits AS term,
       t.label,
       TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), t.expires_at) AS remaining_us
  FROM (SELECT IS_USED_LOCK(?) IS NOT NULL AS locked) AS d
  LEFT JOIN (SELECT kind, permits, label, expires_at
               FROM `{table}_holders`
              WHERE name = ?
                AND kind IN ('l', 'a')
                AND expires_at > UTC_TIMESTAMP(6)
              ORDER BY permits DESC
              LIMIT 1) AS t ON TRUE
