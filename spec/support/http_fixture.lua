-- http_fixture.lua - a small HTTP/1.1 server for the transport specs.
--
-- Run as a script, it serves on 127.0.0.1 (port 0, so the kernel picks)
-- and prints two lines: its port, then the port of a "black hole"
-- listener whose accept queue is full, so connecting to it times out
-- without leaving the machine. It speaks HTTP/1.1 with keep-alive, serves
-- many connections at once (coroutines over socket.select) and keeps a
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
-- server side

local cjson = require "cjson"

local IDLE_EXIT = 120   -- seconds without any traffic: the spec is gone
local LIFETIME = 900    -- hard bound on the process
local started = socket.gettime()

local srv = assert(socket.bind("127.0.0.1", 0))
srv:settimeout(0)

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

io.stdout:write(select(2, srv:getsockname()), "\n", select(2, hole:getsockname()), "\n")
io.stdout:flush()

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

local wait_r, wait_w, sleepers, barriers = {}, {}, {}, {}
local running = true
local last_activity = socket.gettime()

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

local function spawn(fn, ...)
  local co = coroutine.create(fn)
  local ok, err = coroutine.resume(co, ...)
  if not ok then io.stderr:write("fixture: ", tostring(err), "\n") end
end

local function resume(co)
  local ok, err = coroutine.resume(co)
  if not ok then io.stderr:write("fixture: ", tostring(err), "\n") end
end

local function sleep(seconds)
  sleepers[coroutine.running()] = socket.gettime() + seconds
  coroutine.yield()
end

-- Buffered reading on a non-blocking socket; nil when the peer is gone.
local function fill(conn)
  local data, err, partial = conn.sock:receive(65536)
  data = data or partial
  if data and #data > 0 then
    conn.buf = conn.buf .. data
    return true
  end
  if err == "timeout" then
    wait_r[conn.sock] = coroutine.running()
    coroutine.yield()
    return true
  end
  return false
end

local function read_line(conn)
  while true do
    local i = conn.buf:find("\n", 1, true)
    if i then
      local line = conn.buf:sub(1, i - 1):gsub("\r$", "")
      conn.buf = conn.buf:sub(i + 1)
      return line
    end
    if #conn.buf > 65536 or not fill(conn) then return nil end
  end
end

