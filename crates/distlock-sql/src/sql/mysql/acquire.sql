-- Takes the lock exclusively (the mutex, the writer) when its row is absent,
-- or released or expired with no reader or permit holder alive, and issues
-- the next fencing token. Parameters: key, owner token, ttl in microseconds,
-- then the owner token and the ttl again (for the update branch).
-- Returns no rows. The outcome travels in the OK packet's last-insert-id,
-- set through LAST_INSERT_ID(expr): 1 for a new row, the new fence for a
-- taken-over row, 0 when someone holds the lock (the update branch then
-- rewrites the row with its own values and calls LAST_INSERT_ID(0)).
-- Readers and permit holders are judged by the row's own shared_count and
-- shared_until (kept by their grants, renewals and releases): the one extra
-- check on the mutex path, on the row the statement locks anyway. Taking the
-- row clears them, so that a reader whose time ran out can never be renewed.
-- The assignments run left to right and each sees the ones before it: the
-- condition reads expires_at, shared_count and shared_until, which are
-- assigned last and only ever cleared when the condition holds (so it keeps
-- holding), expires_at the very last.
-- UTC_TIMESTAMP(6) is the database clock at the start of the statement,
-- independent of the session time zone.
INSERT INTO `{table}` (name, owner, fence, expires_at)
VALUES (?, ?, LAST_INSERT_ID(1), UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND)
ON DUPLICATE KEY UPDATE
    owner        = IF((expires_at IS NULL OR expires_at <= UTC_TIMESTAMP(6))
                      AND (shared_count = 0 OR shared_until IS NULL
                           OR shared_until <= UTC_TIMESTAMP(6)),
                      ?, owner),
    fence        = IF((expires_at IS NULL OR expires_at <= UTC_TIMESTAMP(6))
                      AND (shared_count = 0 OR shared_until IS NULL
                           OR shared_until <= UTC_TIMESTAMP(6)),
                      LAST_INSERT_ID(fence + 1),
                      fence + LAST_INSERT_ID(0)),
    shared_until = IF((expires_at IS NULL OR expires_at <= UTC_TIMESTAMP(6))
                      AND (shared_count = 0 OR shared_until IS NULL
                           OR shared_until <= UTC_TIMESTAMP(6)),
                      NULL, shared_until),
    shared_count = IF((expires_at IS NULL OR expires_at <= UTC_TIMESTAMP(6))
                      AND (shared_count = 0 OR shared_until IS NULL
                           OR shared_until <= UTC_TIMESTAMP(6)),
                      0, shared_count),
    expires_at   = IF((expires_at IS NULL OR expires_at <= UTC_TIMESTAMP(6))
                      AND (shared_count = 0 OR shared_until IS NULL
                           OR shared_until <= UTC_TIMESTAMP(6)),
                      UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND,
                      expires_at)
