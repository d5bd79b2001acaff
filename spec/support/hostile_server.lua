-- hostile_server.lua - a loopback HTTP/1.1 server that misbehaves on
-- purpose, for spec/hostile_spec.lua: scenarios on top of the server core
-- (instantly.server.http), which does the wire and the faults.
--
-- Run as a script, it serves on 127.0.0.1 (port 0, so the kernel picks)
-- and prints its port. Every reply says `Connection: close`, so each
-- attempt of the client is a request on a new connection and a scenario
-- that sleeps or breaks a connection cannot disturb the next request. It
-- stops by itself after IDLE_EXIT seconds without traffic.
--
-- The scenario is the first path segment, so a client is pointed at one by
-- its base URL (`http://127.0.0.1:PORT/echo-text`) and every operation
-- of the SDK lands in it. Scenarios:
--
--   /log/...                 200 {} (the request is only logged)
--   /echo-text/...           200 text/plain quoting the Authorization header
--                            (as sent, percent-encoded, JSON-escaped), and
--                            response headers echoing it
--   /echo-api-error/...      200 {"error": ...} with the key in every field
--                            but the code, 10 levels deep and as an object key
--   /echo-status/N/...       status N, a JSON body with the key 12 levels deep,
--                            echoing response headers
--   /echo-cut/N/...          status N, a text body where the key straddles
--                            byte 2000 (where error text is cut short)
--   /cycle/L/...             a list whose cursors cycle with period L
--                            (query `starting_after`), one item per page
--   /cycle-long/L/...        the same with cursors of 2 KB
--   /amplify/N/...           200, a JSON array of N empty objects
--   /slow/MS/...             answers {} after MS milliseconds
--   /partial/...             announces 100000 bytes, sends 1000, closes
--   /oversize/N/...          200 with N bytes of JSON string
--   /garbage/...             a reply without a status line, then closes
--   /status/N/...            status N (429 and 503 with Retry-After: 0)
--   /gzip-bomb/...           200, 80 MB of zeros gzip-encoded (about 80 KB)
--   /redirect/...            302 to the same server under the name
--                            `localhost` (another origin): /log/redirected
--
--   /__log                   the requests so far: [{method, target, auth}] (JSON)
--   /__reset /__quit         control
local socket = require "socket"

local M = {}

local here = debug.getinfo(1, "S").source:match("^@(.*)$")

local function raw_get(port, path)
  local c = assert(socket.tcp())
  c:settimeout(10)
  assert(c:connect("127.0.0.1", port))
  assert(c:send("GET " .. path .. " HTTP/1.1\r\nHost: hostile\r\nConnection: close\r\n\r\n"))
  local all = c:receive("*a")
  c:close()
  return all and all:match("\r\n\r\n(.*)$")
end

--- Starts the server; returns a handle with port, base(mode) (a base URL
-- for instantly.new), log() (the requests since the last reset), reset()
-- and stop().
function M.start()
  local lua = os.getenv("LUA") or "lua5.4"
  local p = assert(io.popen("exec " .. lua .. " " .. here, "r"))
  local port = tonumber(p:read("l"))
  assert(port, "hostile_server did not start")
  local h = { port = port }
  function h.base(mode) return "http://127.0.0.1:" .. port .. "/" .. mode end
  function h.log() return require("cjson").decode(assert(raw_get(port, "/__log"))) end
  function h.reset() raw_get(port, "/__reset") end
  function h.stop()
    pcall(raw_get, port, "/__quit")
    p:close()
  end
  return h
end

if (...) == "support.hostile_server" or (...) == "spec.support.hostile_server" then
  return M
end

------------------------------------------------------------------------
-- server side: scenarios over the server core

do -- the core lives in the tree this file belongs to
  local root = here:match("^(.*)/spec/support/[^/]*$") or (here:match("^spec/") and ".") or "."
  package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
end
local cjson = require "cjson"
local http = require "instantly.server.http"

local IDLE_EXIT = 60
local last_activity = socket.gettime()
local log = {}
local server

local function reply(status, headers, body)
  return { status = status, headers = headers, body = body }
end

local function json_reply(status, value, extra)
  local headers = { ["content-type"] = "application/json" }
  for k, v in pairs(extra or {}) do headers[k] = v end
  return reply(status, headers, cjson.encode(value))
end

-- The forms a server could echo the key in.
local function echo_forms(auth)
  local pct = auth:gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end)
  local js = auth:gsub('[/"\\]', function(c) return "\\" .. c end)
  return auth, pct, js
end

local function echo_headers(auth)
  local _, pct = echo_forms(auth)
  return { ["x-echo"] = auth, ["x-request-id"] = auth, ["set-cookie"] = "session=" .. auth,
           ["x-" .. pct] = "as a header name" }
end

local function nest(depth, leaf)
  local v = leaf
  for i = depth, 1, -1 do v = { ["level" .. i] = v, list = { v } } end
  return v
