--- Sliding-window rate limits for the mock.
--
-- A window of `n` requests per `w` seconds keeps the times of the last n
-- admitted requests in a ring: a request is admitted when the oldest of
-- them is at least w seconds old. O(1) per check, exact, no bursts at
-- window edges.
-- @module instantly.mock.ratelimit

local M = {}

local Window = {}
Window.__index = Window

function M.window(n, seconds)
  return setmetatable({ n = n, w = seconds, ring = {}, head = 1 }, Window)
end

--- Seconds to wait before a request would be admitted (0 = now).
function Window:wait(now)
  local oldest = self.ring[self.head]
  if not oldest then return 0 end
  local free_at = oldest + self.w
  if free_at <= now then return 0 end
  return free_at - now
end

function Window:take(now)
  self.ring[self.head] = now
  self.head = self.head % self.n + 1
end

local UNITS = {
  s = 1, sec = 1, second = 1, seconds = 1,
  min = 60, minute = 60, minutes = 60,
  h = 3600, hour = 3600, hours = 3600,
  day = 86400, days = 86400,
}

--- Parse a catalog rate_limit text ("20/min", "30/min or 900/hour",
-- "75/min per workspace + 150/min per IP", "500/30 days per workspace")
-- into a list of {n, seconds}. Every window found applies.
function M.parse(text)
  local out = {}
  if type(text) ~= "string" then return out end
  for n, mult, unit in text:gmatch("(%d+)%s*/%s*(%d*)%s*(%a+)") do
    local secs = UNITS[unit:lower()]
    if secs then
      out[#out + 1] = { tonumber(n), secs * (tonumber(mult) or 1) }
    end
  end
  return out
end

--- A set of windows checked together: admit() -> true or false, retry_after.
local Group = {}
Group.__index = Group

function M.group(specs)
  local g = setmetatable({ windows = {} }, Group)
  for i, s in ipairs(specs) do g.windows[i] = M.window(s[1], s[2]) end
  return g
end

function Group:admit(now)
  local worst = 0
  for _, w in ipairs(self.windows) do
    local d = w:wait(now)
    if d > worst then worst = d end
  end
  if worst > 0 then return false, worst end
  for _, w in ipairs(self.windows) do w:take(now) end
  return true
end

return M
