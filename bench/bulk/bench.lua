-- bench.lua - bulk lead workflows against the mock, with baselines from the
-- same run:
--   csv parse    MB/s of the core parser alone, of instantly.workflows.csv rows, and
--                of a naive io.lines + gmatch split (not RFC 4180) as the
--                "plain Lua" reference
--   import       100,000 generated leads from CSV into a lead list at
--                concurrency 1, 4 and 8: rows/s and peak RSS of the
--                importing process; then again with a simulated API
--                latency per batch (BENCH_LATENCY seconds, default 0.25)
--   import row   the 100,000-row import at concurrency 4 against a bare
--                loop posting the very batch bodies the import sends
--                (recorded beforehand, so nothing is parsed or encoded in
--                the loop) to the same mock at the same concurrency:
--                rows/s, ratio (target >= 0.8x), peak RSS
--   scaling      1,000 / 10,000 / 100,000-row imports (concurrency 4):
--                seconds and peak RSS
--   memory       peak RSS of the 100,000-row import against a 1,000-row
--                import (target: at most 2x; memory must not grow with the
--                file)
--   export       the 100,000 leads back to CSV and JSONL: rows/s and peak
--                RSS against exporting 1,000
-- Each import/export runs in its own process (bench/bulk/worker.lua), so
-- VmHWM is that run's own. BENCH_ROWS changes the row count. It reports;
-- it does not fail on a missed target.
local core = require "instantly.core"
local mock = require "instantly.mock"
local instantly = require "instantly"

local ROWS = tonumber(os.getenv("BENCH_ROWS")) or 100000
local SMALL = 1000
local REPS = tonumber(os.getenv("BENCH_REPS")) or 3
local here = debug.getinfo(1, "S").source:sub(2):match("^(.*)/[^/]*$") or "."
local tmp = os.tmpname()
os.remove(tmp)
os.execute("mkdir -p '" .. tmp .. "'")

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function gen(path, n)
  local f = assert(io.open(path, "wb"))
  f:write("Email,First Name,Last Name,Company,Job Title,Phone,Website,City,Notes\r\n")
  local buf = {}
  for i = 1, n do
    buf[#buf + 1] = ('lead%d@bulk-bench.test,First%d,Last%d,"Company %d, Inc.",Head of Sales,+1 555 %04d,' ..
      'https://company%d.example,Berlin,"Met at ""Expo"" %d"\r\n'):format(i, i, i, i % 10000, i % 10000, i, i)
    if #buf == 1000 then f:write(table.concat(buf)); buf = {} end
  end
  f:write(table.concat(buf))
  f:close()
  local g = assert(io.open(path, "rb"))
  local size = g:seek("end")
  g:close()
  return size
end

local function worker(...)
  local args = { "lua5.4", here .. "/worker.lua", ... }
  for i, a in ipairs(args) do args[i] = q(a) end
  local cmd = ("LUA_PATH=%s LUA_CPATH=%s %s"):format(q(package.path), q(package.cpath), table.concat(args, " "))
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local ok = p:close()
  local rows, secs, rss = out:match("(%d+) ([%d%.]+) (%d+)")
  if not ok or not rows then error("worker failed: " .. cmd .. "\n" .. out) end
  return tonumber(rows), tonumber(secs), tonumber(rss)
end

local function mb(bytes) return bytes / 1048576 end

