-- Whether the session with this connection id is running its kept hold's
-- statement (session_hold.sql), asleep on the server (MySQL / MariaDB). A
-- user sees its own connections in the process list without the PROCESS
-- privilege.
-- Parameters: the connection id.
-- Returns one row (holding): 1 or 0.
SELECT EXISTS(SELECT 1
                FROM information_schema.PROCESSLIST
               WHERE ID = ?
                 AND STATE = 'User sleep') AS holding
