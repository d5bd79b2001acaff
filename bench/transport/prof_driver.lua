-- prof_driver.lua - a fixed number of small GETs through one layer, for
-- callgrind (bench/transport/prof.sh):
--
--   lua5.4 prof_driver.lua ROW COUNT URL
--
-- ROW is core_request (session:request in a loop), core_raw (the same
-- with raw_headers, as the SDK asks), core_take4 (submit/take, 4 in
-- flight), core_take4_raw (the same with raw_headers, as gather asks),
-- core_poll4 (submit/poll, 4 in flight), sdk_client
-- (client.workspaces:get() in a loop) or sdk_gather4 (the same through
-- client:gather, 4 in flight).
-- URL is the server's base (http://127.0.0.1:PORT); the core rows GET
-- $PROF_PATH (default /api/v2/workspaces/current). Every answer must be a 200.
local core = require "instantly.core"

local row, count, base = arg[1], math.tointeger(tonumber(arg[2])), arg[3]
assert(row and count and base, "usage: lua5.4 prof_driver.lua ROW COUNT URL")
local url = base .. (os.getenv("PROF_PATH") or "/api/v2/workspaces/current")
local headers = { Authorization = "Bearer bench-key" }

local function expect(status, body)
  if status ~= 200 then error(("status %s: %s"):format(tostring(status), tostring(body)), 2) end
end

local rows = {}

function rows.core_request()
  local s <close> = core.session()
  local req = { method = "GET", url = url, headers = headers }
  for _ = 1, count do expect(s:request(req)) end
end

-- As core_request, answering with the raw header block (what the SDK asks
-- for): the transport without building a headers table.
function rows.core_raw()
  local s <close> = core.session()
  local req = { method = "GET", url = url, headers = headers, raw_headers = true }
  for _ = 1, count do expect(s:request(req)) end
end

-- Submits the first (up to) 4 requests; returns how many.
local function start4(s, req)
  local started = 0
  while started < 4 and started < count do
    s:submit(req)
    started = started + 1
  end
  return started
end

local function take4(req)
  local s <close> = core.session()
  local started = start4(s, req)
  while s:pending() > 0 do
    local id, status, body = s:take(1)
    while id do
      expect(status, body)
      if started < count then
        s:submit(req)
        started = started + 1
      end
      id, status, body = s:take()
    end
  end
end

function rows.core_take4() take4 { method = "GET", url = url, headers = headers } end

-- As core_take4, answering with the raw header block (what gather asks for).
function rows.core_take4_raw() take4 { method = "GET", url = url, headers = headers, raw_headers = true } end

-- submit/poll, 4 in flight (bench/20-transport.sh's core_submit_poll).
function rows.core_poll4()
  local s <close> = core.session()
  local req = { method = "GET", url = url, headers = headers }
  local started = start4(s, req)
  while s:pending() > 0 do
    for _, r in ipairs(s:poll(1)) do
      expect(r.status, r.body or r.err)
      if started < count then
        s:submit(req)
        started = started + 1
      end
    end
  end
end

local function client()
  local instantly = require "instantly"
  return instantly.new { api_key = "bench-key", base_url = base, rate_limit = false, max_retries = 0 }
end

function rows.sdk_client()
  local c <close> = client()
  for _ = 1, count do assert(c.workspaces:get()) end
end

function rows.sdk_gather4()
  local c <close> = client()
  local made = 0
  local function call() return c.workspaces:get() end
  local failed = c:gather(function()
    if made < count then
      made = made + 1
      return call
    end
  end, { concurrency = 4, on_result = function(_, v, err) if not v then error(tostring(err)) end end })
  assert(failed == 0)
end

assert(rows[row], "no row " .. tostring(row))()
