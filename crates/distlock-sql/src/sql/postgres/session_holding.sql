-- Whether the session with server process id $1 is running its kept hold's
-- statement (session_hold.sql) and is asleep in it, looked up in the
-- server's activity view: the statement is past the point where the server
-- could still miss it, and the server keeps the lock without the client.
-- (Being active is not enough: a statement the client prepares first shows
-- as active, with its text, while the server only parses it; a client gone
-- between the parse and the run leaves nothing running.)
-- Returns one row with one boolean.
SELECT EXISTS (SELECT 1
                 FROM pg_stat_activity
                WHERE pid = $1
                  AND state = 'active'
                  AND wait_event = 'PgSleep'
                  AND position('distlock: kept hold' IN query) > 0)
