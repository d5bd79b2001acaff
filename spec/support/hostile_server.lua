-- hostile_server.lua - a loopback HTTP/1.1 server that misbehaves on
-- purpose, for spec/hostile_spec.lua.
--
-- Run as a script, it serves on 127.0.0.1 (port 0, so the kernel picks)
-- and prints its port. One connection at a time, one request per
-- connection (every reply says `Connection: close`), so a mode that
-- sleeps or breaks a connection cannot disturb the next request. It
-- stops by itself after IDLE_EXIT seconds without traffic.
--
-- The mode is the first path segment, so a client is pointed at a mode by
-- its base URL (`http://127.0.0.1:PORT/echo-text`) and every operation
-- of the SDK lands in it. Modes:
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
--   /__log                   the requests so far: [{method, target}] (JSON)
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
-- server side

local cjson = require "cjson"

local IDLE_EXIT = 60
local srv = assert(socket.bind("127.0.0.1", 0))
srv:settimeout(1)
io.stdout:write(select(2, srv:getsockname()), "\n")
io.stdout:flush()

local log = {}

local REASON = { [200] = "OK", [302] = "Found", [400] = "Bad Request", [401] = "Unauthorized", [404] = "Not Found",
                 [429] = "Too Many Requests", [500] = "Internal Server Error", [503] = "Service Unavailable" }

local function reply(conn, status, headers, body)
  local lines = { ("HTTP/1.1 %d %s"):format(status, REASON[status] or "Status") }
  headers["content-length"] = headers["content-length"] or #body
  headers.connection = "close"
  for k, v in pairs(headers) do lines[#lines + 1] = k .. ": " .. tostring(v) end
  conn:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. body)
end

local function read_request(conn)
  local line = conn:receive("*l")
  if not line then return nil end
  local method, target = line:match("^(%S+) (%S+) HTTP/1%.[01]$")
  if not method then return nil end
  local headers = {}
  while true do
    local h = conn:receive("*l")
    if not h or h == "" then break end
    local k, v = h:match("^([^:]+):%s*(.*)$")
    if k then headers[k:lower()] = v end
  end
  local n = tonumber(headers["content-length"] or 0)
  local body = n > 0 and conn:receive(n) or ""
  return { method = method, target = target, headers = headers, body = body }
end

-- The forms a server could echo the key in.
local function echo_forms(auth)
  local pct = auth:gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end)
  local js = auth:gsub('[/"\\]', function(c) return "\\" .. c end)
  return auth, pct, js
end

local function nest(depth, leaf)
  local v = leaf
  for i = depth, 1, -1 do v = { ["level" .. i] = v, list = { v } } end
  return v
end

local function json_reply(conn, status, value, extra)
  local headers = { ["content-type"] = "application/json" }
  for k, v in pairs(extra or {}) do headers[k] = v end
  reply(conn, status, headers, cjson.encode(value))
end

local function echo_headers(auth)
  local _, pct = echo_forms(auth)
  return { ["x-echo"] = auth, ["x-request-id"] = auth, ["set-cookie"] = "session=" .. auth,
           ["x-" .. pct] = "as a header name" }
end

local modes = {}

function modes.log(conn)
  json_reply(conn, 200, {})
end

modes["echo-text"] = function(conn, req)
  local auth, pct, js = echo_forms(req.headers.authorization or "")
  local headers = echo_headers(auth)
  headers["content-type"] = "text/plain"
  reply(conn, 200, headers, "you sent " .. auth .. "\npercent-encoded " .. pct .. "\nescaped " .. js .. "\n")
end

modes["echo-api-error"] = function(conn, req)
  local auth = req.headers.authorization or ""
  json_reply(conn, 200, {
    error = "Unauthorized", message = "bad key " .. auth, detail = auth,
    echo = { auth = auth, headers = req.headers }, [auth] = "the key as a field name",
    deep = nest(10, auth),
  }, echo_headers(auth))
end

