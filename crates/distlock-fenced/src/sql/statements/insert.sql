-- The first write of a resource.
-- Binds: resource, value, counter (one of them NULL), token.
-- Fails with a unique violation when another write created the row first.
INSERT INTO {table} (resource, value, counter, fence) VALUES (?, ?, ?, ?)
