-- bare_server.lua - the mock's HTTP layer (instantly.server.http) with a
-- handler that answers a constant body: the baseline that shows what the
-- API part of the mock (routing, auth, validation, state, JSON) costs.
-- Prints "listening on http://127.0.0.1:PORT" like bin/instantly-mock.
local http = require "instantly.server.http"

local body = '{"count":3}'
local srv = http.new{
  port = 0,
  handler = function(req)
    if req.path == "/__mock/shutdown" then
      return { status = 200, body = '{"ok":true}', close = true, stop = true }
    end
    return { status = 200, body = body }
  end,
}
assert(srv:bind())
local handler = srv.handler
srv.handler = function(req)
  local res = handler(req)
  if res.stop then srv:stop() end
  return res
end
io.stdout:write("listening on http://127.0.0.1:", srv.port, "\n")
io.stdout:flush()
srv:run()
