-- Takes the lock exclusively if nobody holds it (no queue: fair=false and
-- Redlock) and issues a fencing token (lib/fence.lua).
--
-- KEYS[1]  the lock key            ({prefix name}:lock)
-- KEYS[2]  the fencing counter     ({prefix name}:fence)
-- KEYS[3]  the holders set         ({prefix name}:holders; readers, permits)
-- KEYS[4]  the holder label        ({prefix name}:holder)
-- KEYS[5]  the release channel     ({prefix name}:released)
-- ARGV[1]  the owner token (32 hex digits)
-- ARGV[2]  the ttl in milliseconds
-- ARGV[3]  the holder label (an elected leader's identity), or ''
-- ARGV[4]  Redlock: the token the client proposes (lib/fence.lua), or ''
--
-- The holders set exists exactly while a reader or permit holds the name
-- (it expires with its latest member), so one EXISTS refuses the writer
-- beside them. An owner that already holds the lock (a retry after a reply
-- was lost) gets it again with a fresh expiry. A labelled grant records its
-- label and publishes '+' (lib/holds.lua `record_label`); the unlabelled
-- mutex returns before the library is even loaded.
--
-- Returns {1, counter} when the lock was taken: `counter` is the token just
-- issued, now the fencing counter (the single-instance fencing token;
-- Redlock combines the counters of a majority).
-- Returns {0, pttl} when someone else holds it: `pttl` is the holder's
-- remaining time to live in milliseconds (for readers or permits: until the
-- last of them expires; -1 when the key has no expiry).

-- @include lib/fence.lua

if redis.call('EXISTS', KEYS[3]) == 1 then
  return {0, redis.call('PTTL', KEYS[3])}
end
if not (redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
    or (redis.call('GET', KEYS[1]) == ARGV[1]
        and redis.call('PEXPIRE', KEYS[1], ARGV[2]) == 1)) then
  return {0, redis.call('PTTL', KEYS[1])}
end
local fence = next_fence(KEYS[2], ARGV[4])
if ARGV[3] == '' then
  return {1, fence}
end

-- @include lib/holds.lua

record_label({holder = KEYS[4], channel = KEYS[5]}, ARGV[1], ARGV[3])
return {1, fence}
