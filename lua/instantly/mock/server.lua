--- The mock Instantly API V2 application: auth, workspaces, rate limits,
-- faults, the request log, the control plane under /__mock/ and dispatch
-- to the operation handlers. `main(argv)` is bin/instantly-mock.
--
-- Workspaces. The seeded workspace is an agency (admin) workspace; it has
-- sub-workspaces (app.children), each a separate store with its own
-- campaigns, leads, accounts and so on, listed by GET
-- /workspace-group-members. Every API request acts on one store: the API
-- key's own workspace, or the sub-workspace named by `x-as-workspace`.
-- A value that is not a uuid is refused with 400; a uuid that is not the
-- key's workspace or one of its accepted sub-workspaces with 403 (the
-- catalog documents the header but not its refusals: that is our
-- assumption). Rate limits are counted per workspace acted on.
--
-- Seams for other mock modules:
--
--   app.routes     the control plane: a table keyed "METHOD /__mock/path"
--                  (a path may hold `{name}` segments) of
--                  fn(app, req, body, params) -> status, value | response;
--                  starts as a copy of instantly.mock.control.routes.
--   app:emit(event_type, data)
--                  an API-visible change happened; calls every sink added
--                  with app:add_sink(fn(event_type, data, app)); a no-op
--                  when there is none. Emitted today:
--                    "lead_interest_status" {workspace_id, lead, email,
--                      campaign_id, list_id, interest_status, previous}
--                    "campaign_completed" {workspace_id, campaign}
--   app.store, app.children, app.stores
--                  the agency's store, its sub-workspace stores (a list),
--                  every store by workspace id; app:store_for(req, key_info)
--                  is the store a request acts on (nil, status, message
--                  when refused); each store's `app` field leads back here.
--   M.EXTENSIONS   module names; each one present on package.path is
--                  required when an app is made and its install(app) called
--                  (instantly.mock.webhooks adds routes and a sink there).
-- @module instantly.mock.server

local http = require "instantly.server.http"
local json = require "instantly.mock.json"
local util = require "instantly.mock.util"
local router_mod = require "instantly.mock.router"
local validate = require "instantly.mock.validate"
local ratelimit = require "instantly.mock.ratelimit"
local handlers = require "instantly.mock.handlers"
local seed_mod = require "instantly.mock.seed"
local faults = require "instantly.mock.faults"
local reqlog = require "instantly.mock.reqlog"
local control = require "instantly.mock.control"
local socket = require "socket"

local encode, decode, null = json.encode, json.decode, json.null
local gettime = socket.gettime
local fmt = string.format

local M = {}

--- The documented test key: accepted when no --api-key is given.
M.DEFAULT_API_KEY = "inst_mock_MDAwMDAwMDAtMDAwMC00MDAwLTgwMDAtMDAwMDAwMDAwMDAx"

M.LOG_LIMIT = reqlog.LIMIT
M.EXTENSIONS = { "instantly.mock.webhooks" }
M.routes = control.routes

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
  per_second = 100,          -- global limits per workspace
  per_minute = 6000,
}
App.DEFAULT_SETTINGS = M.DEFAULT_SETTINGS

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
    log = reqlog.new(M.LOG_LIMIT),
    faults = {},
    settings = {},
    limiters = {},
    sinks = {},
    routes = {},
  }, App)
  for k, fn in pairs(M.routes) do self.routes[k] = fn end
  local keys = opts.api_keys
  if not keys or #keys == 0 then keys = { M.DEFAULT_API_KEY } end
  for _, k in ipairs(keys) do self.keys[k] = { scopes = { "all:all" } } end
  self.base_keys = keys
  self:reset()
  load_extensions(self)
  return self
end

App.pid = function() return M.pid() end

function App:reset()
  self.store, self.children = seed_mod.group(self.seed)
  self.stores = { [self.store.workspace_id] = self.store }
  for _, child in ipairs(self.children) do self.stores[child.workspace_id] = child end
  for _, st in pairs(self.stores) do st.app = self end
  self.log:clear()
  self.faults = {}
  self.limiters = {}
  for k, v in pairs(M.DEFAULT_SETTINGS) do self.settings[k] = v end
  -- keys created through the API die with the state they were created in
  for k, v in pairs(self.keys) do if v.created then self.keys[k] = nil end end