local big, small, mid = tmp .. "/leads-big.csv", tmp .. "/leads-small.csv", tmp .. "/leads-mid.csv"
local MID = math.max(SMALL, ROWS // 10)
local big_size = gen(big, ROWS)
gen(small, SMALL)
gen(mid, MID)
print(("40-bulk: %d generated leads (%.1f MB of CSV), mock on 127.0.0.1, best of %d for parsing"):format(
  ROWS, mb(big_size), REPS))

-- CSV parsing -----------------------------------------------------------------
local function best(fn)
  local b = math.huge
  for _ = 1, REPS do
    local t0 = core.monotime()
    fn()
    b = math.min(b, core.monotime() - t0)
  end
  return b
end

local t_core = best(function()
  local f = assert(io.open(big, "rb"))
  local p = core.csv_parser()
  local n = 0
  while true do
    local s = f:read(256 * 1024)
    if not s then break end
    n = n + #assert(p:feed(s))
  end
  n = n + #assert(p:finish())
  f:close()
  assert(n == ROWS + 1)
end)
local t_rows = best(function()
  local rows = worker("parse", big)
  assert(rows == ROWS + 1)
end)
local t_naive = best(function()
  local n, fields = 0, 0
  for line in io.lines(big) do
    local t = {}
    for field in line:gmatch("([^,]*)") do t[#t + 1] = field end
    n, fields = n + 1, fields + #t
  end
  assert(n == ROWS + 1 and fields > n)
end)
print(("%-44s %10s %12s"):format("csv parse", "MB/s", "rows/s"))
print(("  %-42s %10.1f %12.0f"):format("core parser (chunks in, records out)", mb(big_size) / t_core, ROWS / t_core))
print(("  %-42s %10.1f %12.0f  (process incl. startup)"):format("instantly.workflows.csv reader:read()",
  mb(big_size) / t_rows, ROWS / t_rows))
print(("  %-42s %10.1f %12.0f  baseline; core is %.1fx"):format("io.lines + gmatch split (not RFC 4180)",
  mb(big_size) / t_naive, ROWS / t_naive, t_naive / t_core))

-- Import and export ---------------------------------------------------------------
local srv = assert(mock.start { seed = 1, rate_limits = false })

-- A client of its own for each list, so no row inherits the connections
-- of the one before. (It was once needed: an idle connection outlived the
-- mock's keep-alive timeout, and a POST is never resent. The server core
-- now waits longer than libcurl reuses, and writes reuse only connections
-- used moments ago: see write_max_idle in docs/transport.md.)
local function fresh_list(name)
  srv:reset()
  local c <close> = instantly.new { api_key = srv.api_key, base_url = srv.url, rate_limit = false }
  return assert(c.lead_lists:create { name = name }).id
end

local BATCHES = math.ceil(ROWS / 1000)

-- The import row: SDK import against posting its recorded batches, in
-- BENCH_REPS pairs (each on a freshly reset mock, the order of the two
-- runs swapped from one pair to the next); the pair with the median
-- ratio is the row. One pair on this shared host read anywhere from 0.75x
-- to 1.21x, so a single pair decides nothing.
do
  local dir = tmp .. "/batches"
  local runs = {}
  -- each returns { rows =, secs =, rss = } for one run on a reset mock
  local function raw_run()
    os.execute("rm -rf " .. q(dir) .. " && mkdir -p " .. q(dir))
    local list = fresh_list("bench raw")
    local p = assert(io.popen(("LUA_PATH=%s LUA_CPATH=%s lua5.4 %s record %s %s %s"):format(q(package.path),
      q(package.cpath), q(here .. "/worker.lua"), q(list), q(big), q(dir))))
    local nb = tonumber(p:read("a"))
    p:close()
    assert(nb == BATCHES, "recorded " .. tostring(nb) .. " batches")
    local r = {}
    r.rows, r.secs, r.rss = worker("raw", srv.url, srv.api_key, dir, 4)
    assert(r.rows == ROWS, "raw uploaded " .. r.rows)
    return r
  end
  local function sdk_run()
    local r = {}
    r.rows, r.secs, r.rss = worker("import", srv.url, srv.api_key, fresh_list("bench sdk row"), big, 4)
    assert(r.rows == ROWS, "uploaded " .. r.rows)
    return r
  end
  for rep = 1, math.max(1, REPS) do
    local p = {}
    if rep % 2 == 1 then p.raw = raw_run() end
    p.sdk = sdk_run()
    p.raw = p.raw or raw_run()
    p.ratio = (p.sdk.rows / p.sdk.secs) / (p.raw.rows / p.raw.secs)
    runs[rep] = p
  end
  table.sort(runs, function(a, b) return a.ratio < b.ratio end)
  local m = runs[(#runs + 1) // 2]
  local raw, sdk, ratio = m.raw, m.sdk, m.ratio
  local sdk_rows, sdk_secs, sdk_rss = sdk.rows, sdk.secs, sdk.rss
  print(("%-44s %10s %12s %8s"):format("import row (same mock, concurrency 4)", "rows/s", "peak RSS", "ratio"))
  print(("  %-42s %10.0f %9.1f MB"):format(("%d rows, pre-encoded batches, bare loop"):format(ROWS),
    raw.rows / raw.secs, raw.rss / 1024))
  print(("  %-42s %10.0f %9.1f MB %7.2fx"):format(("%d rows, leads:import from CSV"):format(ROWS),
    sdk_rows / sdk_secs, sdk_rss / 1024, ratio))
  print(("  (the median of %d pairs; their ratios ran %.2fx to %.2fx)"):format(#runs, runs[1].ratio,
    runs[#runs].ratio))
  print(("target: bulk import >= 0.80x posting pre-encoded batches: %.2fx %s"):format(ratio,
    ratio >= 0.8 and "met" or "MISSED"))
  print(("ISSUE14|bulk import, %d rows (rows/s)|pre-encoded loop: %.0f|%.0f|%.4f|0.8"):format(
    ROWS, raw.rows / raw.secs, sdk_rows / sdk_secs, ratio))
  os.execute("rm -rf " .. q(dir))
  print(("%-44s %10s %10s %12s"):format("import scaling (concurrency 4)", "seconds", "rows/s", "peak RSS"))
  for _, f in ipairs({ { small, SMALL }, { mid, MID } }) do
    local l = fresh_list("bench scale " .. f[2])
    local r, secs, rss = worker("import", srv.url, srv.api_key, l, f[1], 4)
    assert(r == f[2])
    print(("  %-42s %10.2f %10.0f %9.1f MB"):format(("%d rows"):format(r), secs, r / secs, rss / 1024))
  end
  print(("  %-42s %10.2f %10.0f %9.1f MB"):format(("%d rows"):format(sdk_rows), sdk_secs, sdk_rows / sdk_secs,
    sdk_rss / 1024))
end
print(("%-44s %10s %12s %8s"):format("import (CSV -> POST /leads/add, 1000/batch)", "rows/s", "peak RSS",
  "vs 1k"))
local list_small = fresh_list("bench small")
local rows_s, secs_s, rss_small = worker("import", srv.url, srv.api_key, list_small, small, 4)
print(("  %-42s %10.0f %9.1f MB"):format(("%d rows, concurrency 4"):format(rows_s), rows_s / secs_s,
  rss_small / 1024))
local list_big
for _, c in ipairs({ 1, 4, 8 }) do
  local list = fresh_list("bench c" .. c)
  local rows, secs, rss = worker("import", srv.url, srv.api_key, list, big, c)
  assert(rows == ROWS, "uploaded " .. rows)
  print(("  %-42s %10.0f %9.1f MB %7.2fx"):format(("%d rows, concurrency %d"):format(ROWS, c), rows / secs,
    rss / 1024, rss / rss_small))
  list_big = list
end
print("  (the mock is one single-threaded Lua process: against it the client mostly waits for its CPU)")
-- The real API answers a 1000-lead batch in a fraction of a second over
-- the network; the mock holds each response (a delay fault, which parks it
-- without blocking other connections) to show what concurrency buys then.
local LAT = tonumber(os.getenv("BENCH_LATENCY")) or 0.25
for _, c in ipairs({ 1, 4, 8 }) do
  local list = fresh_list("bench latency c" .. c)
  srv:fault { method = "POST", path = "/leads/add", delay = LAT, count = BATCHES }
  local rows, secs = worker("import", srv.url, srv.api_key, list, big, c)
  assert(rows == ROWS, "uploaded " .. rows)
  print(("  %-42s %10.0f"):format(("%d rows, concurrency %d, +%g s per batch"):format(ROWS, c, LAT), rows / secs))
  list_big = list -- the state is reset per run: export the last one
end
srv:clear_faults()

print(("%-44s %10s %12s"):format("export (POST /leads/list, 100/page)", "rows/s", "peak RSS"))
local e_rows, e_secs, e_rss = worker("export", srv.url, srv.api_key, list_big, tmp .. "/out.csv")
print(("  %-42s %10.0f %9.1f MB"):format(("%d leads to CSV"):format(e_rows), e_rows / e_secs, e_rss / 1024))
local j_rows, j_secs, j_rss = worker("export", srv.url, srv.api_key, list_big, tmp .. "/out.jsonl")
print(("  %-42s %10.0f %9.1f MB"):format(("%d leads to JSONL"):format(j_rows), j_rows / j_secs, j_rss / 1024))
local list_small2
do
  local c <close> = instantly.new { api_key = srv.api_key, base_url = srv.url, rate_limit = false }
  list_small2 = assert(c.lead_lists:create { name = "bench small export" }).id
end
assert(worker("import", srv.url, srv.api_key, list_small2, small, 1) == SMALL)
local s_rows, s_secs, s_rss = worker("export", srv.url, srv.api_key, list_small2, tmp .. "/small.csv")
print(("  %-42s %10.0f %9.1f MB"):format(("%d leads to CSV"):format(s_rows), s_rows / s_secs, s_rss / 1024))
print(("  peak RSS %d leads / %d leads: %.2fx (target <= 2x)"):format(e_rows, s_rows, e_rss / s_rss))

srv:stop()
os.execute("rm -rf " .. q(tmp))
