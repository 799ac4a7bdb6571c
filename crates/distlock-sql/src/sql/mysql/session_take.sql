-- The writer's (and the mutex's) session lock (MySQL / MariaDB): GET_LOCK,
-- then, once it is taken, whether readers or permit holders still hold rows
-- of the holders table, or a hold kept after its release (lock-at-least-for,
-- kind 'a') is still in the way: the same probe of the holders table. `{table}` is replaced by the validated table name.
-- Parameters: the GET_LOCK name, the wait in seconds (0 = try), the row key.
-- Returns one row (token, readers_us, busy_us):
--   token NULL: not taken (held by another session, or the wait ran out);
--   token 0: taken, but readers, permit holders or a kept hold live; the
--     writer keeps the lock (so no new reader or permit comes in) and asks again
--     (session_readers.sql, which also says when the soonest of them ends);
--   token > 0: taken, nothing in the way; the fencing token (UUID_SHORT(),
--     drawn after the grant).
-- The select list is evaluated in order, and the subquery only once GET_LOCK
-- has returned (IF evaluates one branch), so it reads the rows of every
-- reader granted before: a reader's grant commits while it holds this
-- GET_LOCK, and the statement's snapshot is taken by its first read. No other
-- column reads a table, so nothing takes the snapshot earlier.
-- readers_us: always NULL here.
-- busy_us: how long the server spent on the statement (NOW() is the
-- statement's start, SYSDATE() the moment it is evaluated).
SELECT CAST(IF(GET_LOCK(?, ?) = 1,
               IF(EXISTS(SELECT 1
                           FROM `{table}_holders`
                          WHERE name = ?
                            AND kind IN ('s', 'p', 'a')
                            AND expires_at > UTC_TIMESTAMP(6)),
                  0,
                  UUID_SHORT()),
               NULL) AS UNSIGNED) AS token,
       CAST(NULL AS SIGNED) AS readers_us,
       TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) AS busy_us
