-- Sets up a new session connection (PostgreSQL).
-- $1 = the session timeout in milliseconds, as text: the server ends the
--      session (and frees its locks) once it has sat idle that long
--      (`idle_session_timeout`, PostgreSQL 14 and later);
-- $2 = how often, in milliseconds as text, a waiting statement checks that
--      its client is still connected (`client_connection_check_interval`,
--      PostgreSQL 14 and later), so that a wait whose client went away
--      leaves the server's queue at once.
-- Settings the server does not have are skipped (read from pg_settings).
-- The session's commits are asynchronous (`synchronous_commit` off): its
-- only writes are the fencing sequence's, whose loss in a crash the floor
-- below covers, and leaders' label rows, which count only while their
-- session holds its lock and so end with it anyway. Without it, the
-- `nextval` that logs the sequence (one grant in 32) would wait for the
-- log to reach the disk.
-- The fencing sequence is then set ahead of the server's clock, if it is
-- behind it: the floor placeholder is replaced by that statement (see
-- session/postgres.rs), the table and lead placeholders before use.
-- Returns one row (pid, bounded, commits, fence): the session's backend
-- process id, whether the server took the session timeout, the commit
-- setting (not used), and the sequence's value after it was set ahead (not
-- used).
SELECT pg_backend_pid()::bigint AS pid,
       (SELECT count(*) > 0
          FROM (SELECT set_config(name,
                                  CASE name WHEN 'idle_session_timeout' THEN $1 ELSE $2 END,
                                  false)
                  FROM pg_settings
                 WHERE name IN ('idle_session_timeout', 'client_connection_check_interval')) AS s
       ) AS bounded,
       set_config('synchronous_commit', 'off', false) AS commits,
       {floor} AS fence
