-- run-test.lua - `make test` in examples/embed: starts the fixture server
-- of the transport specs on 127.0.0.1, runs the embedded host, the
-- two-thread program and the failing-allocator program against it, then
-- the whole-SDK host against a mock of the API, and fails if any of them
-- does.
package.path = "../../spec/?.lua;../../lua/?.lua;../../lua/?/init.lua;" .. package.path
local fixture = require "support.http_fixture"
local out = assert(arg[1], "usage: lua5.4 run-test.lua BUILD_DIR")

local fx = fixture.start()
local base = fx.url("")
local failed = false
for _, cmd in ipairs{
  ("%s/host request.lua %s"):format(out, base),
  ("%s/threads %s"):format(out, base),
  ("%s/faults %s"):format(out, base),
} do
  io.write("embed: ", cmd, "\n")
  io.stdout:flush()
  local ok = os.execute(cmd)
  if not ok then
    failed = true
    io.write("embed: FAILED: ", cmd, "\n")
  end
end
fx.stop()

local mock = require("instantly.mock").start{ rate_limits = false }
local cmd = ("%s/sdk_host ../../lua sdk_request.lua %s %s"):format(out, mock.url, mock.api_key)
io.write("embed: ", out, "/sdk_host ../../lua sdk_request.lua MOCK_URL MOCK_KEY\n")
io.stdout:flush()
if not os.execute(cmd) then
  failed = true
  io.write("embed: FAILED: sdk_host\n")
end
mock:stop()
os.exit(failed and 1 or 0)
