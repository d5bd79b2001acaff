--- The mock Instantly API V2 application: auth, rate limits, faults, the
-- request log, the control plane under /__mock/ and dispatch to the
-- operation handlers. `main(argv)` is bin/instantly-mock.
-- @module instantly.mock.server

local http = require "instantly.server.http"
local json = require "instantly.mock.json"
local util = require "instantly.mock.util"
local router_mod = require "instantly.mock.router"
local validate = require "instantly.mock.validate"
local ratelimit = require "instantly.mock.ratelimit"
local state_mod = require "instantly.mock.state"
local handlers = require "instantly.mock.handlers"
local seed_mod = require "instantly.mock.seed"
local socket = require "socket"

local encode, decode, null, array = json.encode, json.decode, json.null, json.array
local gettime = socket.gettime
local fmt = string.format

local M = {}

--- The documented test key: accepted when no --api-key is given.
M.DEFAULT_API_KEY = "inst_mock_MDAwMDAwMDAtMDAwMC00MDAwLTgwMDAtMDAwMDAwMDAwMDAx"

M.LOG_LIMIT = 50000

local App = {}
App.__index = App

local function envelope(status, message)
  return encode({ statusCode = status, error = http.REASONS[status] or "Error", message = message })
end
M.envelope = envelope

local function respond(status, value, headers)
  local body
  if status == 204 or value == nil then
    body = ""
  elseif type(value) == "string" then
    body = value
  else
    body = encode(value)
  end
  return { status = status, body = body, headers = headers }
end

local function fail(status, message, headers)
  return { status = status, body = envelope(status, message), headers = headers }
end

