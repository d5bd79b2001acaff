-- bench.lua - requests per second the mock serves, measured with the core's
-- libcurl session as the load generator (so the client is not the limit):
--   seq     one keep-alive connection, one request at a time
--   8x      eight requests in flight (session:submit/poll, 8 connections)
-- for a small request (GET /campaigns/count-launched, ~11 B answer), a
-- page (POST /leads/list, 100 leads, ~150 KB answer) and, as a baseline,
-- the mock's HTTP layer alone answering a constant body (bare_server.lua).
-- Each row runs BENCH_SECONDS (default 1) per repetition, BENCH_REPS
-- (default 3) times in turn with the others; the best is kept.
local core = require "instantly.core"
local mock = require "instantly.mock"

local SECONDS = tonumber(os.getenv("BENCH_SECONDS")) or 1
local REPS = tonumber(os.getenv("BENCH_REPS")) or 3
local here = debug.getinfo(1, "S").source:sub(2):match("^(.*)/[^/]*$") or "."

local function spawn_bare()
  local lua = "lua5.4"
  local p = assert(io.popen(string.format("LUA_PATH=%q LUA_CPATH=%q exec %s %s/bare_server.lua",
    package.path, package.cpath, lua, here), "r"))
  local url = p:read("l"):match("^listening on (%S+)$")
  return { url = url, proc = p }
end

local srv = assert(mock.start{ rate_limits = false, quiet = true })
local bare = spawn_bare()
local auth = { Authorization = "Bearer " .. srv.api_key, ["Content-Type"] = "application/json" }

local small = { url = srv.url .. "/api/v2/campaigns/count-launched", headers = auth }
local page = { url = srv.url .. "/api/v2/leads/list", method = "POST", headers = auth, body = '{"limit":100}' }
local base = { url = bare.url .. "/api/v2/campaigns/count-launched", headers = auth }

local function seq(req)
  local s = core.session{}
  local n, t0 = 0, core.monotime()
  while core.monotime() - t0 < SECONDS do
    local st = s:request(req)
    assert(st == 200, "status " .. tostring(st))
    n = n + 1
  end
  local rate = n / (core.monotime() - t0)
  s:close()
  return rate
end

local function inflight(req, k)
  local s = core.session{}
  for _ = 1, k do s:submit(req) end
  local n, t0 = 0, core.monotime()
  while core.monotime() - t0 < SECONDS do
    for _, r in ipairs(s:poll(1)) do
      assert(r.status == 200, tostring(r.err))
      n = n + 1
      s:submit(req)
    end
  end
  local rate = n / (core.monotime() - t0)
  s:close()
  return rate
end

local rows = {
  { "bare http layer, seq", function() return seq(base) end },
  { "bare http layer, 8x", function() return inflight(base, 8) end },
  { "mock small, seq", function() return seq(small) end },
  { "mock small, 8x", function() return inflight(small, 8) end },
  { "mock page (100 leads), seq", function() return seq(page) end },
  { "mock page (100 leads), 8x", function() return inflight(page, 8) end },
}
local best = {}
for _ = 1, REPS do
  for i, r in ipairs(rows) do
    local v = r[2]()
    if not best[i] or v > best[i] then best[i] = v end
  end
  -- keep the mock's request log from mattering
  srv:clear_requests()
end

print(string.format("%-30s %12s %10s", "row", "req/s", "vs bare"))
for i, r in ipairs(rows) do
  local ref = best[(i % 2 == 1) and 1 or 2]
  print(string.format("%-30s %12.0f %9.2fx", r[1], best[i], best[i] / ref))
end
srv:stop()
local s = core.session{}
s:request{ url = bare.url .. "/__mock/shutdown", method = "POST" }
s:close()
bare.proc:close()
