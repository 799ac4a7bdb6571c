-- Adds to a counter (INCRBY) if the offered token is not lower than the
-- recorded one, and records the token. The addition runs first: when it
-- fails, nothing is written and no token recorded.
--
-- KEYS[1]  the resource's fence key (the highest token recorded)
-- KEYS[2]  the resource's value key
-- ARGV[1]  the offered token (decimal)
-- ARGV[2]  the amount to add (decimal, 64-bit)
--
-- Returns {1, new value as a string} when added, {0, recorded} when
-- refused, {2, message} when the value is not an integer, {3, message}
-- when the sum would overflow (nothing changed in the last three).

local recorded = higher_recorded(KEYS[1], ARGV[1])
if recorded then
  return {0, recorded}
end
local added = redis.pcall('INCRBY', KEYS[2], ARGV[2])
if type(added) == 'table' and added.err then
  if string.find(added.err, 'overflow', 1, true) then
    return {3, added.err}
  end
  if string.find(added.err, 'not an integer', 1, true) then
    return {2, added.err}
  end
  return added
end
redis.call('SET', KEYS[1], ARGV[1])
-- Read back as a string: the integer INCRBY answered is a double in Lua.
return {1, redis.call('GET', KEYS[2])}
