-- Redlock permits: gives back whatever permit slot this owner may hold on
-- this instance (an acquire that did not finish cannot know which slot an
-- instance that did not answer gave it).
--
-- KEYS[1]  the holders set
-- KEYS[2]  the permit slots' base key (slot i is '<base>:<i>')
-- KEYS[3]  the release channel
-- ARGV[1]  the owner token
-- ARGV[2]  the holder's member of the holders set ('p<n>:<owner>')
-- ARGV[3]  the permit count n
--
-- Publishes `*` when a slot was freed.
-- Returns 1 when this owner held a slot here and released it, 0 otherwise.

-- @include lib/fence.lua
-- @include lib/holds.lua

local owner, member, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local released = 0
for slot = 0, n - 1 do
  local key = KEYS[2] .. ':' .. slot
  if redis.call('GET', key) == owner then
    redis.call('DEL', key)
    released = 1
  end
end
if redis.call('ZREM', KEYS[1], member) == 1 then
  touch(KEYS[1])
end
if released == 1 then
  redis.call('PUBLISH', KEYS[3], '*')
end
return released
