-- Takes one of a name's presence slots for a session with readers or permit
-- holders of it (MySQL / MariaDB): the first free of `<name>:0`, `<name>:1`,
-- …, never waiting. the slots placeholder is replaced by one
-- `WHEN GET_LOCK(CONCAT(?, ':<i>'), 0) = 1 THEN <i + 1>` per slot (CASE
-- tries them in order and stops at the first taken).
-- Parameters: the GET_LOCK name once per slot.
-- Returns one row (token, busy_us): token the slot taken plus one, NULL
-- when every slot is held by other sessions; busy_us 0 (it never waits).
SELECT CAST(CASE {slots} ELSE NULL END AS UNSIGNED) AS token,
       CAST(0 AS SIGNED) AS busy_us
