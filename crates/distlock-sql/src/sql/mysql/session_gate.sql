-- The readers' and permits' gate (MySQL / MariaDB): GET_LOCK on the name,
-- held only around the grant of the reader's or permit's row, so that a
-- writer holding (or waiting for) the lock keeps new readers out.
-- Parameters: the GET_LOCK name, the wait in seconds (0 = try).
-- Returns one row (token, busy_us): token NULL when not taken, else the
-- fencing token (UUID_SHORT(), drawn after the grant); busy_us as in
-- session_take.sql.
SELECT CAST(IF(GET_LOCK(?, ?) = 1, UUID_SHORT(), NULL) AS UNSIGNED) AS token,
       TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) AS busy_us