end

-- Events ----------------------------------------------------------------------

function App:add_sink(fn)
  self.sinks[#self.sinks + 1] = fn
end

--- Tell every sink that something happened (see the file header).
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

-- Auth, workspaces and rate limits ------------------------------------------------

function App:auth(req)
  local h = req.headers["authorization"]
  if not h then return nil, "Missing Authorization header" end
  local key = h:match("^[Bb][Ee][Aa][Rr][Ee][Rr]%s+(%S+)%s*$")
  if not key then return nil, "Authorization header must be 'Bearer <API key>'" end
  local info = self.keys[key]
  if not info then return nil, "Invalid API key" end
  return key, info
end

local function is_member(home, id)
  for _, m in home:coll("workspace_group_members"):each() do
    if m.sub_workspace_id == id and m.status == "accepted" then return true end
  end
  return false
end

--- The store a request acts on: the key's workspace, or the sub-workspace
-- named by x-as-workspace; nil, status, message when that is refused.
function App:store_for(req, info)
  local home = self.stores[info.workspace or self.store.workspace_id]
  if not home then return nil, 401, "The workspace of this API key no longer exists" end
  local as = req.headers["x-as-workspace"]
  if as == nil or as == "" or as == home.workspace_id then return home end
  if not util.is_uuid(as) then return nil, 400, "x-as-workspace must be a workspace id (uuid)" end
  local target = self.stores[as]
  if not (target and target.parent_id == home.workspace_id and is_member(home, as)) then
    return nil, 403, "Workspace " .. as .. " is not a sub-workspace of this API key's workspace"
  end
  return target
end

--- For control routes: the agency store, or the one x-as-workspace names.
function App:store_for_control(req)
  return self:store_for(req, {})
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

-- The API's limits hold per workspace: every key acting on one shares them.
function App:rate_limit(workspace, op)
  if not self.rate_limits then return true end
  local now = gettime()
  local st = self.settings
  local ok, wait = self:limiter("global:" .. workspace, { { st.per_second, 1 }, { st.per_minute, 60 } }):admit(now)
  if ok and op.rate_limit then
    local specs = ratelimit.parse(op.rate_limit)
    if #specs > 0 then
      ok, wait = self:limiter("op:" .. op.id .. ":" .. workspace, specs):admit(now)
    end
  end
  if ok then return true end
  return false, math.max(1, math.ceil(wait))
end

-- Dispatch ------------------------------------------------------------------------

local function fault_body(f)
  if f.body ~= nil then return type(f.body) == "string" and f.body or encode(f.body) end
  return envelope(f.status, f.message or ("Injected fault " .. f.status))
end

-- Answer a request that a queued fault matched.
function App:faulted(f, req, route, params)
  if f.delay and f.delay > 0 then http.sleep(f.delay) end
  if f.status then
    local headers
    if f.retry_after then headers = { ["Retry-After"] = tostring(math.ceil(f.retry_after)) } end
    -- process = true: do the work, answer with the fault anyway
    if f.process then self:dispatch(req, route, params) end
    return faults.mangle({ status = f.status, body = fault_body(f), headers = headers }, f)
  end
  if f.process == false and (f.close or f.truncate) then
    return faults.mangle({ status = 200, body = "" }, f)
  end
  local res = self:dispatch(req, route, params)
  if f.body ~= nil then res.body = fault_body(f) end
  return faults.mangle(res, f)
end

function App:handle(req)
  local path = req.path
  if path:sub(1, 8) == "/__mock/" or path == "/__mock" then return self:control(req) end
  local key, info = self:auth(req)
  self.log:record(req, key ~= nil)
  local route, params = self.router:match(req.method, path)
  local f = #self.faults > 0 and faults.take(self.faults, req, route)
  if f then return self:faulted(f, req, route, params) end
  return self:dispatch(req, route, params, key, info)
end

-- The decoded body, or a refusal.
local function read_body(req)
  if not req.body or req.body == "" then return nil end
  local ct = (req.headers["content-type"] or ""):lower()
  if ct ~= "" and not ct:find("json", 1, true) then
    return nil, fail(415, "Unsupported Media Type: " .. ct)
  end
  local body, err = decode(req.body)
  if body == nil then return nil, fail(400, "Body is not valid JSON: " .. tostring(err)) end
  return body
end

-- Everything a request must pass before its handler runs; returns the
-- handler's context or a refusal.
function App:admit(req, route, params, key, info)
  if not key then key, info = self:auth(req) end
  if not key then return nil, fail(401, info) end
  if not route then return nil, fail(404, fmt("Route %s:%s not found", req.method, req.path)) end
  local store, status, msg = self:store_for(req, info)
  if not store then return nil, fail(status, msg) end
  local op = route.op
  local ok, retry = self:rate_limit(store.workspace_id, op)
  if not ok then
    return nil, fail(429, "Too many requests, please retry in " .. retry .. " seconds",
      { ["Retry-After"] = tostring(retry) })
  end
  if not has_scope(info, op) then
    return nil, fail(403, "API key does not have any of the required scopes: " .. table.concat(op.scopes, ", "))
  end
  local pok, perr = validate.params(op, params)
  if not pok then return nil, fail(400, perr) end
  local query, qerr = validate.query(op, util.parse_query(req.raw_query))
  if not query then return nil, fail(400, qerr) end
  local body, refusal = read_body(req)
  if refusal then return nil, refusal end
  local bok, berr = validate.body(op, body)
  if not bok then return nil, fail(400, berr) end
  return {
    app = self, store = store, op = op, entity = route.entity, params = params,
    query = query, body = body, req = req, settings = self.settings, key = key, key_info = info,
  }
end

function App:dispatch(req, route, params, key, info)
  local ctx, refusal = self:admit(req, route, params, key, info)
  if not ctx then return refusal end
  local status, value, headers = handlers.run(ctx)
  if type(status) == "table" then return status end
  return respond(status, value, headers)
end

-- Control plane -------------------------------------------------------------------

-- A route for method + path: exact first, then templates with {name} segments.
function App:control_route(method, path)
  local fn = self.routes[method .. " " .. path]
  if fn then return fn, {} end
  for key, f in pairs(self.routes) do
    local m, tpl = key:match("^(%u+) (.*)$")
    if m == method and tpl:find("{", 1, true) then
      local params, names = {}, {}
      local pat = "^" .. tpl:gsub("[%-%.%+%*%?%^%$%%%[%]%(%)]", "%%%0"):gsub("{([%w_]+)}", function(n)
        names[#names + 1] = n
        return "([^/]+)"
      end) .. "$"
      local caps = { path:match(pat) }
      if caps[1] then
        for i, n in ipairs(names) do params[n] = util.unescape(caps[i]) end
        return f, params
      end
    end
  end
end

function App:control(req)
  local body
  if req.body and req.body ~= "" then
    body = decode(req.body)
    if body == nil then return respond(400, { error = "body is not valid JSON" }) end
  end
  local fn, params = self:control_route(req.method, req.path)
  if not fn then
    return respond(404, { error = "unknown control endpoint " .. req.method .. " " .. req.path })
  end
  local status, value = fn(self, req, body, params)
  if type(status) == "table" then return status end
  return respond(status, value)
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
    max_connections = opts.max_connections,
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
                      [--rate-limits on|off] [--max-body BYTES] [--max-connections N]
                      [--parent-pid PID] [--quiet]

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
      elseif a == "--max-connections" then
        o.max_connections = math.tointeger(tonumber(value(a)))
        if not o.max_connections or o.max_connections < 1 then
          error({ msg = "--max-connections must be a positive integer" })
        end
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
  local ok, berr = app:listen(o.host, o.port, { max_body = o.max_body, parent_pid = o.parent_pid,
    max_connections = o.max_connections })
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
