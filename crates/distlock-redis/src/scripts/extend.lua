-- Extends holds of their owners, any number per call and of any modes (the
-- watchdog batches every due lease of a client into one call per
-- instance).
--
-- For lease i, ARGV[4i-3 .. 4i] are: its kind, owner token, member and
-- new ttl in milliseconds; its keys follow those of lease i-1 in KEYS:
--   kind 'x' (a writer): 1 key, the lock key; the member is ''.
--   kind 'm' (a reader, or a permit on one instance): 2 keys, the lock key
--            and the holders set; the member is '<mode>:<owner>'. A reader
--            upgraded meanwhile (the lock key holds its owner) is extended
--            as the writer it became.
--   kind 'k' (a Redlock permit): 2 keys, its permit slot and the holders
--            set; both must still be this owner's.
--   kind 'p' (not a lease: last, after a shortened hold): 1 key, the
--            release channel, to PUBLISH `*` on so that waiters read the
--            new, shorter expiry; owner, member and ttl are ignored.
--
-- Returns an array with one entry per lease: 1 when that hold was this
-- owner's and its expiry was reset to the new ttl, 0 when it was not
-- (expired, released, or taken by someone else); 1 for a 'p' entry.

-- @include lib/fence.lua
-- @include lib/holds.lua

local result = {}
local now = nil
local key = 1
for i = 1, #ARGV / 4 do
  local kind, owner, member, ttl = ARGV[4 * i - 3], ARGV[4 * i - 2], ARGV[4 * i - 1], ARGV[4 * i]
  local extended = 0
  if kind == 'x' then
    if redis.call('GET', KEYS[key]) == owner then
      redis.call('PEXPIRE', KEYS[key], ttl)
      extended = 1
    end
    key = key + 1
  elseif kind == 'p' then
    redis.call('PUBLISH', KEYS[key], '*')
    key = key + 1
    extended = 1
  else
    local own, holders = KEYS[key], KEYS[key + 1]
    key = key + 2
    now = now or now_ms()
    if holds_member(holders, member, now) and (kind == 'm' or redis.call('GET', own) == owner) then
      if kind == 'k' then
        redis.call('PEXPIRE', own, ttl)
      end
      redis.call('ZADD', holders, 'XX', now + tonumber(ttl), member)
      touch(holders)
      extended = 1
    elseif kind == 'm' and redis.call('GET', own) == owner then
      redis.call('PEXPIRE', own, ttl)
      extended = 1
    end
  end
  result[i] = extended
end
return result
