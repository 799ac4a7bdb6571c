-- First statement of a grant transaction: makes sure the name's row exists
-- and locks it until the transaction ends. Every change to the name's
-- readers and permits locks this row first, so the statements that follow
-- (each with a fresh snapshot, under READ COMMITTED) see them all.
-- $1 = key. Returns nothing. (DO UPDATE ... WHERE false locks the existing row
-- without writing a new version of it.)
INSERT INTO "{table}" AS l (name, fence) VALUES ($1, 0)
ON CONFLICT (name) DO UPDATE
   SET fence = l.fence
 WHERE false
