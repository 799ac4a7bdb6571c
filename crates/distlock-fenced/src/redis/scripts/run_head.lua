-- Runs a caller's script if the offered token is not lower than the
-- recorded one. The token is recorded *before* the caller's script runs,
-- so whatever it writes is covered by the token (Redis does not undo what
-- a script wrote before an error).
--
-- KEYS[1]     the resource's fence key (the highest token recorded)
-- KEYS[2]     the resource's value key: the caller's KEYS[1]
-- KEYS[3..]   the caller's keys: its KEYS[2..]
-- ARGV[1]     the offered token (decimal): the caller's TOKEN
-- ARGV[2..]   the caller's arguments: its ARGV[1..]
--
-- Returns {1, what the caller's script returned} (just {1} when it
-- returned nil), or {0, recorded} when refused (the script did not run).

local recorded = higher_recorded(KEYS[1], ARGV[1])
if recorded then
  return {0, recorded}
end
redis.call('SET', KEYS[1], ARGV[1])
local caller_keys, caller_argv = {}, {}
for i = 2, #KEYS do
  caller_keys[#caller_keys + 1] = KEYS[i]
end
for i = 2, #ARGV do
  caller_argv[#caller_argv + 1] = ARGV[i]
end
return {1, (function(KEYS, ARGV, TOKEN)
-- The caller's script follows, as the body of this function.
