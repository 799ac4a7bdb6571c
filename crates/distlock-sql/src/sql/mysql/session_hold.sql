-- Keeps a session lock after its release until its lock-at-least-for time
-- (MySQL / MariaDB): sleeps on the server, then gives the lock back. The
-- server runs it to its end whether or not the client is still connected
-- (SLEEP does not watch the connection), and a session running a statement
-- is not ended for idling. The label row, if any, was made to end with the
-- minimum.
-- Parameters: how long to keep it in seconds, the GET_LOCK name.
-- Returns one row (given): 1 when the lock was given back (also after the
-- sleep was cut short by KILL QUERY).
SELECT IF(SLEEP(?) IS NOT NULL, RELEASE_LOCK(?), NULL) <=> 1 AS given
