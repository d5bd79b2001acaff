--- HTTP/1.1 server core on LuaSocket: the mock, the transport specs'
-- fixture server and the webhook receiver all run on it.
--
-- One process, one select loop, one coroutine per connection. A coroutine
-- that would block (nothing to read yet, a full send buffer, a deliberate
-- delay) yields to the loop, which resumes it when select says the socket
-- is ready or its wake time has come; the select timeout is the nearest
-- wake, so a parked response never holds up the other connections.
--
-- This file knows the wire (request line, headers, Content-Length and
-- chunked bodies, Expect: 100-continue, keep-alive, HEAD, size limits) and
-- the ways a response can be mangled on purpose (close early, truncate,
-- trickle, or a handler that takes the socket over). What a request means
-- is the handler's business.
--
-- API
--
--    local http = require "instantly.server.http"
--    local srv = http.new{
--      host = "127.0.0.1",     -- default
--      port = 0,               -- 0: the kernel picks; read srv.port after bind()
--      handler = fn(req) -> res,          -- required
--      error_body = fn(status, message) -> string,  -- body of the core's own
--                              -- refusals (400, 413, 431, ...); default: message
--      max_body = 16 MiB,      -- request body cap (413 beyond)
--      max_header = 64 KiB,    -- cap on the request line, on each header line
--                              -- and on the whole header block (414 / 431)
--      idle_timeout = M.IDLE_TIMEOUT,  -- seconds a connection may sit between
--                              -- requests, and a request may take to arrive
--      max_connections = M.MAX_CONNECTIONS,  -- served at once (at most that)
--      on_tick = fn(now),      -- called about once a second
--      log = fn(line),         -- the core's own diagnostics (handler errors)
--      on_close = fn(conn),    -- a connection ended; conn is req.conn
--      default_type = "application/json; charset=utf-8",  -- Content-Type put on
--                              -- a non-empty body that has none; false: none
--    }
--    assert(srv:bind())        -- true, or nil and LuaSocket's message
--    srv:run()                 -- serves until srv:stop() (called from a handler,
--                              -- on_tick or a spawned coroutine)
--
-- req: method, target (as sent), path, raw_query (after "?"), version
-- ("1.1"/"1.0"), headers (lower-case names, repeats joined with ", "),
-- header_bytes (size of the header block), body (string, de-chunked), peer
-- (address), conn (a table unique to the connection, for the handler's own
-- bookkeeping).
--
-- res: status, body (string), headers (a map name -> value, or a list of
-- {name, value} pairs to send repeats in order), close (true: close after
-- this response), fault, takeover (below).
--
-- Faults, for specs that attack a client's transport (res.fault, one at a
-- time; each but trickle ends the connection after it):
--   close = "before_headers"  close without writing anything
--   close = "after_headers"   the head, then close (no body)
--   truncate = true           the head, then half the body, then close
--   length = n                announce Content-Length n whatever the body is
--                             (more: a body cut short; less: extra bytes)
--   raw = bytes               these bytes instead of a response (not HTTP)
--   trickle = seconds         the whole response in about 20 pieces spread
--                             over that time
-- A handler that must stall first calls M.sleep before returning. Anything
-- else is a takeover = fn(sock, rest) -> keep: the core writes nothing and
-- hands the socket (and `rest`, bytes already read past this request) to
-- the function, which may write anything, stall, or read; it returns true
-- only if it read nothing and the connection may serve another request.
--
-- Helpers for handlers and takeover functions (they park the calling
-- coroutine, so only call them from inside the server): M.sleep(seconds),
-- M.send_all(sock, data), M.receive_some(sock, deadline) -> data | nil, err,
-- srv:spawn(fn, ...) runs fn in a new coroutine under the same loop.
-- srv:step(timeout) runs one turn of the loop (a script serving between its
-- own work); srv:close() closes the sockets (run() does it when stopped).
-- M.REASONS maps status codes to reason phrases.
--
-- Bounds, each attacked by spec/mock_http_spec.lua: lines and the header
-- block are capped (a line without a newline holds at most max_header
-- bytes); chunk sizes are strict hex of at most 15 significant digits
-- (anything else is a 400, never a Lua error); at most max_connections
-- connections, and when the cap is reached the connection idle longest
-- between requests is closed to make room for the new one.
--
-- Closing an idle connection (spec/server_http_spec.lua): neither the idle
-- timeout nor the cap closes a connection whose next request is already in
-- its socket buffer (it arrived after the loop's last select()); that
-- request is served. What remains is the instant a client sends as the
-- close goes out, which a client avoids by retiring idle connections
-- sooner than the server does: hence IDLE_TIMEOUT above libcurl's 118 s.
-- @module instantly.server.http

local socket = require "socket"

local co_create, co_resume, co_yield, co_status =
  coroutine.create, coroutine.resume, coroutine.yield, coroutine.status
local concat, insert, remove = table.concat, table.insert, table.remove
local gettime = socket.gettime
local tonumber, tostring, pairs, ipairs, type = tonumber, tostring, pairs, ipairs, type
local find, sub, match, lower = string.find, string.sub, string.match, string.lower

local M = {}

M.REASONS = {
  [100] = "Continue", [200] = "OK", [201] = "Created", [202] = "Accepted",
  [204] = "No Content", [302] = "Found", [304] = "Not Modified",
  [400] = "Bad Request", [401] = "Unauthorized",
  [402] = "Payment Required", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [408] = "Request Timeout", [409] = "Conflict",
  [411] = "Length Required", [413] = "Payload Too Large", [414] = "URI Too Long",
  [415] = "Unsupported Media Type", [417] = "Expectation Failed", [422] = "Unprocessable Entity",
  [429] = "Too Many Requests", [431] = "Request Header Fields Too Large",
  [500] = "Internal Server Error", [501] = "Not Implemented",
  [502] = "Bad Gateway", [503] = "Service Unavailable", [504] = "Gateway Timeout",
  [505] = "HTTP Version Not Supported",
}

--- Connections served at once (select() cannot watch more than
-- FD_SETSIZE descriptors).
M.MAX_CONNECTIONS = 900

--- Default idle_timeout. A client that sends on a keep-alive connection at
-- the moment the server closes it loses the request, and must not resend
-- a POST; libcurl stops reusing a connection idle for 118 s
-- (CURLOPT_MAXAGE_CONN), so a server that waits longer never races it.
M.IDLE_TIMEOUT = 125

local READ_BLOCK = 65536
local MAX_HEADERS = 200

local Server = {}
Server.__index = Server

--- A server, not yet bound. See the file header for the options.
function M.new(opts)
  local self = setmetatable({
    host = opts.host or "127.0.0.1",
    port = opts.port or 0,
    handler = assert(opts.handler, "handler"),
    error_body = opts.error_body or function(_, msg) return msg end,
    max_body = opts.max_body or 16 * 1024 * 1024,
    max_header = opts.max_header or 64 * 1024,
    idle_timeout = opts.idle_timeout or M.IDLE_TIMEOUT,
    max_connections = math.min(opts.max_connections or M.MAX_CONNECTIONS, M.MAX_CONNECTIONS),
    on_tick = opts.on_tick,
    on_close = opts.on_close,
    log = opts.log or function() end,
    default_type = opts.default_type,
    -- scheduler state
    rwait = {}, wwait = {}, deadline = {}, sleepers = {},
    rlist = {}, wlist = {}, dirty = true,
    conns = {}, nconns = 0, idle = {},
    stopping = false,
  }, Server)
  if self.default_type == nil then self.default_type = "application/json; charset=utf-8" end
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

--- Park the calling coroutine for `seconds`.
function M.sleep(seconds)
  if seconds and seconds > 0 then co_yield("s", gettime() + seconds) end
end

--- Whatever bytes the peer has sent (waiting for some until `deadline`);
-- nil and "closed" / "timeout" otherwise.
function M.receive_some(sock, deadline)
  while true do
    local data, err, part = sock:receive(READ_BLOCK)
    data = data or part
    if data and #data > 0 then return data end
    if err ~= "timeout" then return nil, err end
    if not wait_read(sock, deadline) then return nil, "timeout" end
  end
end
local receive_some = M.receive_some

--- Send all of `data` (from index i), parking while the buffer is full.
function M.send_all(sock, data, i)
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
local send_all = M.send_all

-- Buffered reading ----------------------------------------------------
-- The connection keeps what it has read in `buf` from `pos` on, so a line
-- is bounded by what we accept, not by what the peer sends before a
-- newline.

local Reader = {}
Reader.__index = Reader

local function reader(sock)
  return setmetatable({ sock = sock, buf = "", pos = 1 }, Reader)
end

function Reader:fill(deadline)
  local data, err = receive_some(self.sock, deadline)
  if not data then return nil, err end
  local buf, pos = self.buf, self.pos
  self.buf = (pos > #buf) and data or (sub(buf, pos) .. data)
  self.pos = 1
  return true
end

-- One line without its CR LF; nil and "too long" past `limit` bytes.
function Reader:line(limit, deadline)
  while true do
    local buf, pos = self.buf, self.pos
    local nl = find(buf, "\n", pos, true)
    if nl then
      self.pos = nl + 1
      local stop = (nl > pos and sub(buf, nl - 1, nl - 1) == "\r") and nl - 2 or nl - 1
      if stop - pos + 1 > limit then return nil, "too long" end
      return sub(buf, pos, stop)
    end
    if #buf - pos > limit then return nil, "too long" end -- room for the CR
    local ok, err = self:fill(deadline)
    if not ok then return nil, err end
  end
end

-- Exactly n bytes.
function Reader:bytes(n, deadline)
  local buf, pos = self.buf, self.pos
  local have = #buf - pos + 1
  if have >= n then
    self.pos = pos + n
    return sub(buf, pos, pos + n - 1)
  end
  local parts = { sub(buf, pos) }
  self.buf, self.pos = "", 1
  while have < n do
    local data, err = receive_some(self.sock, deadline)
    if not data then return nil, err end
    have = have + #data
    parts[#parts + 1] = data
  end
  local all = concat(parts)
  if have > n then
    self.buf = sub(all, n + 1)
    return sub(all, 1, n)
  end
  return all
end

function Reader:rest()
  return sub(self.buf, self.pos)
end

-- Request parsing -----------------------------------------------------
-- Each returns nil, status, message on a request the core refuses.

local function read_headers(self, rd, deadline)
  local headers, count, budget = {}, 0, self.max_header
  while true do
    local line, err = rd:line(budget, deadline)
    if not line then
      if err == "too long" then return nil, 431, "Request headers too large" end
      return nil
    end
    if line == "" then return headers, self.max_header - budget end
    budget = budget - #line - 2
    count = count + 1
    if budget < 0 or count > MAX_HEADERS then return nil, 431, "Request headers too large" end
    local name, value = match(line, "^([^%s:]+):[ \t]*(.-)[ \t]*$")
    if not name then return nil, 400, "Malformed header line" end
    name = lower(name)
    local old = headers[name]
    headers[name] = old and (old .. ", " .. value) or value
  end
end

-- A chunk-size line: strict hex, optional extensions after ";". More than
-- 15 significant digits cannot be a size we would accept, and would wrap
-- in a Lua integer, so it is refused as malformed before any arithmetic.
local function chunk_size(line)
  local hex, rest = match(line, "^(%x+)(.*)$")
  if not hex or not (rest == "" or match(rest, "^[ \t]*;")) then return nil end
  hex = match(hex, "^0*(.*)$")
  if #hex > 15 then return nil end
  return hex == "" and 0 or tonumber(hex, 16)
end

local function read_chunked(self, rd, deadline)
  local parts, total = {}, 0
  while true do
    local line = rd:line(1024, deadline)
    if not line then return nil, 400, "Malformed chunked body" end
    local size = chunk_size(line)
    if not size then return nil, 400, "Malformed chunk size" end
    if size == 0 then
      -- trailers, up to the empty line, within the header budget
      local budget = self.max_header
      repeat
        line = rd:line(budget, deadline)
        if not line then return nil, 431, "Request trailers too large" end
        budget = budget - #line - 2
      until line == ""
      return concat(parts)
    end
    total = total + size
    if total > self.max_body then
      return nil, 413, "Request body is larger than " .. self.max_body .. " bytes"
    end
    local data = rd:bytes(size, deadline)
    if not data then return nil end
    parts[#parts + 1] = data
    if rd:line(0, deadline) ~= "" then return nil, 400, "Malformed chunked body" end
  end
end

-- The body announced by the headers; "" when there is none.
local function read_body(self, rd, sock, headers, deadline)
  local te, cl = headers["transfer-encoding"], headers["content-length"]
  if te and cl then return nil, 400, "Both Transfer-Encoding and Content-Length" end
  local expect = headers["expect"]
  if expect and lower(expect) ~= "100-continue" then return nil, 417, "Unsupported Expect header" end
  if cl then
    local n = match(cl, "^%d+$") and tonumber(cl)
    if not n then return nil, 400, "Invalid Content-Length" end
    if n > self.max_body then
      return nil, 413, "Request body is larger than " .. self.max_body .. " bytes"
    end
    if n == 0 then return "" end
    if expect then send_all(sock, "HTTP/1.1 100 Continue\r\n\r\n") end
    return rd:bytes(n, deadline)
  elseif te then
    if lower(te) ~= "chunked" then return nil, 501, "Unsupported Transfer-Encoding" end
    if expect then send_all(sock, "HTTP/1.1 100 Continue\r\n\r\n") end
    return read_chunked(self, rd, deadline)
  end
  return ""
end

-- Response writing ----------------------------------------------------

local function status_line(status)
  return "HTTP/1.1 " .. status .. " " .. (M.REASONS[status] or "Status") .. "\r\n"
end

local function no_body(status)
  return status < 200 or status == 204 or status == 304
end

-- Serialise the head of a response; `length` is the Content-Length put on
-- the wire (a truncation fault announces more than it sends).
local function head(self, res, length, keep)
  local h = { status_line(res.status) }
  local hdrs = res.headers
  local has_ct = false
  if hdrs then
    if hdrs[1] then
      for _, pair in ipairs(hdrs) do
        if lower(pair[1]) == "content-type" then has_ct = true end
        h[#h + 1] = pair[1] .. ": " .. tostring(pair[2]) .. "\r\n"
      end
    else
      for k, v in pairs(hdrs) do
        if lower(k) == "content-type" then has_ct = true end
        h[#h + 1] = k .. ": " .. tostring(v) .. "\r\n"
      end
    end
  end
  if not has_ct and length > 0 and self.default_type then
    h[#h + 1] = "Content-Type: " .. self.default_type .. "\r\n"
  end
  if not no_body(res.status) then
    h[#h + 1] = "Content-Length: " .. length .. "\r\n"
  end
  h[#h + 1] = keep and "Connection: keep-alive\r\n" or "Connection: close\r\n"
  h[#h + 1] = "\r\n"
  return concat(h)
end

local function write_trickle(self, sock, res, body, keep, seconds)
  local data = head(self, res, #body, keep) .. body
  local pieces = math.max(2, math.min(20, #data))
  local step = math.ceil(#data / pieces)
  local pause = seconds / pieces
  for i = 1, #data, step do
    if not send_all(sock, sub(data, i, i + step - 1)) then return false end
    M.sleep(pause)
  end
  return keep
end

-- Write a response; returns true when the connection may be reused.
-- `bodyless` is a HEAD request: the head announces the body's length but
-- the body is not sent.
local function write_response(self, sock, res, keep, bodyless)
  local body = res.body or ""
  local fault = res.fault
  if fault and fault.close == "before_headers" then return false end
  if fault and fault.truncate then
    send_all(sock, head(self, res, #body, false) .. sub(body, 1, #body // 2))
    return false
  end
  if fault and fault.close == "after_headers" then
    send_all(sock, head(self, res, #body, false))
    return false
  end
  if fault and fault.length then
    send_all(sock, head(self, res, fault.length, false) .. body)
    return false
  end
  if fault and fault.raw then
    send_all(sock, fault.raw)
    return false
  end
  local length = #body
  if bodyless or no_body(res.status) then body = "" end
  if fault and fault.trickle and fault.trickle > 0 then
    return write_trickle(self, sock, res, body, keep, fault.trickle)
  end
  if not send_all(sock, head(self, res, length, keep) .. body) then return false end
  return keep
end

-- After a refusal the peer may still be sending what we will not read;
-- closing on unread data makes the kernel send a reset, which can destroy
-- our answer in flight. Half-close, then drain a bounded amount for a
-- bounded time (RFC 9112 9.6 "lingering close").
local LINGER_BYTES, LINGER_SECONDS = 4 * 1024 * 1024, 2

local function linger(sock)
  sock:shutdown("send")
  local deadline, left = gettime() + LINGER_SECONDS, LINGER_BYTES
  while left > 0 do
    local data = receive_some(sock, deadline)
    if not data then return end
    left = left - #data
  end
end

local function refuse(self, sock, status, message)
  if not status then return end
  local body = self.error_body(status, message)
  write_response(self, sock, { status = status, body = body }, false)
  linger(sock)
end

-- One request -----------------------------------------------------------

-- Wait between requests for the first bytes of the next one; false when
-- the peer closed or stayed idle past idle_timeout. Only this wait counts
-- as idle: the idle sweep and the connection cap look at self.idle.
function Server:_await(sock, rd)
  if rd.pos <= #rd.buf then return true end
  self.idle[sock] = gettime()
  local ok = rd:fill(gettime() + self.idle_timeout)
  self.idle[sock] = nil
  return ok
end

-- Reads one request; returns req and keep, or nil (after answering any
-- refusal) when the connection must end.
function Server:read_request(sock, rd, conn)
  local line
  repeat -- tolerate stray CRLF between requests (RFC 9112 2.2)
    if not self:_await(sock, rd) then return nil end
    local err
    line, err = rd:line(self.max_header, gettime() + self.idle_timeout)
    if not line then
      if err == "too long" then refuse(self, sock, 414, "Request line too long") end
      return nil
    end
  until line ~= ""
  local deadline = gettime() + self.idle_timeout
  local method, target, version = match(line, "^(%u+) (%S+) HTTP/(%d%.%d)$")
  if not method then return refuse(self, sock, 400, "Malformed request line") end
  if version ~= "1.1" and version ~= "1.0" then
    return refuse(self, sock, 505, "HTTP version not supported")
  end
  local headers, status, message = read_headers(self, rd, deadline)
  if not headers then return refuse(self, sock, status, message) end
  local header_bytes = status
  local body
  body, status, message = read_body(self, rd, sock, headers, deadline)
  if not body then return refuse(self, sock, status, message) end
  local conn_hdr = lower(headers["connection"] or "")
  local keep
  if version == "1.1" then
    keep = not find(conn_hdr, "close", 1, true)
  else
    keep = find(conn_hdr, "keep-alive", 1, true) ~= nil
  end
  local path, query = match(target, "^([^?#]*)%??([^#]*)")
  return {
    method = method, target = target, path = path, raw_query = query,
    version = version, headers = headers, header_bytes = header_bytes, body = body,
    peer = conn.peer, conn = conn,
  }, keep
end

function Server:call_handler(req)
  local ok, res = pcall(self.handler, req)
  if ok and type(res) == "table" then return res end
  self.log("handler error: " .. tostring(res))
  -- a bug in the handler: say where, so a failing test points at it
  return { status = 500, body = self.error_body(500, "Internal server error: " .. tostring(res)) }
end

-- One connection: requests in a loop while keep-alive holds.
function Server:serve(sock, conn)
  local rd = reader(sock)
  while not self.stopping do
    local req, keep = self:read_request(sock, rd, conn)
    if not req then break end
    local res = self:call_handler(req)
    keep = keep and not res.close and not self.stopping
    if res.takeover then
      keep = res.takeover(sock, rd:rest()) and keep
      rd = reader(sock)
    else
      keep = write_response(self, sock, res, keep, req.method == "HEAD")
    end
    if not keep then break end
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

-- Wake a coroutine parked reading `s` with a failed read (timeout or
-- eviction): it sees "timeout" and ends its connection.
function Server:_expire(s)
  local co = self.rwait[s]
  self.rwait[s] = nil
  self.deadline[s] = nil
  self.dirty = true
  if co then self:_resume(co, false) end
end

--- Run fn(...) in a new coroutine under this server's loop.
function Server:spawn(fn, ...)
  self:_resume(co_create(fn), ...)
end

-- The idle sockets in `list` whose next request has already arrived (the
-- loop's select() ran before its bytes did); one select() for all.
local function arrived(list)
  if not list[1] then return {} end
  local ready = socket.select(list, nil, 0)
  for _, s in ipairs(ready) do ready[s] = true end
  return ready
end

-- At the cap, make room by closing the connection that has waited longest
-- for its next request; a connection mid-request, or whose next request
-- is already in its buffer, is never evicted.
function Server:_evict_idle()
  local list = {}
  for s in pairs(self.idle) do list[#list + 1] = s end
  local busy = arrived(list)
  local oldest, since
  for s, t in pairs(self.idle) do
    if not busy[s] and (not since or t < since) then oldest, since = s, t end
  end
  if not oldest then return false end
  self.idle[oldest] = nil
  self:_expire(oldest)
  return true
end

function Server:_connection(c)
  local conn = { peer = c:getpeername() }
  self.nconns = self.nconns + 1
  self.conns[c] = true
  local ok, err = pcall(self.serve, self, c, conn)
  if not ok then
    self.log("connection error: " .. tostring(err))
    c:close()
  end
  self.idle[c] = nil
  self.conns[c] = nil
  self.nconns = self.nconns - 1
  if self.on_close then self.on_close(conn) end
end

function Server:_accept()
  while true do
    local c = self.sock:accept()
    if not c then return end
    if self.nconns >= self.max_connections and not self:_evict_idle() then
      c:close()
    else
      c:settimeout(0)
      c:setoption("tcp-nodelay", true)
      self:spawn(self._connection, self, c)
    end
  end
end

function Server:stop()
  self.stopping = true
end

function Server:_select_lists()
  local rl, wl = { self.sock }, {}
  for s in pairs(self.rwait) do rl[#rl + 1] = s end
  for s in pairs(self.wwait) do wl[#wl + 1] = s end
  self.rlist, self.wlist, self.dirty = rl, wl, false
end

function Server:_wake_ready(r, w)
  local rwait, wwait = self.rwait, self.wwait
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
end

-- Expire the reads past their deadline. An idle connection whose next
-- request arrived after this turn's select() is woken to serve it instead:
-- closing it would drop a request the client has already sent.
function Server:_tick(now)
  local due, idle = {}, {}
  for s, dl in pairs(self.deadline) do
    if dl and dl <= now then
      due[#due + 1] = s
      if self.idle[s] then idle[#idle + 1] = s end
    end
  end
  local ready = arrived(idle)
  for _, s in ipairs(due) do
    if ready[s] then
      local co = self.rwait[s]
      self.rwait[s], self.deadline[s], self.dirty = nil, nil, true
      if co then self:_resume(co, true) end
    else
      self:_expire(s)
    end
  end
  if self.on_tick then self.on_tick(now) end
end

--- One turn of the loop: wait up to `timeout` seconds (default 1, capped
-- by the nearest sleeper) for ready sockets, then resume what is ready.
-- A script that serves between its own work calls this; run() is step()
-- in a loop.
function Server:step(timeout)
  local sleepers = self.sleepers
  if self.dirty then self:_select_lists() end
  timeout = timeout or 1.0
  if sleepers[1] then
    timeout = math.max(0, math.min(timeout, sleepers[1][1] - gettime()))
  end
  local r, w = socket.select(self.rlist, self.wlist, timeout)
  self:_wake_ready(r, w)
  local now = gettime()
  while sleepers[1] and sleepers[1][1] <= now do
    self:_resume(remove(sleepers, 1)[2], true)
  end
  if now - (self.last_tick or 0) >= 1 then
    self.last_tick = now
    self:_tick(now)
  end
end

--- Close every connection and the listening socket (idempotent).
function Server:close()
  for c in pairs(self.conns) do c:close() end
  if self.sock then self.sock:close() end
end

--- Run the loop until stop(), then close.
function Server:run()
  while not self.stopping do self:step(1.0) end
  self:close()
end

return M
