-- Not for use: lib/fence.lua without the clock, for the test that shows
-- tokens going backwards across an instance that forgot its counter. The
-- counter alone (`INCR`) starts again from 1 on an empty instance, and a
-- proposed token is ignored.

-- Issues the next fencing token of the counter `fence`: the counter alone.
local function next_fence(fence, proposal)
  local _ = proposal
  return redis.call('INCR', fence)
end

