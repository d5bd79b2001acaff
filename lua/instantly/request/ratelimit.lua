--- Client-side rate limiting: waiting instead of collecting 429s.
--
-- A limit "N per T seconds" is kept as a sliding-window log: a ring of the
-- send times of the last N requests. One more request fits when the
-- oldest of those N is more than T (plus a small margin for clock and
-- latency jitter) in the past. Unlike a token bucket that starts full,
-- the log never lets N+1 requests into any window of length T, so it stays
-- under the server's limit whether the server counts in fixed windows,
-- sliding windows or buckets.
--
-- A limiter belongs to one client and is shared by all of its calls:
-- the workspace windows (100/s and 6000/min by default) apply to every
-- request, and each operation with a `rate_limit` in the catalog adds its
-- own windows, parsed from strings such as "20/min", "10/min per
-- workspace", "75/min per workspace + 150/min per IP", "30/min or
-- 900/hour" and "500/30 days per workspace" (every part must be honoured).
--
-- Coroutine safety: `acquire` checks all windows and records the send time
-- in all of them in one step with no yield in between; when it must wait,
-- it sleeps through the caller's `sleep` function (the client's scheduler
-- hook, which may yield to other coroutines) and then checks again from
-- scratch, because other coroutines may have taken the free slots while
-- it slept.
-- @module instantly.request.ratelimit

local setmetatable, tonumber, type, error = setmetatable, tonumber, type, error
local concat = table.concat

local M = {}

-- Seconds added to every window: server arrival times jitter by the
-- request latency, so a window measured at the client must be a bit longer.
M.MARGIN = 0.05

local UNITS = {
  s = 1, sec = 1, secs = 1, second = 1, seconds = 1,
  m = 60, min = 60, mins = 60, minute = 60, minutes = 60,
  h = 3600, hr = 3600, hrs = 3600, hour = 3600, hours = 3600,
  d = 86400, day = 86400, days = 86400,
  w = 604800, week = 604800, weeks = 604800,
}