modes["echo-status"] = function(conn, req, arg)
  local auth = req.headers.authorization or ""
  json_reply(conn, tonumber(arg) or 400, {
    statusCode = tonumber(arg) or 400, error = "Bad Request", message = { "first " .. auth, "second" },
    deep = nest(12, { auth }), [auth] = true,
  }, echo_headers(auth))
end

modes["echo-cut"] = function(conn, req, arg)
  local auth = req.headers.authorization or ""
  -- The key itself starts 25 bytes before byte 2000.
  local key_at = #"Bearer "
  local pad = string.rep("x", 2000 - 25 - key_at)
  reply(conn, tonumber(arg) or 400, { ["content-type"] = "text/plain" }, pad .. auth .. string.rep("y", 100))
end

function modes.cycle(conn, req, arg, pad)
  local period = tonumber(arg) or 2
  local cur = req.target:match("[?&]starting_after=([^&]+)")
  local k = cur and tonumber(cur:match("^c(%d+)")) or 0
  local nxt = "c" .. (k % period + 1) .. (pad or "")
  json_reply(conn, 200, { items = { { id = "item-" .. k, name = "page " .. k } }, next_starting_after = nxt })
end

modes["cycle-long"] = function(conn, req, arg)
  return modes.cycle(conn, req, arg, "-" .. string.rep("x", 2000))
end

function modes.amplify(conn, _, arg)
  local n = tonumber(arg) or 1000
  reply(conn, 200, { ["content-type"] = "application/json" }, "[" .. string.rep("{},", n - 1) .. "{}]")
end

function modes.slow(conn, _, arg)
  socket.sleep((tonumber(arg) or 1000) / 1000)
  json_reply(conn, 200, {})
end

function modes.partial(conn)
  conn:send("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n" ..
    string.rep(" ", 1000))
end

function modes.oversize(conn, _, arg)
  local n = tonumber(arg) or 1000000
  reply(conn, 200, { ["content-type"] = "application/json" }, '"' .. string.rep("a", n - 2) .. '"')
end

function modes.garbage(conn)
  conn:send("this is not HTTP at all\r\n\r\n")
end

local bomb
modes["gzip-bomb"] = function(conn)
  if not bomb then
    local p = assert(io.popen("head -c 80000000 /dev/zero | gzip -c"))
    bomb = p:read("a")
    p:close()
  end
  reply(conn, 200, { ["content-type"] = "application/json", ["content-encoding"] = "gzip" }, bomb)
end

function modes.redirect(conn)
  local port = select(2, srv:getsockname())
  reply(conn, 302, { location = "http://localhost:" .. port .. "/log/redirected" }, "")
end

function modes.status(conn, _, arg)
  local status = tonumber(arg) or 500
  local extra = (status == 429 or status == 503) and { ["retry-after"] = "0" } or {}
  json_reply(conn, status, { statusCode = status, error = REASON[status] or "Status", message = "status " .. status },
    extra)
end

local last = socket.gettime()
local running = true
while running and socket.gettime() - last < IDLE_EXIT do
  local conn = srv:accept()
  if conn then
    last = socket.gettime()
    conn:settimeout(5)
    local req = read_request(conn)
    if req then
      if req.target == "/__log" then
        json_reply(conn, 200, log)
      elseif req.target == "/__reset" then
        log = {}
        json_reply(conn, 200, {})
      elseif req.target == "/__quit" then
        json_reply(conn, 200, {})
        running = false
      else
        log[#log + 1] = { method = req.method, target = req.target, auth = req.headers.authorization ~= nil }
        local mode, rest = req.target:match("^/([%w%-]+)(.*)$")
        local arg = rest and rest:match("^/(%d+)/")
        local fn = modes[mode or ""]
        if fn then
          fn(conn, req, arg)
        else
          json_reply(conn, 404, { error = "Not Found", message = "no mode " .. tostring(mode) })
        end
      end
    end
    conn:close()
  end
end
srv:close()
