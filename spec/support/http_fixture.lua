-- http_fixture.lua - a small HTTP/1.1 server for the transport specs.
--
-- Run as a script, it serves on 127.0.0.1 (port 0, so the kernel picks)
-- and prints two lines: its port, then the port of a "black hole"
-- listener whose accept queue is full, so connecting to it times out
-- without leaving the machine. It speaks HTTP/1.1 with keep-alive, serves
-- many connections at once (it runs on instantly.server.http, the server
-- core the mock uses) and keeps a
-- record the specs read back: connections accepted, requests served, the
-- most connections open and requests in flight at one time.
--
-- Required as a module (support.http_fixture), it returns start(), which
-- spawns the script and hands back a handle to talk to it.
--
-- It is also a forward proxy: absolute-form targets are routed like the
-- paths below, and CONNECT opens a tunnel (counted in the record).
--
-- Routes (all bodies deterministic):
--   /hello                 200 "hello world"
--   /echo[?back=1]         the request as JSON (method, target, headers,
--                          body_length); back=1 returns the body itself
--   /bytes?n=N             N bytes of a known pattern, with Content-Length
--   /chunked?n=N           the same, chunked (no length known up front)
--   /gzip                  a known text, gzip-encoded if the client accepts it
--   /headers               repeated and mixed-case response headers
--   /status/N              status N
--   /redirect?to=PATH      302 to PATH
--   /slow?ms=N             answers after N ms
--   /close-mid-body        announces 100000 bytes, sends 1000, closes
--   /garbage               a reply without a status line, then closes
--   /barrier?name=X&n=K    holds each request until K are waiting, then
--                          answers all (504 after 10 s): proof of overlap
--   /_stats /_reset /_quit control; not counted in the record
local socket = require "socket"

local M = {}

local PATTERN = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"
M.GZIP_TEXT = string.rep("instantly gzip fixture line, compressible text\n", 2000)

--- The first n bytes of the pattern /bytes and /chunked serve.
function M.pattern(n)
  local reps = n // #PATTERN + 1
  return string.rep(PATTERN, reps):sub(1, n)
end

------------------------------------------------------------------------
-- module side: spawn and talk to the server

local here = debug.getinfo(1, "S").source:match("^@(.*)$")

-- A raw HTTP/1.1 exchange over LuaSocket, independent of the code under test.
local function raw_get(port, path)
  local c = assert(socket.tcp())
  c:settimeout(10)
  assert(c:connect("127.0.0.1", port))
  assert(c:send("GET " .. path .. " HTTP/1.1\r\nHost: fixture\r\nConnection: close\r\n\r\n"))
  local all = c:receive("*a")
  c:close()
  return all and all:match("\r\n\r\n(.*)$")
end

--- Starts a fixture server; returns a handle with port, blackhole_port,
-- url(path), stats(), reset() and stop().
function M.start()
  local lua = os.getenv("LUA") or "lua5.4"
  local p = assert(io.popen("exec " .. lua .. " " .. here, "r"))
  local port = tonumber(p:read("l"))
  local blackhole = tonumber(p:read("l"))
  assert(port and blackhole, "http_fixture did not start")
  local h = { port = port, blackhole_port = blackhole }
  function h.url(path) return "http://127.0.0.1:" .. port .. path end
  function h.stats()
    local cjson = require "cjson"
    return cjson.decode(assert(raw_get(port, "/_stats")))
  end
  function h.reset() raw_get(port, "/_reset") end
  function h.stop()
    pcall(raw_get, port, "/_quit")
    p:close()
  end
  return h
end

if (...) == "support.http_fixture" or (...) == "spec.support.http_fixture" then
  return M
end

------------------------------------------------------------------------
-- server side: routes over the shared server core

-- The server core lives in the tree this file belongs to.
do
  local root = here:match("^(.*)/spec/support/[^/]*$") or (here:match("^spec/") and ".") or "."
  package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
end
local cjson = require "cjson"
local http = require "instantly.server.http"

local IDLE_EXIT = 120   -- seconds without any traffic: the spec is gone
local LIFETIME = 900    -- hard bound on the process
local started = socket.gettime()
local last_activity = started