-- Settings a test can flip with srv:set{...}.
M.DEFAULT_SETTINGS = {
  send_test_error = false,   -- true or an error code: POST /emails/test answers 200 {error}
  job_steps = 3,             -- polls of GET /background-jobs/{id} before a job is terminal
  fail_jobs = false,         -- background jobs end "failed"
  verification_polls = 1,    -- polls of GET /email-verification/{email} that still say pending
  oauth_polls = 1,           -- polls of the OAuth status that still say pending
  oauth_lifetime = 600,      -- seconds before an OAuth session expires
  oauth_result = "success",  -- or "error"
  exact_last_page = false,   -- true: the last page with data carries no cursor
  default_limit = 100,       -- page size when `limit` is absent
  per_second = 100,          -- global limits per API key (the workspace's)
  per_minute = 6000,
}

M.EXTENSIONS = { "instantly.mock.webhooks" }

local function load_extensions(app)
  for _, name in ipairs(M.EXTENSIONS) do
    if package.searchpath(name, package.path) then
      local ext = require(name)
      if type(ext) == "table" and ext.install then ext.install(app) end
    end
  end
end

function M.new(opts)
  opts = opts or {}
  local self = setmetatable({
    seed = opts.seed or 1,
    keys = {},
    rate_limits = opts.rate_limits ~= false,
    quiet = opts.quiet,
    log_lines = opts.log or function(s) io.stderr:write(s, "\n") end,
    router = router_mod.from_catalog(),
    requests = {},
    faults = {},
    settings = {},
    limiters = {},
    sinks = {},
    routes = {},
  }, App)
  local keys = opts.api_keys
  if not keys or #keys == 0 then keys = { M.DEFAULT_API_KEY } end
  for _, k in ipairs(keys) do self.keys[k] = { scopes = { "all:all" } } end
  self.base_keys = keys
  self:reset()
  load_extensions(self)
  return self
end

-- Events (the seams h-mock defines: app.routes, app:add_sink, app:emit,
-- app:set_interest, app:complete_campaign; minimal versions here) ---------

function App:add_sink(fn)
  self.sinks[#self.sinks + 1] = fn
end

--- Tell every sink that something happened: "lead_interest_status"
-- {workspace_id, lead, email, campaign_id, list_id, interest_status,
-- previous} and "campaign_completed" {workspace_id, campaign}.
function App:emit(event_type, data)
  for _, sink in ipairs(self.sinks) do
    local ok, err = pcall(sink, event_type, data, self)
    if not ok and not self.quiet then self.log_lines("mock: event sink failed: " .. tostring(err)) end
  end
end

--- Set a lead's interest status the way the API does, and say so.
function App:set_interest(store, lead, value)
  local previous = lead.lt_interest_status
  lead.lt_interest_status = value
  lead.timestamp_last_interest_change = store:now_iso()
  if previous ~= value then
    self:emit("lead_interest_status", { workspace_id = store.workspace_id, lead = lead, email = lead.email,
      campaign_id = lead.campaign, list_id = lead.list_id, interest_status = value, previous = previous })
  end
end

--- A campaign has sent its last step to every lead.
function App:complete_campaign(store, c)
  if c.status == 3 then return end
  c.status = 3
  c.timestamp_updated = store:now_iso()
  self:emit("campaign_completed", { workspace_id = store.workspace_id, campaign = c })
end

function App:reset()
  self.store = state_mod.new(self.seed)
  self.store.app = self
  seed_mod.build(self.store)
  self:clear_log()
  self.faults = {}
  self.limiters = {}
  for k, v in pairs(M.DEFAULT_SETTINGS) do self.settings[k] = v end
  -- keys created through the API die with the state they were created in
  for k, v in pairs(self.keys) do if v.created then self.keys[k] = nil end end
end

-- Request log ---------------------------------------------------------------

local function redact(headers)
  local h = {}
  for k, v in pairs(headers) do
    if k == "authorization" then
      local scheme = v:match("^(%S+)%s") or ""
      h[k] = (scheme ~= "" and (scheme .. " ") or "") .. "[REDACTED]"
    elseif k == "x-api-key" then
      h[k] = "[REDACTED]"
    else
      h[k] = v
    end
  end
  return h
end

-- Recording is cheap (references to what the parser built); decoding,
-- redaction and query parsing happen when the log is read. The log is a
-- ring of LOG_LIMIT entries so a long benchmark cannot grow it forever.
function App:record(req)
  local n = self.log_next
  self.requests[n] = {
    seq = n, time = gettime(), method = req.method, path = req.path,
    raw_query = req.raw_query, headers = req.headers, body = req.body,
  }
  self.log_next = n + 1
  local drop = n - M.LOG_LIMIT
  if drop >= self.log_first then
    self.requests[drop] = nil
    self.log_first = drop + 1
  end
end

function App:clear_log()
  self.requests = {}
  self.log_first, self.log_next = 1, 1
end

local function public_entry(e)
  local entry = {
    seq = e.seq, time = e.time, method = e.method, path = e.path,
    decoded_path = util.unescape(e.path), raw_query = e.raw_query,
    query = util.parse_query(e.raw_query), headers = redact(e.headers),
  }
  local body = e.body
  if body and body ~= "" then
    local v = decode(body)
    if v == nil then entry.body = body else entry.body = v end
  end
  return entry
end

-- Faults ---------------------------------------------------------------------

local PREFIX = "/api/v2"

local function fault_matches(f, req, route)
  if f.method and f.method ~= "*" and f.method:upper() ~= req.method then return false end
  if f.op then
    return route ~= nil and route.op.id == f.op
  end
  if f.path then
    local p = f.path
    local full = p:sub(1, #PREFIX) == PREFIX and p or (PREFIX .. p)
    if req.path ~= full and util.unescape(req.path) ~= full then
      -- a catalog template such as /campaigns/{id}
      if not (route and (PREFIX .. route.op.path) == full) then return false end
    end
  end
  if f.pattern and not req.path:find(f.pattern) then return false end
  return true
end

function App:take_fault(req, route)
  for i, f in ipairs(self.faults) do
    if fault_matches(f, req, route) then
      f.remaining = f.remaining - 1
      if f.remaining <= 0 then table.remove(self.faults, i) end
      f.hits = (f.hits or 0) + 1
      return f
    end
  end
end

local FAULT_KEYS = {
  method = "string", path = "string", pattern = "string", op = "string",
  count = "number", status = "number", retry_after = "number", delay = "number",
  close = "string", truncate = "boolean", invalid_json = "boolean",
  oversize = "number", trickle = "number", body = "any", process = "boolean",
  message = "string",
}

function App:add_fault(f)
  if type(f) ~= "table" then return nil, "fault must be an object" end
  for k, v in pairs(f) do
    local want = FAULT_KEYS[k]
    if not want then return nil, "unknown fault option '" .. tostring(k) .. "'" end
    if want ~= "any" and type(v) ~= want then return nil, "fault option '" .. k .. "' must be " .. want end
  end
  if f.close and f.close ~= "before_headers" and f.close ~= "after_headers" then
    return nil, "fault option 'close' must be before_headers or after_headers"
  end
  if f.status and (f.status < 100 or f.status > 599) then
    return nil, "fault option 'status' must be an HTTP status"
  end
  if not (f.status or f.delay or f.close or f.truncate or f.invalid_json or f.oversize
          or f.trickle or f.body) then
    return nil, "fault needs one of status, delay, close, truncate, invalid_json, oversize, trickle, body"
  end
  if f.pattern and not pcall(string.find, "", f.pattern) then
    return nil, "fault option 'pattern' is not a valid Lua pattern"
  end
  local copy = {}
  for k, v in pairs(f) do copy[k] = v end
  copy.remaining = math.tointeger(f.count) or 1
  if copy.remaining < 1 then return nil, "fault option 'count' must be >= 1" end
  self.faults[#self.faults + 1] = copy
  return copy
end

-- Apply a fault's mangling to a computed response.
local function mangle(res, f)
  if f.invalid_json then
    res.body = '{"items": [{"id": "truncated'
    res.status = res.status == 204 and 200 or res.status
  end
  if f.oversize then
    local n = math.tointeger(f.oversize) or 0
    local head = '{"padding":"'
    local pad = math.max(0, n - #head - 2)
    res.body = head .. string.rep("x", pad) .. '"}'
    res.status = res.status == 204 and 200 or res.status
  end
  if f.close or f.truncate or f.trickle then
    res.fault = { close = f.close, truncate = f.truncate, trickle = f.trickle }
    if f.truncate and #res.body < 2 then res.body = '{"message":"truncated body"}' end
  end
  return res
end

-- Auth and rate limits ------------------------------------------------------------

function App:auth(req)
  local h = req.headers["authorization"]
  if not h then return nil, "Missing Authorization header" end
  local key = h:match("^[Bb][Ee][Aa][Rr][Ee][Rr]%s+(%S+)%s*$")
  if not key then return nil, "Authorization header must be 'Bearer <API key>'" end
  local info = self.keys[key]
  if not info then return nil, "Invalid API key" end
  return key, info
end

local function has_scope(info, op)
  if not op.scopes or #op.scopes == 0 then return true end
  for _, have in ipairs(info.scopes) do
    if have == "all:all" then return true end
    for _, need in ipairs(op.scopes) do
      if have == need then return true end
    end
  end
  return false
end

function App:limiter(name, specs)
  local l = self.limiters[name]
  if not l then
    l = ratelimit.group(specs)
    self.limiters[name] = l
  end
  return l
end

function App:rate_limit(key, op)
  if not self.rate_limits then return true end
  local now = gettime()
  local st = self.settings
  local ok, wait = self:limiter("global:" .. key, { { st.per_second, 1 }, { st.per_minute, 60 } }):admit(now)
  if ok and op.rate_limit then
    local specs = ratelimit.parse(op.rate_limit)
    if #specs > 0 then
      ok, wait = self:limiter("op:" .. op.id .. ":" .. key, specs):admit(now)
    end
  end
  if ok then return true end
  return false, math.max(1, math.ceil(wait))
end

-- Dispatch ------------------------------------------------------------------------

function App:handle(req)
  if req.path:sub(1, 8) == "/__mock/" or req.path == "/__mock" then
    return self:control(req)
  end
  self:record(req)
  local route, params = self.router:match(req.method, req.path)
  local f = self:take_fault(req, route)
  if f then
    if f.delay and f.delay > 0 then http.sleep(f.delay) end
    if f.status then
      local headers
      if f.retry_after then headers = { ["Retry-After"] = tostring(math.ceil(f.retry_after)) } end
      local body
      if f.body ~= nil then
        body = type(f.body) == "string" and f.body or encode(f.body)
      else
        body = envelope(f.status, f.message or ("Injected fault " .. f.status))
      end
      local res = { status = f.status, body = body, headers = headers }
      if not f.process then return mangle(res, f) end
      -- process = true: do the work, answer with the fault anyway
      self:dispatch(req, route, params)
      return mangle(res, f)
    end
    if f.process == false and (f.close or f.truncate) then
      return mangle({ status = 200, body = "" }, f)
    end
    local res = self:dispatch(req, route, params)
    if f.body ~= nil then
      res.body = type(f.body) == "string" and f.body or encode(f.body)
    end
    return mangle(res, f)
  end
  return self:dispatch(req, route, params)
end

function App:dispatch(req, route, params)
  local key, info = self:auth(req)
  if not key then return fail(401, info) end
  if not route then
    return fail(404, fmt("Route %s:%s not found", req.method, req.path))
  end
  local op = route.op
  local ok, retry = self:rate_limit(key, op)
  if not ok then
    return fail(429, "Too many requests, please retry in " .. retry .. " seconds",
      { ["Retry-After"] = tostring(retry) })
  end
  if not has_scope(info, op) then
    return fail(403, "API key does not have any of the required scopes: " .. table.concat(op.scopes, ", "))
  end
  local pok, perr = validate.params(op, params)
  if not pok then return fail(400, perr) end
  local query, qerr = validate.query(op, util.parse_query(req.raw_query))
  if not query then return fail(400, qerr) end
  local body
  if req.body and req.body ~= "" then
    local ct = (req.headers["content-type"] or ""):lower()
    if ct ~= "" and not ct:find("json", 1, true) then
      return fail(415, "Unsupported Media Type: " .. ct)
    end
    local err
    body, err = decode(req.body)
    if body == nil then return fail(400, "Body is not valid JSON: " .. tostring(err)) end
  end
  local bok, berr = validate.body(op, body)
  if not bok then return fail(400, berr) end
  local ctx = {
    app = self, store = self.store, op = op, entity = route.entity, params = params,
    query = query, body = body, req = req, settings = self.settings, key = key,
  }
  local status, value, headers = handlers.run(ctx)
  if type(status) == "table" then return status end
  return respond(status, value, headers)
end

-- Control plane -------------------------------------------------------------------

local function control_json(status, value)
  return { status = status, body = encode(value) }
end


function App:control(req)
  local path, m = req.path, req.method
  local body
  if req.body and req.body ~= "" then
    body = decode(req.body)
    if body == nil then return control_json(400, { error = "body is not valid JSON" }) end
  end
  if path == "/__mock/health" and m == "GET" then
    return control_json(200, { ok = true, pid = M.pid(), seed = self.seed, port = self.port })
  elseif path == "/__mock/requests" and m == "GET" then
    local q = util.parse_query(req.raw_query)
    local since = math.tointeger(tonumber(q.since)) or 0
    local out = array({})
    for i = math.max(self.log_first, since + 1), self.log_next - 1 do
      out[#out + 1] = public_entry(self.requests[i])
    end
    return control_json(200, { items = out })
  elseif path == "/__mock/requests" and m == "DELETE" then
    local n = self.log_next - self.log_first
    self:clear_log()
    return control_json(200, { cleared = n })
  elseif path == "/__mock/reset" and m == "POST" then
    self:reset()
    return control_json(200, { ok = true })
  elseif path == "/__mock/faults" and m == "POST" then
    local list = (body and json.is_array(body)) and body or { body }
    local ids = array({})
    for _, f in ipairs(list) do
      local added, err = self:add_fault(f)
      if not added then return control_json(400, { error = err }) end
      ids[#ids + 1] = #self.faults
    end
    return control_json(200, { ok = true, pending = #self.faults })
  elseif path == "/__mock/faults" and m == "GET" then
    local out = array({})
    for _, f in ipairs(self.faults) do
      local c = {}
      for k, v in pairs(f) do c[k] = v end
      out[#out + 1] = c
    end
    return control_json(200, { items = out })
  elseif path == "/__mock/faults" and m == "DELETE" then
    local n = #self.faults
    self.faults = {}
    return control_json(200, { cleared = n })
  elseif path == "/__mock/settings" and m == "GET" then
    local s = {}
    for k, v in pairs(self.settings) do s[k] = v end
    s.rate_limits = self.rate_limits
    return control_json(200, s)
  elseif path == "/__mock/settings" and (m == "POST" or m == "PATCH") then
    if type(body) ~= "table" then return control_json(400, { error = "settings must be an object" }) end
    for k, v in pairs(body) do
      if k == "rate_limits" then
        if type(v) ~= "boolean" then return control_json(400, { error = "rate_limits must be boolean" }) end
      elseif M.DEFAULT_SETTINGS[k] == nil then
        return control_json(400, { error = "unknown setting '" .. tostring(k) .. "'" })
      else
        local want = type(M.DEFAULT_SETTINGS[k])
        if k == "send_test_error" then
          if type(v) ~= "boolean" and type(v) ~= "string" then
            return control_json(400, { error = "send_test_error must be boolean or string" })
          end
        elseif type(v) ~= want then
          return control_json(400, { error = k .. " must be " .. want })
        end
      end
    end
    for k, v in pairs(body) do
      if k == "rate_limits" then
        self.rate_limits = v
        self.limiters = {}
      else
        if (k == "per_second" or k == "per_minute") and (math.tointeger(v) or 0) < 1 then
          return control_json(400, { error = k .. " must be a positive integer" })
        end
        self.settings[k] = v
        if k == "per_second" or k == "per_minute" then self.limiters = {} end
      end
    end
    return control_json(200, { ok = true })
  elseif path == "/__mock/state" and m == "GET" then
    local counts = {}
    for name, c in pairs(self.store.colls) do counts[name] = #c.items end
    return control_json(200, { counts = counts, workspace_id = self.store.workspace_id })
  elseif path == "/__mock/shutdown" and m == "POST" then
    self.http:stop()
    return { status = 200, body = encode({ ok = true }), close = true }
  end
  local route = self.routes[m .. " " .. path]
  if route then
    local status, value = route(self, req, body, {})
    if type(status) == "table" then return status end
    return control_json(status, value)
  end
  return control_json(404, { error = "unknown control endpoint " .. m .. " " .. path })
end

-- Process -------------------------------------------------------------------------

function M.pid()
  local f = io.open("/proc/self/stat")
  if not f then return nil end
  local pid = f:read("n")
  f:close()
  return math.tointeger(pid)
end

local function alive(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return false end
  local s = f:read("l") or ""
  f:close()
  -- a zombie parent has exited too
  return not s:match("^%d+ %b() Z")
end

--- Bind and serve; returns when stopped.
function App:listen(host, port, opts)
  opts = opts or {}
  self.http = http.new{
    host = host, port = port,
    handler = function(req) return self:handle(req) end,
    error_body = envelope,
    max_body = opts.max_body,
    log = function(s) if not self.quiet then self.log_lines(s) end end,
    on_tick = function()
      if opts.parent_pid and not alive(opts.parent_pid) then self.http:stop() end
    end,
  }
  local ok, err = self.http:bind()
  if not ok then return nil, err end
  self.port = self.http.port
  return true
end

function App:serve()
  self.http:run()
end

local USAGE = [[
usage: instantly-mock [--host 127.0.0.1] [--port 0] [--seed N] [--api-key KEY ...]
                      [--rate-limits on|off] [--max-body BYTES] [--parent-pid PID] [--quiet]

A local mock of the Instantly.ai API V2 for tests. Prints
"listening on http://HOST:PORT" as its first line once it accepts
connections, then serves until SIGTERM/SIGINT (or POST /__mock/shutdown).
Without --api-key it accepts the documented test key:
  ]] .. M.DEFAULT_API_KEY .. "\n"

--- Parse argv (a list of strings). Returns options or nil, message.
function M.parse_args(argv)
  local o = { host = "127.0.0.1", port = 0, seed = 1, api_keys = {}, rate_limits = true }
  local i = 1
  local function value(name)
    i = i + 1
    local v = argv[i]
    if v == nil then error({ msg = name .. " needs a value" }) end
    return v
  end
  local ok, err = pcall(function()
    while i <= #argv do
      local a = argv[i]
      local name, inline = a:match("^(%-%-[%w-]+)=(.*)$")
      if name then
        a = name
        table.insert(argv, i + 1, inline)
      end
      if a == "--host" then o.host = value(a)
      elseif a == "--port" then
        o.port = math.tointeger(tonumber(value(a)))
        if not o.port or o.port < 0 or o.port > 65535 then error({ msg = "--port must be 0-65535" }) end
      elseif a == "--seed" then
        o.seed = math.tointeger(tonumber(value(a)))
        if not o.seed then error({ msg = "--seed must be an integer" }) end
      elseif a == "--api-key" then o.api_keys[#o.api_keys + 1] = value(a)
      elseif a == "--rate-limits" then
        local v = value(a)
        if v == "on" then o.rate_limits = true elseif v == "off" then o.rate_limits = false
        else error({ msg = "--rate-limits must be on or off" }) end
      elseif a == "--max-body" then
        o.max_body = math.tointeger(tonumber(value(a)))
        if not o.max_body or o.max_body < 1 then error({ msg = "--max-body must be a positive integer" }) end
      elseif a == "--parent-pid" then
        o.parent_pid = math.tointeger(tonumber(value(a)))
        if not o.parent_pid then error({ msg = "--parent-pid must be a pid" }) end
      elseif a == "--quiet" or a == "-q" then o.quiet = true
      elseif a == "--help" or a == "-h" then o.help = true
      else error({ msg = "unknown option " .. a }) end
      i = i + 1
    end
  end)
  if not ok then
    if type(err) == "table" then return nil, err.msg end
    error(err, 0)
  end
  return o
end

local LOOPBACK = { ["127.0.0.1"] = true, ["localhost"] = true, ["::1"] = true }

function M.main(argv)
  local o, err = M.parse_args(argv)
  if not o then
    io.stderr:write("instantly-mock: ", err, "\n", USAGE)
    return 2
  end
  if o.help then
    io.stdout:write(USAGE)
    return 0
  end
  if not LOOPBACK[o.host] and not o.quiet then
    -- only an explicit --host gets here: the default is loopback
    io.stderr:write("instantly-mock: warning: listening on ", o.host, ", reachable from other machines\n")
  end
  local app = M.new{ seed = o.seed, api_keys = o.api_keys, rate_limits = o.rate_limits, quiet = o.quiet }
  local ok, berr = app:listen(o.host, o.port, { max_body = o.max_body, parent_pid = o.parent_pid })
  if not ok then
    io.stderr:write("instantly-mock: cannot listen on ", o.host, ":", tostring(o.port), ": ", tostring(berr), "\n")
    return 1
  end
  local shown = o.host:find(":", 1, true) and ("[" .. o.host .. "]") or o.host
  io.stdout:write("listening on http://", shown, ":", app.port, "\n")
  io.stdout:flush()
  if not o.quiet then
    io.stderr:write(fmt("instantly-mock: seed %d, rate limits %s, %d operations\n",
      o.seed, o.rate_limits and "on" or "off", #app.router.ops))
  end
  app:serve()
  return 0
end

M.App = App
M.null = null
return M
