-- request.lua - the script examples/embed/host runs: a few requests over
-- one session to the base URL given as its argument, checked as it goes.
local core = require "instantly.core"
local base = assert(..., "usage: host request.lua BASE_URL")

local s <close> = core.session{ timeout = 10 }
for i = 1, 10 do
  local status, body = s:request{ url = base .. "/hello" }
  assert(status == 200, "request " .. i .. ": " .. tostring(body))
  assert(body == "hello world")
end
local status, body, headers = s:request{ method = "POST", url = base .. "/echo?back=1", body = "ping" }
assert(status == 200 and body == "ping", tostring(body))
print(("embedded core %s over libcurl %s: 11 requests, last %d %s (%s)"):format(
  core.VERSION, core.curl_version, status, body, headers["content-type"]))
