-- Reads what can be told about a lock without taking it.
--
-- KEYS[1]  the lock key
-- KEYS[2]  the fencing counter
-- KEYS[3]  the waiters' queue (fair mode; absent otherwise)
-- KEYS[4]  the holders set (readers, permits)
-- KEYS[5]  the holder label ('<owner token>:<label>')
--
-- Returns {pttl, counter, waiters, label, holder}: `pttl` is the remaining
-- time to live of the writer, or of the longest-lived reader or permit
-- holder, in milliseconds (-2 when nobody holds the name, -1 for a key
-- without expiry), `counter` the fencing counter (0 when no token was ever
-- issued), `waiters` the length of the waiters' queue (0 without one; it
-- may still count waiters that vanished until their entries are pruned),
-- `label` the writer's holder label ('' when the writer has none, or no
-- writer holds), `holder` the first 16 hex digits of the writer's owner
-- token ('' when no writer holds; Redlock counts a quorum by it).
local pttl = redis.call('PTTL', KEYS[1])
if pttl == -2 then
  pttl = redis.call('PTTL', KEYS[4])
end
local owner = redis.call('GET', KEYS[1])
local label, holder = '', ''
if owner then
  holder = string.sub(owner, 1, 16)
  local recorded = redis.call('GET', KEYS[5])
  local mark = owner .. ':'
  if recorded and string.sub(recorded, 1, #mark) == mark then
    label = string.sub(recorded, #mark + 1)
  end
end
return {
  pttl,
  tonumber(redis.call('GET', KEYS[2]) or '0'),
  redis.call('ZCARD', KEYS[3]),
  label,
  holder
}
