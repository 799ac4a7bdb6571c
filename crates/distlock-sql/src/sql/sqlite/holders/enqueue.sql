-- Takes or keeps a waiter's place in the queue of a name's exclusive
-- waiters: a row of kind 'q', living ?3 milliseconds on the database clock,
-- whose permits column holds its ticket ?4: when the waiter's acquire began,
-- in microseconds since the epoch (SQLite's clock is this machine's, so
-- waiters in every process read the same clock). Keeping a place keeps its
-- ticket, even one that lapsed: a waiter held up writing it (the write lock
-- is busy) keeps its turn.
-- ?1 = key, ?2 = owner token, ?3 = life in milliseconds, ?4 = ticket.
-- Returns nothing.
INSERT INTO "{table}_holders" (name, owner, kind, permits, expires_at)
VALUES (?1, ?2, 'q', ?4, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) + ?3)
ON CONFLICT (name, owner, kind) DO UPDATE
   SET expires_at = excluded.expires_at
