--- HTTP/1.1 server for the mock, on LuaSocket.
--
-- One process, one select loop, one coroutine per connection. A coroutine
-- that would block (nothing to read yet, a full send buffer, a deliberate
-- delay) yields to the loop, which resumes it when select says the socket
-- is ready or its wake time has come; the select timeout is the nearest
-- wake, so a parked response never holds up the other connections.
--
-- This file knows the wire (request line, headers, Content-Length and
-- chunked bodies, Expect: 100-continue, keep-alive, size limits) and the
-- ways a response can be mangled on purpose (close early, truncate,
-- trickle). What a request means is the handler's business.
-- @module instantly.mock.http

local socket = require "socket"

local co_create, co_resume, co_yield, co_status =
  coroutine.create, coroutine.resume, coroutine.yield, coroutine.status
local concat, insert, remove = table.concat, table.insert, table.remove
local gettime = socket.gettime
local tonumber, tostring, pairs, ipairs = tonumber, tostring, pairs, ipairs

local M = {}

M.REASONS = {
  [100] = "Continue", [200] = "OK", [201] = "Created", [202] = "Accepted",
  [204] = "No Content", [400] = "Bad Request", [401] = "Unauthorized",
  [402] = "Payment Required", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [408] = "Request Timeout", [409] = "Conflict",
  [411] = "Length Required", [413] = "Payload Too Large",
  [415] = "Unsupported Media Type", [417] = "Expectation Failed", [422] = "Unprocessable Entity",
  [429] = "Too Many Requests", [431] = "Request Header Fields Too Large",
  [500] = "Internal Server Error", [501] = "Not Implemented",
  [502] = "Bad Gateway", [503] = "Service Unavailable", [504] = "Gateway Timeout",
  [505] = "HTTP Version Not Supported",
}

--- Connections served at once; more are closed on accept.
M.MAX_CONNECTIONS = 900

local Server = {}
Server.__index = Server

--- A server, not yet bound.
-- opts: host, port, handler(req) -> res, error_body(status, message) -> string,
-- max_body (bytes), max_header (bytes), idle_timeout (seconds), on_tick(now)
-- called about once a second, log(line).
function M.new(opts)
  local self = setmetatable({
    host = opts.host or "127.0.0.1",
    port = opts.port or 0,
    handler = assert(opts.handler, "handler"),
    error_body = opts.error_body or function(_, msg) return msg end,
    max_body = opts.max_body or 16 * 1024 * 1024,
    max_header = opts.max_header or 64 * 1024,
    idle_timeout = opts.idle_timeout or 60,
    on_tick = opts.on_tick,
    log = opts.log or function() end,
    -- scheduler state
    rwait = {}, wwait = {}, deadline = {}, sleepers = {},
    rlist = {}, wlist = {}, dirty = true,
    conns = {}, nconns = 0,
    stopping = false,
  }, Server)
  return self
end

function Server:bind()
  local srv, err = socket.bind(self.host, self.port, 128)
  if not srv then return nil, err end
  srv:settimeout(0)
  self.sock = srv
  local _, port = srv:getsockname()
  self.port = tonumber(port)
  return true
end

-- Parking primitives, called from inside a connection coroutine.

local function wait_read(sock, deadline)
  return co_yield("r", sock, deadline)
end

local function wait_write(sock)
  return co_yield("w", sock)
end

--- Park the calling coroutine until `sock` is readable (false once
-- `deadline` passes) or writable; for code run with Server:spawn.
M.wait_read, M.wait_write = wait_read, wait_write

--- Park the calling connection coroutine for `seconds`.
function M.sleep(seconds)
  if seconds and seconds > 0 then co_yield("s", gettime() + seconds) end
end

-- Receive with LuaSocket's partial-result protocol on a non-blocking
-- socket; `deadline` bounds the wait (idle keep-alive or slow client).
local function receive(sock, pattern, deadline)
  local prefix
  while true do
    local data, err, part = sock:receive(pattern, prefix)
    if data then return data end
    if err ~= "timeout" then return nil, err end
    prefix = part
    if not wait_read(sock, deadline) then return nil, "timeout" end
  end