local record
-- Each reset starts a generation: a connection counts as open in the
-- generation it was last used in, so keep-alive connections left over from
-- before a reset, closing later, cannot push the live count below zero.
local generation = 0
local function reset()
  generation = generation + 1
  record = { connections = 0, requests = 0, open = 0, max_open = 0, inflight = 0, max_inflight = 0,
    tunnels = 0, last_tunnel = "" }
end
reset()

local barriers = {}
local server -- the http core, set below

local gzip_body
do
  local tmp = os.tmpname()
  local f = assert(io.open(tmp, "wb"))
  f:write(M.GZIP_TEXT)
  f:close()
  local g = assert(io.popen("gzip -c -n " .. tmp, "r"))
  gzip_body = g:read("a")
  g:close()
  os.remove(tmp)
  assert(#gzip_body > 0 and #gzip_body < #M.GZIP_TEXT, "gzip failed")
end

local function reply(status, headers, body)
  return { status = status, headers = headers, body = body }
end

local routes = {}

routes["/hello"] = function()
  return reply(200, { { "Content-Type", "text/plain" } }, "hello world")
end

routes["/echo"] = function(req)
  if req.query.back then
    return reply(200, { { "Content-Type", "application/octet-stream" } }, req.body)
  end
  local body = cjson.encode({ method = req.method, target = req.target, headers = req.headers,
    body_length = #req.body, body_head = req.body:sub(1, 64) })
  return reply(200, { { "Content-Type", "application/json" } }, body)
end

routes["/bytes"] = function(req)
  return reply(200, nil, M.pattern(tonumber(req.query.n) or 0))
end

routes["/chunked"] = function(req)
  local body = M.pattern(tonumber(req.query.n) or 0)
  return { status = 200, takeover = function(sock)
    local send = http.send_all
    if not send(sock, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
      .. (req.close and "Connection: close\r\n" or "") .. "\r\n") then return false end
    local i = 1
    while i <= #body do
      local piece = body:sub(i, i + 65535)
      if not send(sock, ("%x\r\n"):format(#piece) .. piece .. "\r\n") then return false end
      i = i + #piece
    end
    return send(sock, "0\r\n\r\n") and not req.close
  end }
end

routes["/gzip"] = function(req)
  local ae = req.headers["accept-encoding"] or ""
  if ae:find("gzip", 1, true) then
    return reply(200, { { "Content-Encoding", "gzip" }, { "Vary", "Accept-Encoding" },
      { "X-Encoded-Length", tostring(#gzip_body) } }, gzip_body)
  end
  return reply(200, nil, M.GZIP_TEXT)
end

routes["/headers"] = function()
  return reply(200, {
    { "X-Repeat", "one" }, { "X-Repeat", "two" }, { "X-Mixed-CASE", "  Value With Spaces  " },
    { "Set-Cookie", "a=1" }, { "Set-Cookie", "b=2" }, { "X-Empty", "" },
    { "X-Folded", "first\r\n   second" }, -- obsolete line folding
  }, "headers")
end

routes["/redirect"] = function(req)
  return reply(302, { { "Location", req.query.to or "/hello" } }, "moved")
end

routes["/slow"] = function(req)
  http.sleep((tonumber(req.query.ms) or 1000) / 1000)
  return reply(200, nil, "slow")
end

routes["/close-mid-body"] = function()
  return { status = 200, body = M.pattern(1000), fault = { length = 100000 } }
end

routes["/garbage"] = function()
  return { status = 200, fault = { raw = "this is not HTTP\r\n\r\n" } }
end

-- Holds each caller until n are waiting; the last one in releases them.
routes["/barrier"] = function(req)
  local name, n = req.query.name or "default", tonumber(req.query.n) or 2
  local b = barriers[name]
  if not b then
    b = { waiting = 0, deadline = socket.gettime() + 10 }
    barriers[name] = b
  end
  b.waiting = b.waiting + 1
  if b.waiting >= n then
    barriers[name] = nil
  else
    while barriers[name] == b and socket.gettime() < b.deadline do http.sleep(0.01) end
    if barriers[name] == b then return reply(504, nil, "barrier not reached") end
  end
  return reply(200, nil, "released " .. n)
end

routes["/_stats"] = function() return reply(200, nil, cjson.encode(record)) end

routes["/_reset"] = function()
  reset()
  return reply(200, nil, "reset")
end

routes["/_quit"] = function()
  server:stop()
  return { status = 200, body = "bye", close = true }
end

local function status_route(req)
  local code = tonumber(req.path:match("%d+$"))
  return reply(code, nil, "status " .. code)
end

-- Copies bytes from one side of a tunnel to the other until `from` ends,
-- then half-closes `to`; the second direction to end closes both.
local function relay(t, from, to)
  while true do
    local data = http.receive_some(from, math.huge)
    if not data then break end
    last_activity = socket.gettime()
    if not http.send_all(to, data) then break end
  end
  to:shutdown("send")
  t.ended = t.ended + 1
  if t.ended == 2 then
    from:close()
    to:close()
  end
end

-- CONNECT host:port (an https request through this proxy): connect, answer
-- 200, then relay bytes blindly both ways.
local function tunnel(req)
  local host, port = req.target:match("^([^:]+):(%d+)$")
  local up = socket.tcp()
  up:settimeout(2) -- loopback only: connecting does not block for long
  if not (host and up:connect(host, tonumber(port))) then
    up:close()
    return { status = 502, body = "cannot reach " .. req.target, close = true }
  end
  up:settimeout(0)
  record.tunnels = record.tunnels + 1
  record.last_tunnel = req.target
  return { status = 200, takeover = function(sock, rest)
    if not http.send_all(sock, "HTTP/1.1 200 Connection established\r\n\r\n")
      or (#rest > 0 and not http.send_all(up, rest)) then
      up:close()
      return false
    end
    local t = { ended = 0 }
    server:spawn(relay, t, up, sock)
    relay(t, sock, up)
    return false
  end }
end

local function count(req)
  local conn = req.conn
  if conn.gen ~= generation then
    conn.gen = generation
    record.connections = record.connections + 1
    record.open = record.open + 1
    record.max_open = math.max(record.max_open, record.open)
  end
  record.requests = record.requests + 1
  record.inflight = record.inflight + 1
  record.max_inflight = math.max(record.max_inflight, record.inflight)
end

local function route(req)
  if req.method == "CONNECT" then return tunnel(req) end
  -- An absolute-form target is a request made through a proxy.
  local target = req.target:gsub("^https?://[^/]*", "")
  local path, query = target:match("^([^?]*)%??(.*)$")
  req.path, req.query = path, {}
  for k, v in query:gmatch("([^&=]+)=([^&]*)") do req.query[k] = v end
  req.close = req.version == "1.0" or (req.headers.connection or ""):lower():find("close", 1, true) ~= nil
  if req.headers["transfer-encoding"] then
    return { status = 411, body = "chunked request bodies are not supported here", close = true }
  end
  local fn = routes[path] or (path:match("^/status/%d+$") and status_route)
  if not fn then return reply(404, nil, "no route " .. path) end
  return fn(req)
end

local function handler(req)
  last_activity = socket.gettime()
  local control = req.path:sub(1, 2) == "/_"
  if control then return route(req) end
  count(req)
  local ok, res = pcall(route, req)
  record.inflight = record.inflight - 1
  if not ok then error(res, 0) end
  return res
end

-- A listener with a backlog of 0 whose queue we fill ourselves: further
-- SYNs are dropped by the kernel, so a client's connect hangs until its
-- own timeout, all on loopback.
local hole = assert(socket.bind("127.0.0.1", 0, 0))
local hole_fillers = {}
for i = 1, 3 do
  local c = socket.tcp()
  c:settimeout(0)
  c:connect("127.0.0.1", select(2, hole:getsockname()))
  hole_fillers[i] = c
end

server = http.new{
  handler = handler,
  default_type = false,
  max_body = 256 * 1024 * 1024,
  on_close = function(conn)
    if conn.gen == generation then record.open = record.open - 1 end
  end,
  on_tick = function(now)
    if now - last_activity > IDLE_EXIT or now - started > LIFETIME then server:stop() end
  end,
  log = function(line) io.stderr:write("fixture: ", line, "\n") end,
}
assert(server:bind())
io.stdout:write(server.port, "\n", select(2, hole:getsockname()), "\n")
io.stdout:flush()
server:run()

for _, c in ipairs(hole_fillers) do c:close() end
hole:close()
