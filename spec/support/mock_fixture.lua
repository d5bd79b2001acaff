-- mock_fixture.lua - the fixture most mock specs share: inside a
-- describe, one mock server and one raw client (instantly.mock.client)
-- for all of its tests, the server's state reset before each test.
--
--   local srv, c
--   mock_fixture({ seed = 1, rate_limits = false }, function(s, cl) srv, c = s, cl end)
--
-- `ready(srv, c)` runs once both exist; a describe's own before_each runs
-- after the reset.
local mock = require "instantly.mock"
local client = require "instantly.mock.client"
local busted = require "busted"
local setup, teardown, before_each = busted.setup, busted.teardown, busted.before_each

return function(opts, ready)
  local srv, c
  setup(function()
    srv = assert(mock.start(opts))
    c = client.new(srv.url, { api_key = srv.api_key })
    ready(srv, c)
  end)
  teardown(function()
    if c then c:close() end
    if srv then srv:stop() end
  end)
  before_each(function() srv:reset() end)
end
