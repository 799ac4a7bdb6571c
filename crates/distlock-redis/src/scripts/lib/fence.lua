-- Library included (`-- @include lib/fence.lua`) first, before any fast
-- path, by every script that grants a hold: the one rule that issues a
-- fencing token.
--
-- A token is max(counter + 1, the server's clock in µs), and becomes the
-- counter. The counter makes tokens rise while the instance keeps its data;
-- the clock makes them rise across an instance that forgot its counter (a
-- restart without persistence, a failover to a replica that missed the
-- last grant), as long as its clock did not step back by more than the
-- time between the two grants. Redis integers are 64-bit, Lua numbers are
-- doubles, exact up to 2^53: µs since 1970 are about 2^51 (exact until the
-- year 2255), so every value here is an exact integer, written back with
-- '%.0f' (plain tostring would print an exponent).
--
-- `proposal` (Redlock; '' or nil elsewhere) is the token the client
-- proposes so that the instances of a quorum issue the same value and the
-- token is settled in one round: taken when it is above the rule's value
-- and at most `PROPOSAL_WINDOW_US` ahead of this server's clock. It only
-- ever raises a token, so a token is still above the counter and at least
-- the clock, and at most that window ahead of the clock.

-- How far ahead of the server's clock a proposed token may be (100 ms).
local PROPOSAL_WINDOW_US = 100000

-- Issues the next fencing token of the counter `fence` (see above).
local function next_fence(fence, proposal)
  local t = redis.call('TIME')
  local clock = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local token = math.max(tonumber(redis.call('GET', fence) or '0') + 1, clock)
  local proposed = tonumber(proposal or '')
  if proposed and proposed > token and proposed <= clock + PROPOSAL_WINDOW_US then
    token = proposed
  end
  redis.call('SET', fence, string.format('%.0f', token))
  return token
end

