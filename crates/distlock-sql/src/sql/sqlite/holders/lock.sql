-- First statement of a grant transaction (BEGIN IMMEDIATE holds the write
-- lock already): makes sure the name's row exists, so that its fencing counter
-- can be raised. ?1 = key. Returns nothing.
INSERT INTO "{table}" (name, fence) VALUES (?1, 0)
ON CONFLICT (name) DO NOTHING
