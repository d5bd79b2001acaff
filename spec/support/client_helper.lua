-- Helpers for the client specs: a scripted fake transport (injected, no
-- network at all) and clients pointed at the project's mock server.
local core = require "instantly.core"
local instantly = require "instantly"

local H = {}

H.KEY = "inst_test_0123456789abcdefXYZ"

--- A fake transport: `responder(req, n)` answers the n-th request with
-- `status, body, headers` or `nil, {kind =, message =}`; every request is
-- recorded in `t.log` (with its decoded JSON body in `t.log[i].json`).
function H.fake(responder)
  local t = { log = {} }
  function t:request(req)
    local entry = { method = req.method, url = req.url, headers = req.headers, body = req.body,
                    timeout = req.timeout, connect_timeout = req.connect_timeout }
    if req.body then entry.json = core.json_decode(req.body) end
    self.log[#self.log + 1] = entry
    return responder(req, #self.log)
  end
  return t
end

--- Always answer with the same JSON text.
function H.const(status, body, headers)
  return function() return status, body, headers or { ["content-type"] = "application/json" } end
end

--- A client on a fake transport, no rate limiting, tiny backoff.
function H.fake_client(responder, opts)
  local t = H.fake(responder or H.const(200, "{}"))
  local o = { api_key = H.KEY, transport = t, rate_limit = false, retry = { base = 0.001, cap = 0.002 } }
  for k, v in pairs(opts or {}) do o[k] = v end
  return instantly.new(o), t
end

--- Start the mock (asserting it started).
function H.mock(opts)
  local mock = require "instantly.mock"
  local o = { seed = 1, rate_limits = false }
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(mock.start(o))
end

--- A client pointed at a running mock.
function H.mock_client(srv, opts)
  local o = { api_key = srv.api_key, base_url = srv.url, retry = { base = 0.01, cap = 0.05 } }
  for k, v in pairs(opts or {}) do o[k] = v end
  return instantly.new(o)
end

--- Inside a describe (or a spec file's top level): one mock for all its
-- tests, started by busted's setup and stopped by its teardown, its
-- faults and request log cleared before each test. `ready(srv)` runs
-- once the mock is up (make clients there).
function H.mock_fixture(opts, ready)
  local busted = require "busted"
  local srv
  busted.setup(function()
    srv = H.mock(opts)
    ready(srv)
  end)
  busted.teardown(function()
    if srv then srv:stop() end
  end)
  busted.before_each(function()
    srv:clear_faults()
    srv:clear_requests()
  end)
end

--- How many requests the mock logged with this method and (decoded) path.
function H.count(srv, method, path)
  local n = 0
  for _, r in ipairs(srv:requests()) do
    if r.method == method and r.decoded_path == path then n = n + 1 end
  end
  return n
end

--- Deep equality for decoded JSON values (null-aware, ignores metatables).
function H.same(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then
    if type(a) == "number" and type(b) == "number" then return a == b end
    return false
  end
  for k, v in pairs(a) do if not H.same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

return H