local function parse_part(part, whole)
  -- "20/min", "500/30 days per workspace", "500 per 30 days", "100/second"
  local n, rest = part:match("^%s*(%d+)%s*/%s*(.-)%s*$")
  if not n then n, rest = part:match("^%s*(%d+)%s+per%s+(.-)%s*$") end
  if not n then return nil, "cannot read rate limit '" .. whole .. "'" end
  local count, unit, scope = rest:match("^(%d*)%s*(%a+)%s*(.-)$")
  if not unit or not UNITS[unit:lower()] then
    return nil, "cannot read the period of rate limit '" .. whole .. "'"
  end
  local mult = count ~= "" and tonumber(count) or 1
  scope = scope:match("^per%s+(.+)$") or (scope ~= "" and scope or nil)
  return { n = tonumber(n) // 1, period = mult * UNITS[unit:lower()], scope = scope, text = part:match("^%s*(.-)%s*$") }
end

--- Parse a catalog rate-limit string into its parts.
-- Parts joined by `+` or `or` are all enforced.
-- @tparam string s e.g. "75/min per workspace + 150/min per IP"
-- @treturn table|nil array of `{n =, period = seconds, scope =, text =}`
-- @treturn string|nil message when the string cannot be read
function M.parse(s)
  if type(s) ~= "string" then return nil, "rate limit must be a string" end
  local parts, out = {}, {}
  local norm = s:gsub("%s+or%s+", "+")
  for piece in norm:gmatch("[^+]+") do parts[#parts + 1] = piece end
  if #parts == 0 then return nil, "empty rate limit" end
  for i = 1, #parts do
    local p, err = parse_part(parts[i], s)
    if not p then return nil, err end
    if p.n < 1 then return nil, "rate limit '" .. s .. "' allows nothing" end
    out[#out + 1] = p
  end
  return out
end

local Window = {}
Window.__index = Window

--- A sliding window allowing `n` requests per `period` seconds.
-- @tparam integer n
-- @tparam number period seconds
-- @tparam string label shown in `on_wait` events
-- @treturn table window
function M.window(n, period, label)
  if type(n) ~= "number" or n < 1 or type(period) ~= "number" or period <= 0 then
    error("rate limit windows need n >= 1 and period > 0", 2)
  end
  return setmetatable({ n = n // 1, period = period + M.MARGIN, label = label, ring = {}, head = 0, count = 0 }, Window)
end

--- Seconds until one more request fits (0 when it fits now).
-- @tparam number now monotonic seconds
-- @treturn number
function Window:wait(now)
  if self.count < self.n then return 0 end
  local w = self.ring[self.head % self.n + 1] + self.period - now
  return w > 0 and w or 0
end

--- Record a request sent at `now`.
-- @tparam number now monotonic seconds
function Window:take(now)
  local head = self.head % self.n + 1
  self.head = head
  self.ring[head] = now
  if self.count < self.n then self.count = self.count + 1 end
end

--- Windows for a catalog rate-limit string.
-- A part counted per IP ("150/min per IP") is not per workspace: with a
-- `shared` table (one per connection pool, see `shared_for`), every client
-- and workspace view on that pool takes the same window for it, while the
-- other parts are the client's own.
-- @tparam string s
-- @tparam string label prefix for the window labels (the operation)
-- @tparam[opt] table shared windows shared by the clients of one pool
-- @treturn table array of windows
function M.windows_for(s, label, shared)
  local parts, err = M.parse(s)
  if not parts then error(err, 2) end
  local out = {}
  for i = 1, #parts do
    local p = parts[i]
    local key = label .. " " .. p.text
    if shared and p.scope and p.scope:lower():find("ip", 1, true) then
      local w = shared[key]
      if not w then
        w = M.window(p.n, p.period, key)
        shared[key] = w
      end
      out[i] = w
    else
      out[i] = M.window(p.n, p.period, key)
    end
  end
  return out
end

-- pool (a session object) -> its shared windows; weak, so a closed and
-- dropped session takes its windows with it.
local pools = setmetatable({}, { __mode = "k" })

--- The table of windows shared by every client on one connection pool.
-- @param pool the session (or injected transport) the clients share
-- @treturn table
function M.shared_for(pool)
  local t = pools[pool]
  if not t then
    t = {}
    pools[pool] = t
  end
  return t
end

--- Wait until every window in both lists has room, then take a slot in
-- each. Returns the total seconds waited, or `nil, seconds` when the wait
-- needed exceeds `max_wait` (nothing is taken then).
-- @tparam table global windows shared by every call (may be empty)
-- @tparam table|nil own the operation's windows
-- @tparam function now monotonic clock
-- @tparam function sleep `sleep(seconds)`, through the scheduler hook
-- @tparam number max_wait longest single wait accepted
-- @tparam function|nil on_wait `on_wait(seconds, window)` before each sleep
-- @treturn number|nil seconds waited
-- @treturn number|nil when refused: the wait that was needed
function M.acquire(global, own, now, sleep, max_wait, on_wait)
  local waited = 0
  while true do
    local t = now()
    local wait, which = 0, nil
    for i = 1, #global do
      local w = global[i]:wait(t)
      if w > wait then wait, which = w, global[i] end
    end
    if own then
      for i = 1, #own do
        local w = own[i]:wait(t)
        if w > wait then wait, which = w, own[i] end
      end
    end
    if wait == 0 then
      for i = 1, #global do global[i]:take(t) end
      if own then for i = 1, #own do own[i]:take(t) end end
      return waited
    end
    if wait > max_wait then return nil, wait, which end
    if on_wait then on_wait(wait, which) end
    sleep(wait)
    waited = waited + wait
  end
end

--- A readable description of a list of windows.
-- @tparam table windows
-- @treturn string
function M.describe(windows)
  local t = {}
  for i = 1, #windows do t[i] = windows[i].label end
  return concat(t, ", ")
end

return M
