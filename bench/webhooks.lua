-- webhooks.lua - end-to-end webhook latency on the mock: from the
-- control-plane call that makes a lead open an email to `on_event` running
-- in a receiver in this process, median of N (default 100). The baseline,
-- measured in the same run, is the control-plane round trip alone
-- (GET /__mock/health), so the ratio is what delivery adds on top.
--   LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/?.so;;" lua5.4 bench/webhooks.lua [N]

local socket = require "socket"
local instantly = require "instantly"
local mock = require "instantly.mock"
local webhook = require "instantly.webhook"

local N = math.tointeger(tonumber(arg and arg[1])) or 100
local gettime = socket.gettime

local function median(t)
  table.sort(t)
  local n = #t
  if n % 2 == 1 then return t[(n + 1) // 2] end
  return (t[n // 2] + t[n // 2 + 1]) / 2
end

local srv = assert(mock.start { rate_limits = false })
local client = instantly.new { base_url = srv.url, api_key = srv.api_key }
local arrived
local r <close> = assert(webhook.receiver {
  path = "/bench", dedupe = false, on_event = function() arrived = gettime() end,
})
assert(client.webhooks:create { target_hook_url = r.url, event_type = "email_opened" })
local lead = assert(client.leads:list { limit = 1, in_campaign = true }).items[1]

-- warm up both paths
for _ = 1, 5 do assert(srv:_call("GET", "/__mock/health")) end

local base = {}
for i = 1, N do
  local t0 = gettime()
  assert(srv:_call("GET", "/__mock/health"))
  base[i] = gettime() - t0
end

local e2e, missed = {}, 0
local body = { lead_email = lead.email }
for i = 1, N + 5 do
  arrived = nil
  local t0 = gettime()
  assert(srv:_call("POST", "/__mock/events/open", body))
  local stop = t0 + 5
  while not arrived and gettime() < stop do r:step(0.01) end
  if not arrived then
    missed = missed + 1
  elseif i > 5 then
    e2e[#e2e + 1] = arrived - t0
  end
end
srv:stop()

local b, e = median(base), median(e2e)
print(string.format("%-44s %10s %8s", "webhooks (median of " .. N .. ")", "ms", "ratio"))
print(string.format("%-44s %10.3f %8.2f", "control-plane round trip (baseline)", b * 1000, 1))
print(string.format("%-44s %10.3f %8.2f", "control action -> on_event (end to end)", e * 1000, e / b))
if missed > 0 then
  print(string.format("%d deliveries did not arrive within 5 s", missed))
  os.exit(1)
end
