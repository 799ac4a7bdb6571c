-- Whether the session with server process id $1 is running its kept hold's
-- statement (session_hold.sql), looked up in the server's activity view: the
-- statement reached the server, which then keeps the lock without the client.
-- Returns one row with one boolean.
SELECT EXISTS (SELECT 1
                 FROM pg_stat_activity
                WHERE pid = $1
                  AND state = 'active'
                  AND position('distlock: kept hold' IN query) > 0)
