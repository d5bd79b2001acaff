-- The server core (instantly.server.http) closing idle keep-alive
-- connections: a request that is already on its way when the idle timeout
-- or the connection cap would close the connection is served, not dropped
-- (a client cannot safely resend a POST that died that way).
--
-- The server runs in this process and is driven one turn at a time with
-- srv:step(), so the order of events is explicit: a handler of another
-- connection writes the late request, which puts its bytes in the server's
-- socket buffer after the turn's select() and before its idle sweep.

local socket = require "socket"
local http = require "instantly.server.http"

local function request(path)
  return "GET " .. path .. " HTTP/1.1\r\nHost: test\r\n\r\n"
end

local function connect(port)
  local c = assert(socket.tcp())
  c:settimeout(5)
  assert(c:connect("127.0.0.1", port))
  return c
end

-- Turn the loop until `c` has a whole response (Content-Length framed);
-- returns status and body, or nil and what the socket said. Bounded.
local function response(srv, c)
  c:settimeout(0)
  local buf = ""
  for _ = 1, 100 do
    srv:step(0.02)
    local data, err, part = c:receive(4096)
    buf = buf .. (data or part or "")
    local status, len, rest = buf:match("^HTTP/1%.1 (%d+) .-\r\nContent%-Length: (%d+)\r\n.-\r\n\r\n(.*)$")
    if status and #rest >= tonumber(len) then return tonumber(status), rest end
    if err and err ~= "timeout" then return nil, err end
  end
  return nil, "no answer"
end

-- A server whose handler answers with the path, and runs `on_request`
-- (set by the test) first.
local function server(opts)
  local s = {}
  opts.handler = function(req)
    if s.on_request then s.on_request(req) end
    return { status = 200, body = req.path, headers = { ["Content-Type"] = "text/plain" } }
  end
  s.srv = http.new(opts)
  assert(s.srv:bind())
  return s
end

describe("server core: idle keep-alive connections", function()
  it("outlive libcurl's connection reuse age by default (CURLOPT_MAXAGE_CONN, 118 s)", function()
    -- A client that reuses a connection the server is closing at that
    -- very moment loses its request; libcurl retires idle connections
    -- after 118 s, so a server that waits longer never races it.
    assert.is_true(http.new{ handler = print }.idle_timeout > 118)
  end)

  it("a request that arrives as the idle timeout expires is served, not dropped", function()
    local s = server{ idle_timeout = 0.05 }
    local srv = s.srv
    local a = connect(srv.port)
    assert(a:send(request("/first")))
    assert.same({ 200, "/first" }, { response(srv, a) })
    local b = connect(srv.port)
    -- past a's idle deadline, and past the once-a-second sweep that expires it
    socket.sleep(1.1)
    s.on_request = function(req)
      if req.path == "/poke" then assert(a:send(request("/late"))) end
    end
    assert(b:send(request("/poke")))
    -- one turn: select() sees b only; b's handler sends a's request; then
    -- the sweep finds a past its deadline with that request unread
    srv:step(1)
    assert.same({ 200, "/late" }, { response(srv, a) })
    assert.same({ 200, "/poke" }, { response(srv, b) })
    a:close()
    b:close()
    srv:close()
  end)

  it("the connection cap does not evict an idle connection whose next request has arrived", function()
    local s = server{ max_connections = 1 }
    local srv = s.srv
    local a = connect(srv.port)
    assert(a:send(request("/first")))
    assert.same({ 200, "/first" }, { response(srv, a) })
    -- a's next request and a new client arrive in the same turn; the
    -- listening socket is looked at first, while a is still idle
    assert(a:send(request("/late")))
    local c = connect(srv.port)
    assert(c:send(request("/new")))
    srv:step(1)
    assert.same({ 200, "/late" }, { response(srv, a) })
    a:close()
    c:close()
    srv:close()
  end)

  it("an idle connection past its timeout with nothing sent is still closed", function()
    local s = server{ idle_timeout = 0.05 }
    local srv = s.srv
    local a = connect(srv.port)
    assert(a:send(request("/first")))
    assert.same({ 200, "/first" }, { response(srv, a) })
    socket.sleep(1.1)
    srv:step(0)
    a:settimeout(1)
    local data, err = a:receive(1)
    assert.is_nil(data)
    assert.equal("closed", err)
    a:close()
    srv:close()
  end)
end)
