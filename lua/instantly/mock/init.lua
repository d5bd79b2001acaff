--- A local mock of the Instantly.ai API V2, for tests.
--
-- `mock.start{...}` runs bin/instantly-mock as a child process on a free
-- loopback port and returns a handle that talks to the server's control
-- plane (`/__mock/...`): the request log, faults, behaviour switches and
-- a reset to the seeded workspace. The child exits with `srv:stop()`, when
-- the handle is collected or closed, and on its own when this process dies.
-- @module instantly.mock
-- @usage
-- local mock = require "instantly.mock"
-- local srv <close> = mock.start{ seed = 1, rate_limits = false }
-- -- point a client at srv.url with srv.api_key ...
-- srv:fault{ method = "GET", path = "/campaigns", status = 503, count = 2 }
-- for _, r in ipairs(srv:requests()) do print(r.method, r.path) end

local socket = require "socket"
local json = require "instantly.mock.json"
local server = require "instantly.mock.server"

local M = {}

--- The documented test key the mock accepts when no api_keys are given.
M.DEFAULT_API_KEY = server.DEFAULT_API_KEY

local Mock = {}
Mock.__index = Mock

local START_OPTS = {
  seed = "number", rate_limits = "boolean", api_keys = "table", quiet = "boolean",
  port = "number", host = "string", lua = "string", bin = "string", max_body = "number",
  max_connections = "number",
  build = "string",
}

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function module_dir()
  local src = debug.getinfo(1, "S").source
  src = src:sub(1, 1) == "@" and src:sub(2) or src
  return src:match("^(.*)/[^/]*$") or "."
end

local function exists(p)
  local f = io.open(p)
  if f then f:close() return true end
  return false
end

-- The interpreter running us: the first arg[] entry below 0.
local function interpreter()
  if arg then
    local i = -1
    while arg[i - 1] do i = i - 1 end
    if arg[i] then return arg[i] end
  end
  return "lua5.4"
end

-- bin/instantly-mock next to the module: lua/instantly/mock/init.lua in a
-- checkout; share/lua/5.4/instantly/mock/init.lua in a rocks tree.
local function find_bin()
  local dir = module_dir()
  for _, up in ipairs{ "/../../..", "/../../../../.." } do
    local p = dir .. up .. "/bin/instantly-mock"
    if exists(p) then return p end
  end
  return nil
end

