--- The client: options, the transport, the escape hatch.
--
-- `instantly.new(options)` checks the options, opens a transport (a core
-- session, or the one the caller injects), sets up the rate limiter and
-- has `instantly.request.builder` attach every entity of the catalog.
--
-- Transport injection: `options.transport` may be any object with a
-- method `transport:request(req)` taking `{method =, url =, headers =
-- {name = value}, body = string|nil, timeout =, connect_timeout =}` and
-- returning `status, body, headers` (header names lower-cased) for any
-- HTTP response, or `nil, {kind =, message =}` when no response arrived,
-- `kind` being one of connect, dns, timeout, tls, too_large, aborted,
-- protocol, internal (connect and dns meaning the request never reached
-- the server). That is exactly the interface of a core session, so a test
-- can record requests and answer them from a table.
-- @module instantly.request.client

local core = require "instantly.core"
local builder = require "instantly.request.builder"
local pipeline = require "instantly.request.pipeline"
local ratelimit = require "instantly.request.ratelimit"
local redact = require "instantly.request.redact"
local validate = require "instantly.request.validate"

local type, pairs, tostring, error, setmetatable, getenv = type, pairs, tostring, error, setmetatable, os.getenv
local getmetatable, pcall, rawset = getmetatable, pcall, rawset
local mtype = math.type
local concat, sort = table.concat, table.sort

-- client -> what must not be visible on the client table itself (the
-- key, the headers carrying it, the sender, the session it owns).
local private = setmetatable({}, { __mode = "k" })

local M = {}

local DEFAULT_BASE_URL = "https://api.instantly.ai"

-- Option name -> checker returning an error message or nil.
local function is_pos_number(v) return type(v) == "number" and v > 0 and v == v and v < math.huge end

