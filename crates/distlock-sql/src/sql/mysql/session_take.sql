-- The writer's (and the mutex's) session lock (MySQL / MariaDB): GET_LOCK,
-- then, once it is taken, whether readers or permit holders may be in.
-- The free placeholder is replaced by one IS_FREE_LOCK(CONCAT(?, ':<i>'))
-- per presence slot, joined by AND.
-- Readers and permit holders hold one of the name's presence slots (GET_LOCK
-- on `<name>:<i>`) while their rows live; so while every slot is free nobody
-- is in. The statement reads no table: a statement that names a table opens
-- it (and takes its metadata lock) before it runs, whichever branch it
-- takes, which costs as much as GET_LOCK itself. While some slot is held
-- (a slot may be held a moment after its rows are gone), the writer asks
-- session_readers.sql.
-- Parameters: the GET_LOCK name, the wait in seconds (0 = try), the GET_LOCK
-- name once per slot.
-- Returns one row (token, busy_us):
--   token NULL: not taken (held by another session, or the wait ran out);
--   token 0: taken, but some presence slot is held; the writer keeps the
--     lock (so no new reader or permit comes in) and asks
--     session_readers.sql whether readers are in, and when the soonest of
--     them ends;
--   token > 0: taken, nothing in the way; the fencing token (UUID_SHORT(),
--     drawn after the grant).
-- The select list is evaluated in order, and the slots only once GET_LOCK
-- has returned (IF evaluates one branch, AND stops at the first held slot),
-- so they see every reader granted before: a reader takes its slot and
-- commits its row while it holds this GET_LOCK.
-- busy_us: how long the server spent on the statement (NOW() is the
-- statement's start, SYSDATE() the moment it is evaluated).
SELECT CAST(IF(GET_LOCK(?, ?) = 1,
               IF({free}, UUID_SHORT(), 0),
               NULL) AS UNSIGNED) AS token,
       TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) AS busy_us