end

-- Each scenario: fn(req, arg) -> res, where arg is the number after the
-- scenario's name (/slow/2000/...), if any.
local modes = {}

function modes.log()
  return json_reply(200, {})
end

modes["echo-text"] = function(req)
  local auth, pct, js = echo_forms(req.headers.authorization or "")
  local headers = echo_headers(auth)
  headers["content-type"] = "text/plain"
  return reply(200, headers, "you sent " .. auth .. "\npercent-encoded " .. pct .. "\nescaped " .. js .. "\n")
end

modes["echo-api-error"] = function(req)
  local auth = req.headers.authorization or ""
  return json_reply(200, {
    error = "Unauthorized", message = "bad key " .. auth, detail = auth,
    echo = { auth = auth, headers = req.headers }, [auth] = "the key as a field name",
    deep = nest(10, auth),
  }, echo_headers(auth))
end

modes["echo-status"] = function(req, arg)
  local auth = req.headers.authorization or ""
  return json_reply(tonumber(arg) or 400, {
    statusCode = tonumber(arg) or 400, error = "Bad Request", message = { "first " .. auth, "second" },
    deep = nest(12, { auth }), [auth] = true,
  }, echo_headers(auth))
end

modes["echo-cut"] = function(req, arg)
  local auth = req.headers.authorization or ""
  -- The key itself starts 25 bytes before byte 2000.
  local pad = string.rep("x", 2000 - 25 - #"Bearer ")
  return reply(tonumber(arg) or 400, { ["content-type"] = "text/plain" }, pad .. auth .. string.rep("y", 100))
end

function modes.cycle(req, arg, pad)
  local period = tonumber(arg) or 2
  local cur = req.target:match("[?&]starting_after=([^&]+)")
  local k = cur and tonumber(cur:match("^c(%d+)")) or 0
  local nxt = "c" .. (k % period + 1) .. (pad or "")
  return json_reply(200, { items = { { id = "item-" .. k, name = "page " .. k } }, next_starting_after = nxt })
end

modes["cycle-long"] = function(req, arg)
  return modes.cycle(req, arg, "-" .. string.rep("x", 2000))
end

function modes.amplify(_, arg)
  local n = tonumber(arg) or 1000
  return reply(200, { ["content-type"] = "application/json" }, "[" .. string.rep("{},", n - 1) .. "{}]")
end

function modes.slow(_, arg)
  http.sleep((tonumber(arg) or 1000) / 1000) -- parks this connection only
  return json_reply(200, {})
end

function modes.partial()
  local res = reply(200, { ["content-type"] = "application/json" }, string.rep(" ", 1000))
  res.fault = { length = 100000 }
  return res
end

function modes.oversize(_, arg)
  local n = tonumber(arg) or 1000000
  return reply(200, { ["content-type"] = "application/json" }, '"' .. string.rep("a", n - 2) .. '"')
end

function modes.garbage()
  return { status = 200, fault = { raw = "this is not HTTP at all\r\n\r\n" } }
end

local bomb
modes["gzip-bomb"] = function()
  if not bomb then
    local p = assert(io.popen("head -c 80000000 /dev/zero | gzip -c"))
    bomb = p:read("a")
    p:close()
  end
  return reply(200, { ["content-type"] = "application/json", ["content-encoding"] = "gzip" }, bomb)
end

function modes.redirect()
  return reply(302, { location = "http://localhost:" .. server.port .. "/log/redirected" }, "")
end

function modes.status(_, arg)
  local status = tonumber(arg) or 500
  local extra = (status == 429 or status == 503) and { ["retry-after"] = "0" } or {}
  return json_reply(status, { statusCode = status, error = http.REASONS[status] or "Status",
    message = "status " .. status }, extra)
end

local control = {
  ["/__log"] = function() return json_reply(200, log) end,
  ["/__reset"] = function()
    log = {}
    return json_reply(200, {})
  end,
  ["/__quit"] = function()
    server:stop()
    return json_reply(200, {})
  end,
}

local function route(req)
  local fn = control[req.target]
  if fn then return fn() end
  log[#log + 1] = { method = req.method, target = req.target, auth = req.headers.authorization ~= nil }
  local mode, rest = req.target:match("^/([%w%-]+)(.*)$")
  local scenario = modes[mode or ""]
  if not scenario then return json_reply(404, { error = "Not Found", message = "no mode " .. tostring(mode) }) end
  return scenario(req, rest:match("^/(%d+)/"))
end

local function handler(req)
  last_activity = socket.gettime()
  local res = route(req)
  res.close = true
  return res
end

server = http.new{
  handler = handler,
  default_type = false,
  on_tick = function(now)
    if now - last_activity > IDLE_EXIT then server:stop() end
  end,
  log = function(line) io.stderr:write("hostile_server: ", line, "\n") end,
}
assert(server:bind())
io.stdout:write(server.port, "\n")
io.stdout:flush()
server:run()
