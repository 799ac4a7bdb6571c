-- Gives back the presence slot a session holds for a name (MySQL / MariaDB):
-- RELEASE_LOCK on every slot name, which frees the one this session holds
-- (it holds at most one, once) and leaves the others' alone. the release placeholder is
-- replaced by one `COALESCE(RELEASE_LOCK(CONCAT(?, ':<i>')), 0)` per slot,
-- joined by `+`.
-- Parameters: the GET_LOCK name once per slot.
-- Returns one integer: how many slots this session gave back (0 or 1).
SELECT CAST({release} AS SIGNED) AS given