local function read_n(conn, n)
  local parts, have = { conn.buf }, #conn.buf
  conn.buf = ""
  while have < n do
    local data, err, partial = conn.sock:receive(math.min(n - have, 1 << 20))
    data = data or partial
    if data and #data > 0 then
      parts[#parts + 1] = data
      have = have + #data
    elseif err == "timeout" then
      wait_r[conn.sock] = coroutine.running()
      coroutine.yield()
    else
      return nil
    end
  end
  local all = table.concat(parts)
  conn.buf = all:sub(n + 1)
  return all:sub(1, n)
end

local function send_all(conn, data)
  local i = 1
  while i <= #data do
    local last, err, sent = conn.sock:send(data, i)
    if last then return true end
    if err ~= "timeout" then return false end
    i = sent + 1
    wait_w[conn.sock] = coroutine.running()
    coroutine.yield()
  end
  return true
end

local REASONS = { [200] = "OK", [204] = "No Content", [302] = "Found", [304] = "Not Modified",
  [404] = "Not Found", [411] = "Length Required", [500] = "Internal Server Error",
  [502] = "Bad Gateway", [504] = "Gateway Timeout" }

local function respond(conn, req, status, headers, body)
  local lines = { ("HTTP/1.1 %d %s"):format(status, REASONS[status] or "Status") }
  for _, h in ipairs(headers or {}) do lines[#lines + 1] = h[1] .. ": " .. h[2] end
  if status ~= 204 and status ~= 304 then
    lines[#lines + 1] = "Content-Length: " .. #body
  end
  if req.close then lines[#lines + 1] = "Connection: close" end
  lines[#lines + 1] = "\r\n"
  local head = table.concat(lines, "\r\n")
  if req.method == "HEAD" or status == 204 or status == 304 then body = "" end
  return send_all(conn, head .. body)
end

local function parse_query(q)
  local t = {}
  for k, v in (q or ""):gmatch("([^&=]+)=([^&]*)") do t[k] = v end
  return t
end

local routes = {}

routes["/hello"] = function(conn, req)
  return respond(conn, req, 200, { { "Content-Type", "text/plain" } }, "hello world")
end

routes["/echo"] = function(conn, req)
  if req.query.back then
    return respond(conn, req, 200, { { "Content-Type", "application/octet-stream" } }, req.body)
  end
  local body = cjson.encode({ method = req.method, target = req.target, headers = req.headers,
    body_length = #req.body, body_head = req.body:sub(1, 64) })
  return respond(conn, req, 200, { { "Content-Type", "application/json" } }, body)
end

routes["/bytes"] = function(conn, req)
  return respond(conn, req, 200, {}, M.pattern(tonumber(req.query.n) or 0))
end

routes["/chunked"] = function(conn, req)
  local body = M.pattern(tonumber(req.query.n) or 0)
  local head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
    .. (req.close and "Connection: close\r\n" or "") .. "\r\n"
  if not send_all(conn, head) then return false end
  local i = 1
  while i <= #body do
    local piece = body:sub(i, i + 65535)
    if not send_all(conn, ("%x\r\n"):format(#piece) .. piece .. "\r\n") then return false end
    i = i + #piece
  end
  return send_all(conn, "0\r\n\r\n")
end

routes["/gzip"] = function(conn, req)
  local ae = req.headers["accept-encoding"] or ""
  if ae:find("gzip", 1, true) then
    return respond(conn, req, 200, { { "Content-Encoding", "gzip" }, { "Vary", "Accept-Encoding" },
      { "X-Encoded-Length", tostring(#gzip_body) } }, gzip_body)
  end
  return respond(conn, req, 200, {}, M.GZIP_TEXT)
end

routes["/headers"] = function(conn, req)
  return respond(conn, req, 200, {
    { "X-Repeat", "one" }, { "X-Repeat", "two" }, { "X-Mixed-CASE", "  Value With Spaces  " },
    { "Set-Cookie", "a=1" }, { "Set-Cookie", "b=2" }, { "X-Empty", "" },
    { "X-Folded", "first\r\n   second" }, -- obsolete line folding
  }, "headers")
end

routes["/redirect"] = function(conn, req)
  return respond(conn, req, 302, { { "Location", req.query.to or "/hello" } }, "moved")
end

routes["/slow"] = function(conn, req)
  sleep((tonumber(req.query.ms) or 1000) / 1000)
  return respond(conn, req, 200, {}, "slow")
end

routes["/close-mid-body"] = function(conn)
  send_all(conn, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" .. M.pattern(1000))
  return false
end

routes["/garbage"] = function(conn)
  send_all(conn, "this is not HTTP\r\n\r\n")
  return false
end

routes["/barrier"] = function(conn, req)
  local name, n = req.query.name or "default", tonumber(req.query.n) or 2
  local b = barriers[name]
  if not b then
    b = { waiting = {}, deadline = socket.gettime() + 10 }
    barriers[name] = b
  end
  local me = coroutine.running()
  b.waiting[#b.waiting + 1] = me
  if #b.waiting >= n then
    barriers[name] = nil
    for _, co in ipairs(b.waiting) do
      if co ~= me then sleepers[co] = 0 end
    end
  else
    while barriers[name] == b and socket.gettime() < b.deadline do sleep(0.05) end
    if barriers[name] == b then
      return respond(conn, req, 504, {}, "barrier not reached")
    end
  end
  return respond(conn, req, 200, {}, "released " .. n)
end

routes["/_stats"] = function(conn, req)
  return respond(conn, req, 200, {}, cjson.encode(record))
end

routes["/_reset"] = function(conn, req)
  reset()
  return respond(conn, req, 200, {}, "reset")
end

routes["/_quit"] = function(conn, req)
  running = false
  return respond(conn, req, 200, {}, "bye")
end

local function read_request(conn)
  local line = read_line(conn)
  while line == "" do line = read_line(conn) end -- tolerate stray CRLF
  if not line then return nil end
  local method, target, version = line:match("^(%u+) (%S+) HTTP/(%d%.%d)$")
  if not method then return nil end
  local req = { method = method, target = target, headers = {} }
  while true do
    local h = read_line(conn)
    if not h then return nil end
    if h == "" then break end
    local name, value = h:match("^([^:]+):%s*(.-)%s*$")
    if name then
      name = name:lower()
      req.headers[name] = req.headers[name] and (req.headers[name] .. ", " .. value) or value
    end
  end
  -- An absolute-form target is a request made through a proxy.
  local path = target:gsub("^https?://[^/]*", "")
  req.path, req.query = path:match("^([^?]*)%??(.*)$")
  req.query = parse_query(req.query)
  req.close = version == "1.0" or (req.headers.connection or ""):lower():find("close", 1, true) ~= nil
  if req.headers["transfer-encoding"] then
    req.unsupported = true
    req.body = ""
    return req
  end
  local len = tonumber(req.headers["content-length"] or "0")
  req.body = len > 0 and read_n(conn, len) or ""
  if not req.body then return nil end
  return req
end

-- Copies bytes from one side of a tunnel to the other until `from` ends,
-- then half-closes `to`; the second direction to end closes both.
local function relay(tunnel, from, to)
  while true do
    local data, err, partial = from.sock:receive(65536)
    data = data or partial
    if data and #data > 0 then
      last_activity = socket.gettime()
      if not send_all(to, data) then break end
    elseif err == "timeout" then
      wait_r[from.sock] = coroutine.running()
      coroutine.yield()
    else
      break
    end
  end
  to.sock:shutdown("send")
  tunnel.ended = tunnel.ended + 1
  if tunnel.ended == 2 then
    for _, c in ipairs{ from, to } do
      wait_r[c.sock], wait_w[c.sock] = nil, nil
      c.sock:close()
    end
  end
end

-- CONNECT host:port (an https request through this proxy): connect, answer
-- 200, then relay bytes blindly both ways.
local function tunnel(conn, req)
  local host, port = req.target:match("^([^:]+):(%d+)$")
  local up = socket.tcp()
  up:settimeout(2) -- loopback only: connecting does not block for long
  if not (host and up:connect(host, tonumber(port))) then
    up:close()
    respond(conn, req, 502, {}, "cannot reach " .. req.target)
    return false
  end
  up:settimeout(0)
  record.tunnels = record.tunnels + 1
  record.last_tunnel = req.target
  if not send_all(conn, "HTTP/1.1 200 Connection established\r\n\r\n") then
    up:close()
    return false
  end
  local upstream = { sock = up }
  if #conn.buf > 0 and not send_all(upstream, conn.buf) then
    up:close()
    return false
  end
  local t = { ended = 0 }
  spawn(relay, t, upstream, conn)
  relay(t, conn, upstream)
  return true
end

local function handle(sock)
  sock:settimeout(0)
  sock:setoption("tcp-nodelay", true)
  local conn = { sock = sock, buf = "" }
  while true do
    local req = read_request(conn)
    if not req then break end
    last_activity = socket.gettime()
    if req.method == "CONNECT" then
      if tunnel(conn, req) then return end -- the tunnel closed the sockets
      break
    end
    local control = req.path:sub(1, 2) == "/_"
    if not control then
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
    local route = routes[req.path] or (req.path:match("^/status/%d+$") and function(c, r)
      local code = tonumber(r.path:match("%d+$"))
      return respond(c, r, code, {}, "status " .. code)
    end)
    local keep
    if req.unsupported then
      keep = respond(conn, req, 411, {}, "chunked request bodies are not supported here")
      req.close = true
    elseif route then
      keep = route(conn, req)
    else
      keep = respond(conn, req, 404, {}, "no route " .. req.path)
    end
    if not control then record.inflight = record.inflight - 1 end
    if not keep or req.close or not running then break end
  end
  if conn.gen == generation then record.open = record.open - 1 end
  wait_r[sock], wait_w[sock] = nil, nil
  sock:close()
end

while running do
  local now = socket.gettime()
  if now - last_activity > IDLE_EXIT or now - started > LIFETIME then break end
  local rl, wl = { srv }, {}
  for s in pairs(wait_r) do rl[#rl + 1] = s end
  for s in pairs(wait_w) do wl[#wl + 1] = s end
  local timeout = 1
  for _, t in pairs(sleepers) do timeout = math.min(timeout, math.max(0, t - now)) end
  local readable, writable = socket.select(rl, wl, timeout)
  for _, s in ipairs(readable) do
    if s == srv then
      while true do
        local c = srv:accept()
        if not c then break end
        last_activity = socket.gettime()
        spawn(handle, c)
      end
    elseif wait_r[s] then
      local co = wait_r[s]
      wait_r[s] = nil
      resume(co)
    end
  end
  for _, s in ipairs(writable) do
    local co = wait_w[s]
    if co then
      wait_w[s] = nil
      resume(co)
    end
  end
  now = socket.gettime()
  local due = {}
  for co, t in pairs(sleepers) do
    if t <= now then due[#due + 1] = co end
  end
  for _, co in ipairs(due) do
    sleepers[co] = nil
    resume(co)
  end
end

for _, c in ipairs(hole_fillers) do c:close() end
hole:close()
srv:close()
