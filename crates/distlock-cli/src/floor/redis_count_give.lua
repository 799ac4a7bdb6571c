-- Gives back a hold taken by redis_count_take.lua; deletes the hash once
-- nobody holds and no writer waits.
-- KEYS[1]: the name's hash (n = holders, w = a writer waits)
-- ARGV[1]: 'p' (a permit), 's' (a reader) or 'x' (the writer)
-- Returns the holders left.
local n = 0
if ARGV[1] == 'x' then
  redis.call('HSET', KEYS[1], 'n', 0)
else
  n = redis.call('HINCRBY', KEYS[1], 'n', -1)
end
if n <= 0 and redis.call('HEXISTS', KEYS[1], 'w') == 0 then
  redis.call('DEL', KEYS[1])
end
return n
