-- worker.lua - one bulk run in its own process, so its peak RSS is its own:
--   lua5.4 worker.lua import URL KEY LIST_ID CSV CONCURRENCY
--   lua5.4 worker.lua export URL KEY LIST_ID PATH
--   lua5.4 worker.lua parse CSV
--   lua5.4 worker.lua record LIST_ID CSV DIR   the batch bodies leads:import
--       would send for CSV, written to DIR/N.json through a recording
--       transport (nothing is sent; prints the batch count)
--   lua5.4 worker.lua raw URL KEY DIR CONCURRENCY   posts DIR's bodies as
--       they are, CONCURRENCY in flight, with a bare core session: the
--       baseline of the import row (nothing parsed or encoded in the loop)
-- prints "rows seconds peak_rss_kib" (VmHWM from /proc/self/status).
local instantly = require "instantly"
local core = require "instantly.core"
local csv = require "instantly.workflows.csv"

local function vmhwm()
  local f = io.open("/proc/self/status")
  if not f then return 0 end
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmHWM:%s*(%d+)")) or 0
end

local mode = arg[1]
local rows, t0 = 0, core.monotime()
if mode == "record" then
  local n = 0
  local recorder = { request = function(_, req)
    n = n + 1
    local f = assert(io.open(("%s/%d.json"):format(arg[4], n), "wb"))
    f:write(req.body)
    f:close()
    local count = select(2, req.body:gsub('"email":', ""))
    return 200, ('{"status":"success","total_sent":%d,"leads_uploaded":%d}'):format(count, count),
      { ["content-type"] = "application/json" }
  end }
  local client = instantly.new { api_key = "k", transport = recorder, rate_limit = false }
  local s = assert(client.leads:import { list_id = arg[2], leads = arg[3] })
  assert(s.ok, tostring(s))
  print(n)
  os.exit(0)
elseif mode == "raw" then
  local url, key, dir, conc = arg[2] .. "/api/v2/leads/add", arg[3], arg[4], tonumber(arg[5])
  local bodies = {}
  while true do
    local f = io.open(("%s/%d.json"):format(dir, #bodies + 1), "rb")
    if not f then break end
    bodies[#bodies + 1] = f:read("a")
    f:close()
  end
  local headers = { Authorization = "Bearer " .. key, ["Content-Type"] = "application/json",
                    Accept = "application/json" }
  local session <close> = core.session { timeout = 120 }
  t0 = core.monotime()
  local nexti = 1
  local function submit()
    if nexti > #bodies then return end
    session:submit { method = "POST", url = url, headers = headers, body = bodies[nexti] }
    nexti = nexti + 1
  end
  for _ = 1, conc do submit() end
  while session:pending() > 0 do
    for _, r in ipairs(session:poll(1)) do
      assert(r.status == 200, tostring(r.err or r.body))
      rows = rows + assert(core.json_decode(r.body)).leads_uploaded
      submit()
    end
  end
elseif mode == "parse" then
  local r = assert(csv.open(arg[2]))
  while true do
    local rec, err = r:read()
    if not rec then assert(err == nil, tostring(err)) break end
    rows = rows + 1
  end
  r:close()
else
  local client = instantly.new { api_key = arg[3], base_url = arg[2], rate_limit = false, timeout = 120 }
  if mode == "import" then
    local s = assert(client.leads:import { list_id = arg[4], leads = arg[5], concurrency = tonumber(arg[6]) })
    assert(s.ok and #s.failed_batches == 0, tostring(s))
    rows = s.uploaded
  elseif mode == "export" then
    local s = assert(client.leads:export_file { list_id = arg[4], path = arg[5] })
    rows = s.rows
  else
    error("unknown mode " .. tostring(mode))
  end
end
print(("%d %.3f %d"):format(rows, core.monotime() - t0, vmhwm()))
