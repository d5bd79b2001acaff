-- run-test.lua - `make test` in examples/embed: starts the fixture server
-- of the transport specs on 127.0.0.1, runs the embedded host, the
-- two-thread program and the failing-allocator program against it, and
-- fails if any of them does.
package.path = "../../spec/?.lua;" .. package.path
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
os.exit(failed and 1 or 0)
