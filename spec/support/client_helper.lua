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

-- A LuaSocket transport with the core session's interface, used only when
-- the core was built without one (it keeps the mock specs runnable while
-- the transport is being written; the core session is preferred).
local function socket_transport()
  local http = require "socket.http"
  local ltn12 = require "ltn12"
  local t = {}
  function t.request(_, req)
    local chunks = {}
    local headers = {}
    for k, v in pairs(req.headers or {}) do headers[k] = v end
    if req.body then headers["content-length"] = tostring(#req.body) end
    http.TIMEOUT = req.timeout or 30
    local ok, code, rh = http.request {
      url = req.url, method = req.method, headers = headers,
      source = req.body and ltn12.source.string(req.body) or nil,
      sink = ltn12.sink.table(chunks),
    }
    if not ok or type(code) ~= "number" then
      local msg = tostring(code)
      local kind = msg:find("refused") and "connect" or msg:find("timeout") and "timeout"
        or msg:find("host") and "dns" or "protocol"
      return nil, { kind = kind, message = msg }
    end
    return code, table.concat(chunks), rh or {}
  end
  return t
end

--- A transport for the mock: the core session when the core has one.
function H.transport()
  if type(core.session) == "function" then return core.session { timeout = 30 } end
  return socket_transport()
end

function H.has_core_session()
  return type(core.session) == "function"
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
  if not H.has_core_session() then o.transport = H.transport() end
  for k, v in pairs(opts or {}) do o[k] = v end
  return instantly.new(o)
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
