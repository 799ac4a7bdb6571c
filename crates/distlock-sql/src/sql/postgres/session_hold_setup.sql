-- Readies a session connection to keep its one lock after its release
-- (PostgreSQL, lock-at-least-for; see session_hold.sql): the server no
-- longer checks that the client is still connected while a statement runs
-- (`client_connection_check_interval`, PostgreSQL 14 and later; older
-- servers never check), and no statement timeout cuts one short. Settings
-- the server does not have are skipped (read from pg_settings).
-- Returns one row (set): how many settings were set.
SELECT count(set_config(name, '0', false)) AS set
  FROM pg_settings
 WHERE name IN ('client_connection_check_interval', 'statement_timeout')
