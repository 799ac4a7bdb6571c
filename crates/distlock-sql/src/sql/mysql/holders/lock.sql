-- First statement of a grant transaction: makes sure the name's row exists
-- and locks it (exclusively) until the transaction ends. Every change to the
-- name's readers and permits locks this row first. ? = key. Returns nothing.
INSERT INTO `{table}` (name, fence) VALUES (?, 0)
ON DUPLICATE KEY UPDATE fence = fence
