-- worker.lua - one bulk run in its own process, so its peak RSS is its own:
--   lua5.4 worker.lua import URL KEY LIST_ID CSV CONCURRENCY
--   lua5.4 worker.lua export URL KEY LIST_ID PATH
--   lua5.4 worker.lua parse CSV
-- prints "rows seconds peak_rss_kib" (VmHWM from /proc/self/status).
local instantly = require "instantly"
local core = require "instantly.core"
local csv = require "instantly.csv"

local function vmhwm()
  local f = io.open("/proc/self/status")
  if not f then return 0 end
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmHWM:%s*(%d+)")) or 0
end

local mode = arg[1]
local rows, t0 = 0, core.monotime()
if mode == "parse" then
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