-- "sh" for a shell script (luarocks' wrapper), "lua" otherwise.
local function script_kind(path)
  local f = io.open(path)
  if not f then return "lua" end
  local first = f:read("l") or ""
  f:close()
  if first:match("^#!%s*/bin/sh") or first:match("^#!.*[/ ]sh%s*$") or first:match("^#!.*bash") then
    return "sh"
  end
  return "lua"
end

local function self_pid()
  return server.pid()
end

local function check_start_opts(opts)
  if type(opts) ~= "table" then error("mock.start: opts must be a table", 3) end
  for k, v in pairs(opts) do
    local want = START_OPTS[k]
    if not want then error("mock.start: unknown option '" .. tostring(k) .. "'", 3) end
    if type(v) ~= want then error("mock.start: option '" .. k .. "' must be a " .. want, 3) end
  end
  for i, k in ipairs(opts.api_keys or {}) do
    if type(k) ~= "string" or k == "" then
      error("mock.start: api_keys[" .. i .. "] must be a non-empty string", 3)
    end
  end
  if opts.seed and not math.tointeger(opts.seed) then error("mock.start: seed must be an integer", 3) end
  if opts.port and not math.tointeger(opts.port) then error("mock.start: port must be an integer", 3) end
end

-- The shell command that runs the server for these options.
local function command(opts)
  local lua, bin = opts.lua or interpreter(), opts.bin or find_bin()
  local args = {}
  local function add(...) for _, a in ipairs{ ... } do args[#args + 1] = shell_quote(a) end end
  if bin and script_kind(bin) == "sh" then
    -- a rocks tree's bin/ holds luarocks' shell wrapper, which sets the
    -- paths and picks the interpreter itself
    add(bin)
  elseif bin then
    add(lua, bin)
  else
    -- no script beside the module: run the server module directly
    add(lua, "-e", "os.exit(require('instantly.mock.server').main({table.unpack(arg)}), true)", "/dev/null")
  end
  add("--seed", math.tointeger(opts.seed or 1), "--port", math.tointeger(opts.port or 0))
  if opts.host then add("--host", opts.host) end
  add("--rate-limits", opts.rate_limits == false and "off" or "on")
  for _, k in ipairs(opts.api_keys or {}) do add("--api-key", k) end
  if opts.max_body then add("--max-body", math.tointeger(opts.max_body)) end
  if opts.max_connections then add("--max-connections", math.tointeger(opts.max_connections)) end
  if opts.quiet ~= false then add("--quiet") end
  local pid = self_pid()
  if pid then add("--parent-pid", pid) end
  -- the child finds the modules (and core) this process found
  local env = "LUA_PATH=" .. shell_quote(package.path) .. " LUA_CPATH=" .. shell_quote(package.cpath) .. " "
  if opts.build then env = env .. "INSTANTLY_BUILD=" .. shell_quote(opts.build) .. " " end
  return env .. "exec " .. table.concat(args, " ")
end

--- Start a mock server in a child process.
-- @tparam[opt] table opts seed (1), rate_limits (true), api_keys (list; default
-- {DEFAULT_API_KEY}), quiet (true), port (0 = any free port), host
-- ("127.0.0.1"), max_body (bytes), max_connections (served at once; the
-- longest idle is closed to admit a new one), lua / bin / build (override the interpreter, the
-- script and the core's build folder).
-- @return a handle (url, api_key, port, pid and the methods below), or nil
-- and a message when the server did not come up.
function M.start(opts)
  opts = opts or {}
  check_start_opts(opts)
  local cmd = command(opts)
  local proc = io.popen(cmd, "r")
  if not proc then return nil, "mock: cannot start " .. cmd end
  local line = proc:read("l")
  if not line then
    proc:close()
    return nil, "mock: the server exited before listening (" .. cmd .. ")"
  end
  local url = line:match("^listening on (http://%S+)$")
  if not url then
    proc:close()
    return nil, "mock: unexpected first line from the server: " .. line
  end
  local self = setmetatable({
    url = url, port = math.tointeger(tonumber(url:match(":(%d+)$"))), host = url:match("^http://([^/]+):%d+$"),
    api_key = (opts.api_keys and opts.api_keys[1]) or M.DEFAULT_API_KEY,
    proc = proc,
  }, Mock)
  local health = self:_call("GET", "/__mock/health")
  self.pid = health and health.pid
  return self
end

-- Control plane client: one short request per call over a fresh socket
-- (no dependency on the SDK's transport, so the mock can test it).
function Mock:_call(method, path, value)
  if not self.proc then error("mock: server is stopped", 3) end
  local body = value ~= nil and json.encode(value) or ""
  local c = socket.tcp()
  c:settimeout(10)
  local ok, err = c:connect(self.host:gsub("^%[(.*)%]$", "%1"), self.port)
  if not ok then c:close() return nil, "mock: control plane unreachable: " .. tostring(err) end
  c:send(method .. " " .. path .. " HTTP/1.1\r\nHost: " .. self.host .. "\r\nConnection: close\r\n"
    .. "Content-Type: application/json\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body)
  local status_line = c:receive("*l")
  local status = status_line and tonumber(status_line:match("^HTTP/1%.%d (%d+)"))
  local len
  while true do
    local l = c:receive("*l")
    if not l or l == "" then break end
    local n = l:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)")
    if n then len = tonumber(n) end
  end
  local data = len and c:receive(len) or c:receive("*a")
  c:close()
  if not status then return nil, "mock: no answer from the control plane" end
  local decoded = data and json.decode(data)
  if status ~= 200 then
    return nil, "mock: " .. method .. " " .. path .. ": " .. tostring(decoded and decoded.error or data)
  end
  return decoded
end

local function must(self, method, path, value)
  local r, err = self:_call(method, path, value)
  if not r then error(err, 3) end
  return r
end

--- The request log: array of {method, path (raw), decoded_path, raw_query,
-- query (key -> value, an array for repeated keys), headers (lower-case,
-- authorization redacted), body (decoded JSON, or the raw text)}.
-- @tparam[opt] table opts since = only entries after this log position.
function Mock:requests(opts)
  local since = opts and opts.since or 0
  local r = must(self, "GET", "/__mock/requests?since=" .. math.tointeger(since))
  return r.items
end

function Mock:clear_requests()
  must(self, "DELETE", "/__mock/requests")
end

--- State back to the seed; request log, faults and switches cleared.
function Mock:reset()
  must(self, "POST", "/__mock/reset")
end

local FAULT_OPTS = {
  method = "string", path = "string", pattern = "string", op = "string", count = "number",
  status = "number", retry_after = "number", delay = "number", close = "string",
  truncate = "boolean", invalid_json = "boolean", oversize = "number", trickle = "number",
  body = true, process = "boolean", message = "string",
}

--- Queue a fault for the next `count` requests that match.
-- Match with method (or any), and path (exact, with or without /api/v2, or
-- a catalog template like "/campaigns/{id}"), pattern (a Lua pattern on
-- the raw path) or op (operation id). Kinds: status (+retry_after,
-- message, body), delay (seconds), close ("before_headers"|"after_headers"),
-- truncate, invalid_json, oversize (bytes), trickle (seconds), body.
function Mock:fault(f)
  if type(f) ~= "table" then error("mock:fault: expects a table", 2) end
  for k, v in pairs(f) do
    local want = FAULT_OPTS[k]
    if not want then error("mock:fault: unknown option '" .. tostring(k) .. "'", 2) end
    if want ~= true and type(v) ~= want then error("mock:fault: option '" .. k .. "' must be a " .. want, 2) end
  end
  local r, err = self:_call("POST", "/__mock/faults", f)
  if not r then error(err, 2) end
  return r
end

--- Faults still pending.
function Mock:faults()
  return must(self, "GET", "/__mock/faults").items
end

function Mock:clear_faults()
  must(self, "DELETE", "/__mock/faults")
end

--- Behaviour switches: send_test_error, job_steps, fail_jobs,
-- verification_polls, oauth_polls, oauth_lifetime, oauth_result,
-- exact_last_page, default_limit, rate_limits.
function Mock:set(s)
  if type(s) ~= "table" then error("mock:set: expects a table", 2) end
  local r, err = self:_call("POST", "/__mock/settings", s)
  if not r then error(err, 2) end
end

function Mock:settings()
  return must(self, "GET", "/__mock/settings")
end

--- Counts per collection (debugging aid).
function Mock:state()
  return must(self, "GET", "/__mock/state")
end

--- Stop the server; safe to call more than once.
function Mock:stop()
  local proc = self.proc
  if not proc then return end
  local ok = self:_call("POST", "/__mock/shutdown")
  if not ok and self.pid then os.execute("kill " .. math.tointeger(self.pid) .. " 2>/dev/null") end
  self.proc = nil
  proc:close()
end

Mock.__gc = Mock.stop
Mock.__close = Mock.stop
function Mock:__tostring()
  return "instantly.mock(" .. self.url .. (self.proc and "" or ", stopped") .. ")"
end

return M