-- A value that goes into a header line: CR, LF or NUL would end the line
-- early (and could add headers of the caller's choosing).
local function header_safe(v)
  if type(v) ~= "string" or v == "" then return "must be a non-empty string" end
  if v:find("[\0\r\n]") then return "must not contain CR, LF or NUL" end
  return true
end

local OPTIONS = {
  api_key = header_safe,
  base_url = function(v)
    return (type(v) == "string" and v:match("^https?://[^/]")) and true or "must be an http:// or https:// URL"
  end,
  timeout = function(v) return is_pos_number(v) or "must be a number of seconds > 0" end,
  connect_timeout = function(v) return is_pos_number(v) or "must be a number of seconds > 0" end,
  max_retries = function(v) return (mtype(v) == "integer" and v >= 0) or "must be an integer >= 0" end,
  retry = function(v) return type(v) == "table" or "must be a table {base =, cap =, max_retry_after =}" end,
  rate_limit = function(v)
    return (type(v) == "boolean" or type(v) == "table") or
      "must be false, true or {per_second =, per_minute =, endpoints =, max_wait =}"
  end,
  workspace = header_safe,
  headers = function(v) return type(v) == "table" or "must be a table of header names to values" end,
  user_agent = function(v) return v == "" or header_safe(v) end,
  on_request = function(v) return type(v) == "function" or "must be a function" end,
  on_response = function(v) return type(v) == "function" or "must be a function" end,
  on_wait = function(v) return type(v) == "function" or "must be a function" end,
  on_warning = function(v) return type(v) == "function" or "must be a function" end,
  validate = function(v) return validate.MODES[v] == true or 'must be "strict", "warn" or "off"' end,
  transport = function(v)
    local ok = (type(v) == "table" or type(v) == "userdata") and v.request ~= nil
    return ok or "must be an object with a request(req) method"
  end,
  -- Passed to the core session when the SDK opens it.
  proxy = function(v) return type(v) == "string" or "must be a string" end,
  ca_file = function(v) return type(v) == "string" or "must be a string" end,
  ca_path = function(v) return type(v) == "string" or "must be a string" end,
  max_response_bytes = function(v) return (mtype(v) == "integer" and v > 0) or "must be an integer > 0" end,
  write_max_idle = function(v)
    return (mtype(v) == "integer" and v >= 0 and v <= 118) or "must be an integer from 0 to 118 (seconds)"
  end,
  extensions = function(v)
    return type(v) == "table" or "must be a table mapping entity names (or \"client\") to extension modules"
  end,
}

local function known_options()
  local names = {}
  for k in pairs(OPTIONS) do names[#names + 1] = k end
  sort(names)
  return concat(names, ", ")
end

-- Option errors are thrown as a marked table and re-raised by `new` at
-- the caller's level, however deep the check that found them.
local Fail = {}
local function fail(msg)
  error(setmetatable({ msg = "instantly.new: " .. msg }, Fail), 0)
end

local function check_sub(name, t, spec)
  for k, v in pairs(t) do
    local want = spec[k]
    if not want then
      local names = {}
      for n in pairs(spec) do names[#names + 1] = n end
      sort(names)
      fail("unknown key '" .. tostring(k) .. "' in option '" .. name .. "' (known: " .. concat(names, ", ") .. ")")
    end
    local ok = want(v)
    if ok ~= true then fail("option '" .. name .. "." .. k .. "' " .. ok) end
  end
end

local RETRY = {
  base = function(v) return is_pos_number(v) or "must be a number of seconds > 0" end,
  cap = function(v) return is_pos_number(v) or "must be a number of seconds > 0" end,
  max_retry_after = function(v) return (type(v) == "number" and v >= 0) or "must be a number of seconds >= 0" end,
}

local RATE = {
  per_second = function(v) return (mtype(v) == "integer" and v > 0) or "must be an integer > 0" end,
  per_minute = function(v) return (mtype(v) == "integer" and v > 0) or "must be an integer > 0" end,
  endpoints = function(v) return type(v) == "boolean" or "must be a boolean" end,
  max_wait = function(v) return (type(v) == "number" and v >= 0) or "must be a number of seconds >= 0" end,
}

local function check_options(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then fail("options must be a table, got " .. type(opts)) end
  for k, v in pairs(opts) do
    local check = OPTIONS[k]
    if not check then
      fail("unknown option '" .. tostring(k) .. "' (known: " .. known_options() .. ")")
    end
    local ok = check(v)
    if ok ~= true then fail("option '" .. k .. "' " .. ok) end
  end
  if type(opts.retry) == "table" then check_sub("retry", opts.retry, RETRY) end
  if type(opts.rate_limit) == "table" then check_sub("rate_limit", opts.rate_limit, RATE) end
  if opts.headers then
    for hk, hv in pairs(opts.headers) do
      local problem = builder.header_problem(hk, hv)
      if problem then fail("option 'headers' " .. problem) end
      if hk:lower() == "authorization" then fail("option 'headers' must not set authorization (use api_key)") end
    end
  end
  return opts
end

local Client = {}

--- The client as text: base URL and the redacted key, never the key.
-- @treturn string
local function client_tostring(c)
  return "instantly.Client(" .. c.base_url .. ", key " .. private[c].redacted ..
    (c.workspace and (", workspace " .. c.workspace) or "") .. ")"
end

--- Close the transport the client opened (an injected one is left alone).
-- Idempotent; the client is unusable afterwards.
function Client:close()
  local pv = private[self]
  if pv and pv.owns_session then
    pv.pipe.session:close()
    pv.owns_session = false
  end
end

--- A view of the client acting on another workspace (agency keys): every
-- request carries `x-as-workspace: <id>`. The view is a client made from
-- the same options on the same connections (so it shares the pool and the
-- hooks; inside `gather` its calls run concurrently like any other) with
-- its own rate-limit windows, because the API counts its limits per
-- workspace. Asking again for the same id returns the same view, and so
-- the same budget; a view's `as_workspace` answers for the client it came
-- from. Closing a view leaves the connections open.
-- @tparam string id the sub-workspace id
-- @treturn table a client for that workspace
-- @usage local sub = client:as_workspace(member.sub_workspace_id)
-- for c in sub.campaigns:each() do print(c.name) end
function Client:as_workspace(id)
  if type(id) ~= "string" or id == "" or id:find("%c") then
    error("instantly: client:as_workspace: id must be a non-empty string without control characters, got " ..
      (id == nil and "nothing" or (type(id) == "string" and ("%q"):format(id) or type(id))), 2)
  end
  local pv = private[self]
  local root = pv.root or self
  local rpv = private[root]
  local view = rpv.views[id]
  if view then return view end
  local o = {}
  for k, v in pairs(rpv.options) do o[k] = v end
  o.api_key, o.base_url, o.workspace, o.transport = rpv.ctx.key, root.base_url, id, rpv.pipe.session
  view = M.new(o)
  private[view].root = root
  rpv.views[id] = view
  return view
end


local METHODS = { GET = true, POST = true, PUT = true, PATCH = true, DELETE = true, HEAD = true, OPTIONS = true }
local REQUEST_KEYS = { query = true, body = true, headers = true }

--- The escape hatch: call any endpoint, including ones the catalog lacks.
-- `path` is relative to `/api/v2` (e.g. `"/campaigns"`) unless it starts
-- with `/api/`. The request goes through the same pipeline (auth, rate
-- limiter, retries, errors, hooks). The result is plain decoded data.
-- @tparam string method HTTP method, e.g. "GET"
-- @tparam string path e.g. "/campaigns/" .. id
-- @tparam[opt] table args `{query = table|string, body = table|string, headers = table}`
-- @tparam[opt] table opts per-call `{timeout =, connect_timeout =, max_retries =, headers =}`
-- @return decoded body (or `true` for an empty one), status, headers; or `nil, err`
-- @usage local v = assert(client:request("GET", "/campaigns", {query = {limit = 5}}))
function Client:request(method, path, args, opts)
  if type(method) ~= "string" or not METHODS[method:upper()] then
    error("instantly: client:request: method must be one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS", 2)
  end
  method = method:upper()
  if type(path) ~= "string" or path:sub(1, 1) ~= "/" then
    error("instantly: client:request: path must be a string starting with '/'", 2)
  end
  -- The transport would remove dot segments (the request would reach
  -- another endpoint than the one written) and a control byte or space
  -- would break the request line.
  if path:find("[%c ]") then
    error("instantly: client:request: path must not contain spaces or control characters (percent-encode them)", 2)
  end
  for seg in path:match("^[^?#]*"):gmatch("[^/]+") do
    if seg == "." or seg == ".." then
      error("instantly: client:request: path must not contain '.' or '..' segments: " .. path, 2)
    end
  end
  if args ~= nil and type(args) ~= "table" then
    error("instantly: client:request: the third argument must be a table {query =, body =, headers =}", 2)
  end
  args = args or {}
  for k in pairs(args) do
    if not REQUEST_KEYS[k] then
      error("instantly: client:request: unknown key '" .. tostring(k) .. "' (known: body, headers, query)", 2)
    end
  end
  if opts ~= nil then builder.check_opts("client:request", opts, 2) end
  local pv = private[self]
  local full = path:sub(1, 5) == "/api/" and path or (pv.ctx.prefix .. path)
  local url = self.base_url .. full
  local q = args.query
  if type(q) == "table" then
    q = validate.encode_query(q)
  elseif q ~= nil and type(q) ~= "string" then
    error("instantly: client:request: query must be a table or a string", 2)
  end
  if q and q ~= "" then url = url .. (url:find("?", 1, true) and "&" or "?") .. q end
  local body, headers = args.body, pv.ctx.headers
  if type(body) == "table" then
    local text, err = core.json_encode(body)
    if not text then error("instantly: client:request: cannot encode body: " .. tostring(err), 2) end
    body, headers = text, pv.ctx.headers_json
  elseif type(body) == "string" then
    headers = pv.ctx.headers_json
  elseif body ~= nil then
    error("instantly: client:request: body must be a table or a string", 2)
  end
  if args.headers then
    for hk, hv in pairs(args.headers) do
      local problem = builder.header_problem(hk, hv)
      if problem then error("instantly: client:request: headers " .. problem, 2) end
    end
    headers = builder.merge_headers(headers, args.headers)
  end
  if opts and opts.headers then headers = builder.merge_headers(headers, opts.headers) end
  local op = { method = method, label = "client:request" }
  local pipe = pv.ctx.pipe
  local status, text, rheaders, attempts = pipeline.send(pipe, op, url, full, body, headers, opts)
  if not status then return nil, text end
  op.kind = (rheaders and rheaders["content-type"] or "application/json"):find("json", 1, true) and "json" or "text"
  if op.kind == "text" and text ~= "" and (text:match("^%s*[%[{]")) then op.kind = "json" end
  local v, err = pipeline.decode(pipe, op, url, full, status, text, rheaders, attempts)
  if v == nil then return nil, err end
  return v, status, rheaders
end

-- The client's methods: Client's own, the SDK's client extension and the
-- caller's `extensions.client`. Without the latter the table is made once.
local shared_methods
local function client_methods(exts)
  if shared_methods == nil then
    shared_methods = {}
    for k, v in pairs(Client) do shared_methods[k] = v end
    local mod = builder.static_extension("client")
    for k, fn in pairs(mod and mod.client or {}) do
      if shared_methods[k] ~= nil then
        fail("extension instantly.workflows.extra.client defines client method '" .. k .. "', which already exists")
      end
      shared_methods[k] = fn
    end
  end
  if not exts then return shared_methods end
  local ok, err = pcall(builder.check_extensions, exts, shared_methods)
  if not ok then fail(tostring(err):gsub("^instantly: ", "")) end
  if not exts.client then return shared_methods end
  local m = {}
  for k, v in pairs(shared_methods) do m[k] = v end
  for k, fn in pairs(exts.client.client or {}) do m[k] = fn end
  return m
end

--- The methods every client has (Client's own and the SDK's client
-- extension), by name: for tools and specs that compare them with the
-- type stubs. A client made with `extensions.client` has those on top.
-- @treturn table name -> function
function M.methods()
  return client_methods(nil)
end

-- The client-side rate limiter of the `rate_limit` option (nil when it is
-- false) and whether per-endpoint limits apply.
local function limiter_of(rate_limit)
  if rate_limit == false then return nil, false end
  local rl = type(rate_limit) == "table" and rate_limit or {}
  return {
    global = {
      ratelimit.window(rl.per_second or 100, 1, "workspace " .. (rl.per_second or 100) .. "/second"),
      ratelimit.window(rl.per_minute or 6000, 60, "workspace " .. (rl.per_minute or 6000) .. "/minute"),
    },
    -- Long enough for any per-minute window to free a slot (60 s plus the
    -- margin); an hourly or monthly window that is used up is reported.
    max_wait = rl.max_wait or 120,
  }, rl.endpoints ~= false
end

-- client -> function(name) returning its entity `name` (built on first use).
local entities = setmetatable({}, { __mode = "k" })

-- A client table: its methods come from `methods`, its entities are built
-- the first time they are read and then stored in the table itself.
local function make_client(base_url, workspace, methods)
  return setmetatable({ base_url = base_url, workspace = workspace }, {
    __index = function(t, k)
      local m = methods[k]
      if m ~= nil then return m end
      local e = entities[t](k)
      if e then rawset(t, k, e) end
      return e
    end,
    __name = "instantly.Client",
    __tostring = client_tostring,
    __close = function(cl) cl:close() end,
  })
end

local function new(options)
  local opts = check_options(options)
  local methods = client_methods(opts.extensions)
  local key = opts.api_key or getenv("INSTANTLY_API_KEY")
  if key == nil or key == "" then
    fail("no API key: pass api_key = \"...\" to instantly.new, or set the INSTANTLY_API_KEY environment variable")
  end
  if header_safe(key) ~= true then fail("the INSTANTLY_API_KEY environment variable must not contain CR, LF or NUL") end
  local base_url = opts.base_url or getenv("INSTANTLY_BASE_URL")
  if base_url == nil or base_url == "" then base_url = DEFAULT_BASE_URL end
  local ok = OPTIONS.base_url(base_url)
  if ok ~= true then fail("base URL '" .. base_url .. "' " .. ok) end
  base_url = base_url:gsub("/+$", "")
  local catalog = require "instantly.entities"

  -- The core session's default, kept short: libcurl writes the line out
  -- on every request at some 60 instructions a byte.
  local ua = "instantly-lua/" .. core.VERSION .. " libcurl/" .. tostring(core.curl_version)
  if opts.user_agent and opts.user_agent ~= "" then ua = ua .. " " .. opts.user_agent end

  local session, owns = opts.transport, false
  if not session then
    if type(core.session) ~= "function" then
      fail("this build of instantly.core has no HTTP transport")
    end
    session = core.session {
      user_agent = ua, timeout = opts.timeout, connect_timeout = opts.connect_timeout,
      proxy = opts.proxy, ca_file = opts.ca_file, ca_path = opts.ca_path,
      max_response_bytes = opts.max_response_bytes, write_max_idle = opts.write_max_idle,
    }
    owns = true
  end

  local headers = { authorization = "Bearer " .. key }
  -- A session the SDK opened already sends the user agent; an injected
  -- transport gets it as a header.
  if not owns then headers["user-agent"] = ua end
  if opts.workspace then headers["x-as-workspace"] = opts.workspace end
  if opts.headers then for k, v in pairs(opts.headers) do headers[k:lower()] = v end end
  local headers_json = {}
  for k, v in pairs(headers) do headers_json[k] = v end
  headers_json["content-type"] = "application/json"

  local retry = { base = 0.5, cap = 8, max_retry_after = 60 }
  if opts.retry then for k, v in pairs(opts.retry) do retry[k] = v end end

  local limiter, endpoints = limiter_of(opts.rate_limit)
  local pipe = pipeline.new {
    session = session, key = key, max_retries = opts.max_retries or 2, timeout = opts.timeout,
    connect_timeout = opts.connect_timeout, retry = retry, limiter = limiter,
    on_request = opts.on_request, on_response = opts.on_response, on_wait = opts.on_wait,
  }
  local ctx = {
    pipe = pipe, base = base_url .. catalog.path_prefix, prefix = catalog.path_prefix,
    headers = headers, headers_json = headers_json, key = key, endpoints = endpoints,
    extensions = opts.extensions,
    validate = opts.validate or "strict", on_warning = opts.on_warning,
    -- What has been reported through on_warning (each text once).
    warned = { n = 0 },
  }
  local c = make_client(base_url, opts.workspace, methods)
  private[c] = { ctx = ctx, pipe = pipe, redacted = redact.key(key), owns_session = owns,
                 options = opts, views = {} }
  entities[c] = builder.build(c, ctx)
  return c
end

--- Create a client. See the README ("Using the client") for every option.
-- @tparam[opt] table options
-- @treturn table client
-- @usage local client = instantly.new{api_key = os.getenv("INSTANTLY_API_KEY")}
function M.new(options)
  local ok, c = pcall(new, options)
  if ok then return c end
  if getmetatable(c) == Fail then error(c.msg, 2) end
  error(c, 0)
end

return M