end

local function send_all(sock, data, i)
  i = i or 1
  local n = #data
  while i <= n do
    local last, err, partial = sock:send(data, i)
    if last then
      i = last + 1
    elseif err == "timeout" then
      i = partial + 1
      wait_write(sock)
    else
      return nil, err
    end
  end
  return true
end
M.send_all = send_all

-- Header block: returns headers table (lower-case names, repeats joined
-- with ", ") and the list of raw (name, value) pairs.
local function read_headers(self, sock, deadline)
  local headers, count, bytes = {}, 0, 0
  while true do
    local line, err = receive(sock, "*l", deadline)
    if not line then return nil, err end
    if line == "" then return headers end
    bytes = bytes + #line + 2
    count = count + 1
    if bytes > self.max_header or count > 200 then return nil, "too large" end
    local name, value = line:match("^([^%s:]+):[ \t]*(.-)[ \t]*$")
    if not name then return nil, "bad header" end
    name = name:lower()
    local old = headers[name]
    headers[name] = old and (old .. ", " .. value) or value
  end
end

local function read_chunked(self, sock, deadline)
  local parts, total = {}, 0
  while true do
    local line, err = receive(sock, "*l", deadline)
    if not line then return nil, err end
    local size = tonumber(line:match("^%s*(%x+)"), 16)
    if not size then return nil, "bad chunk" end
    if size == 0 then
      -- trailers, up to the empty line
      repeat
        line, err = receive(sock, "*l", deadline)
        if not line then return nil, err end
      until line == ""
      return concat(parts)
    end
    total = total + size
    if total > self.max_body then return nil, "too large" end
    local data
    data, err = receive(sock, size, deadline)
    if not data then return nil, err end
    parts[#parts + 1] = data
    line, err = receive(sock, "*l", deadline)
    if not line then return nil, err end
    if line ~= "" then return nil, "bad chunk" end
  end
end

local function status_line(status)
  return "HTTP/1.1 " .. status .. " " .. (M.REASONS[status] or "Status") .. "\r\n"
end

-- Serialise the head of a response; `length` is the Content-Length put on
-- the wire (a truncation fault announces more than it sends).
local function head(res, length, keep)
  local h = { status_line(res.status) }
  local hdrs = res.headers
  local has_ct = false
  if hdrs then
    for k, v in pairs(hdrs) do
      if k:lower() == "content-type" then has_ct = true end
      h[#h + 1] = k .. ": " .. tostring(v) .. "\r\n"
    end
  end
  if not has_ct and length > 0 then
    h[#h + 1] = "Content-Type: application/json; charset=utf-8\r\n"
  end
  if res.status ~= 204 and res.status >= 200 then
    h[#h + 1] = "Content-Length: " .. length .. "\r\n"
  end
  h[#h + 1] = keep and "Connection: keep-alive\r\n" or "Connection: close\r\n"
  h[#h + 1] = "\r\n"
  return concat(h)
end

-- Write a response; returns true when the connection may be reused.
local function write_response(sock, res, keep)
  local body = res.body or ""
  local fault = res.fault
  if fault and fault.close == "before_headers" then return false end
  if fault and fault.truncate then
    local cut = #body // 2
    send_all(sock, head(res, #body, false) .. body:sub(1, cut))
    return false
  end
  if fault and fault.close == "after_headers" then
    send_all(sock, head(res, #body, false))
    return false
  end
  if fault and fault.trickle and fault.trickle > 0 then
    local data = head(res, #body, keep) .. body
    local pieces = math.max(2, math.min(20, #data))
    local step = math.ceil(#data / pieces)
    local pause = fault.trickle / pieces
    for i = 1, #data, step do
      if not send_all(sock, data:sub(i, i + step - 1)) then return false end
      M.sleep(pause)
    end
    return keep
  end
  if not send_all(sock, head(res, #body, keep) .. body) then return false end
  return keep
end

local function simple(self, sock, status, message)
  local body = self.error_body(status, message)
  write_response(sock, { status = status, body = body }, false)
end

-- One connection: requests in a loop while keep-alive holds.
function Server:serve(sock, peer)
  while not self.stopping do
    local deadline = gettime() + self.idle_timeout
    local line = receive(sock, "*l", deadline)
    if not line then break end
    if line == "" then
      -- tolerate stray CRLF between requests (RFC 9112 2.2)
      goto continue
    end
    do
      deadline = gettime() + self.idle_timeout
      local method, target, version = line:match("^(%u+) (%S+) HTTP/(%d%.%d)$")
      if not method then
        simple(self, sock, 400, "Malformed request line")
        break
      end
      if version ~= "1.1" and version ~= "1.0" then
        simple(self, sock, 505, "HTTP version not supported")
        break
      end
      local headers, err = read_headers(self, sock, deadline)
      if not headers then
        if err == "too large" then simple(self, sock, 431, "Request headers too large")
        elseif err == "bad header" then simple(self, sock, 400, "Malformed header line") end
        break
      end
      local conn_hdr = (headers["connection"] or ""):lower()
      local keep
      if version == "1.1" then
        keep = not conn_hdr:find("close", 1, true)
      else
        keep = conn_hdr:find("keep-alive", 1, true) ~= nil
      end
      local te = headers["transfer-encoding"]
      local cl = headers["content-length"]
      local body = ""
      if te and cl then
        simple(self, sock, 400, "Both Transfer-Encoding and Content-Length")
        break
      end
      local expect = headers["expect"]
      if expect and expect:lower() ~= "100-continue" then
        simple(self, sock, 417, "Unsupported Expect header")
        break
      end
      if cl then
        local n = cl:match("^%d+$") and tonumber(cl)
        if not n then
          simple(self, sock, 400, "Invalid Content-Length")
          break
        end
        if n > self.max_body then
          simple(self, sock, 413, "Request body is larger than " .. self.max_body .. " bytes")
          break
        end
        if expect and n > 0 then send_all(sock, "HTTP/1.1 100 Continue\r\n\r\n") end
        if n > 0 then
          body = receive(sock, n, deadline)
          if not body then break end
        end
      elseif te then
        if te:lower() ~= "chunked" then
          simple(self, sock, 501, "Unsupported Transfer-Encoding")
          break
        end
        if expect then send_all(sock, "HTTP/1.1 100 Continue\r\n\r\n") end
        body, err = read_chunked(self, sock, deadline)
        if not body then
          if err == "too large" then
            simple(self, sock, 413, "Request body is larger than " .. self.max_body .. " bytes")
          elseif err == "bad chunk" then
            simple(self, sock, 400, "Malformed chunked body")
          end
          break
        end
      end
      local path, query = target:match("^([^?#]*)%??([^#]*)")
      local req = {
        method = method, target = target, path = path, raw_query = query,
        version = version, headers = headers, body = body, peer = peer,
      }
      local ok, res = pcall(self.handler, req)
      if not ok then
        self.log("handler error: " .. tostring(res))
        -- a bug in the mock: say where, so a failing test points at it
        res = { status = 500, body = self.error_body(500, "Internal mock error: " .. tostring(res)) }
      end
      if res.fault and res.fault.close == "before_headers" then break end
      keep = keep and not res.close
      if not write_response(sock, res, keep) then break end
      if not keep then break end
    end
    ::continue::
  end
  sock:close()
end

-- Scheduler ------------------------------------------------------------

function Server:_park(co, what, arg, deadline)
  if what == "r" then
    self.rwait[arg] = co
    self.deadline[arg] = deadline
    self.dirty = true
  elseif what == "w" then
    self.wwait[arg] = co
    self.dirty = true
  elseif what == "s" then
    local sl = self.sleepers
    -- keep sorted by wake time; few sleepers, insertion is fine
    local i = #sl
    while i >= 1 and sl[i][1] > arg do i = i - 1 end
    insert(sl, i + 1, { arg, co })
  end
end

function Server:_resume(co, ...)
  local ok, what, arg, deadline = co_resume(co, ...)
  if not ok then
    self.log("connection error: " .. tostring(what))
    return
  end
  if co_status(co) == "dead" then
    return
  end
  self:_park(co, what, arg, deadline)
end

function Server:_accept()
  while true do
    local c = self.sock:accept()
    if not c then return end
    if self.nconns >= M.MAX_CONNECTIONS then
      -- select() cannot watch more than FD_SETSIZE descriptors
      c:close()
      return
    end
    c:settimeout(0)
    c:setoption("tcp-nodelay", true)
    local peer = c:getpeername()
    local co = co_create(function()
      self.nconns = self.nconns + 1
      self.conns[c] = true
      local ok, err = pcall(self.serve, self, c, peer)
      if not ok then
        self.log("connection error: " .. tostring(err))
        c:close()
      end
      self.conns[c] = nil
      self.nconns = self.nconns - 1
    end)
    self:_resume(co)
  end
end

function Server:stop()
  self.stopping = true
end

--- Run `fn(...)` as a coroutine of this server's loop: it may park with
-- M.wait_read, M.wait_write and M.sleep like a connection does (outgoing
-- requests made while the server keeps serving). Errors are logged.
function Server:spawn(fn, ...)
  local args = table.pack(...)
  local co = co_create(function()
    local ok, err = pcall(fn, table.unpack(args, 1, args.n))
    if not ok then self.log("task error: " .. tostring(err)) end
  end)
  self:_resume(co)
end

--- One turn of the loop: wait up to `timeout` seconds (default 1, capped
-- by the nearest sleeper) for sockets, then resume whatever is ready.
-- Lets a script serve between its own work; run() is step() in a loop.
function Server:step(timeout)
  local rwait, wwait, sleepers = self.rwait, self.wwait, self.sleepers
  if self.dirty then
    local rl, wl = { self.sock }, {}
    for s in pairs(rwait) do rl[#rl + 1] = s end
    for s in pairs(wwait) do wl[#wl + 1] = s end
    self.rlist, self.wlist, self.dirty = rl, wl, false
  end
  local now = gettime()
  timeout = timeout or 1.0
  if sleepers[1] then
    timeout = math.max(0, math.min(timeout, sleepers[1][1] - now))
  end
  local r, w = socket.select(self.rlist, self.wlist, timeout)
  for _, s in ipairs(w) do
    local co = wwait[s]
    if co then
      wwait[s] = nil
      self.dirty = true
      self:_resume(co, true)
    end
  end
  for _, s in ipairs(r) do
    if s == self.sock then
      self:_accept()
    else
      local co = rwait[s]
      if co then
        rwait[s] = nil
        self.deadline[s] = nil
        self.dirty = true
        self:_resume(co, true)
      end
    end
  end
  now = gettime()
  while sleepers[1] and sleepers[1][1] <= now do
    local co = remove(sleepers, 1)[2]
    self:_resume(co, true)
  end
  if now - (self.last_tick or 0) >= 1 then
    self.last_tick = now
    -- expire idle readers
    for s, dl in pairs(self.deadline) do
      if dl and dl <= now then
        local co = rwait[s]
        rwait[s] = nil
        self.deadline[s] = nil
        self.dirty = true
        if co then self:_resume(co, false) end
      end
    end
    if self.on_tick then self.on_tick(now) end
  end
end

--- Close the listening socket and every connection.
function Server:close()
  for c in pairs(self.conns) do c:close() end
  if self.sock then self.sock:close() end
end

--- Run the loop until stop() (or a handler asks to stop), then close.
function Server:run()
  while not self.stopping do self:step(1.0) end
  self:close()
end

return M
