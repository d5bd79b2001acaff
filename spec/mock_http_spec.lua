-- instantly-mock on the wire: HTTP/1.1 details, faults, rate limits and
-- many concurrent keep-alive connections with delayed responses.

local socket = require "socket"
local mock = require "instantly.mock"
local client = require "instantly.mock.client"
local mock_fixture = require "support.mock_fixture"
local json = require "instantly.mock.json"
local ratelimit = require "instantly.mock.ratelimit"

local read_response = client.read_response

local function connect(srv)
  local s = socket.tcp()
  s:settimeout(10)
  assert(s:connect("127.0.0.1", srv.port))
  return s
end

local function head(srv, method, path, extra)
  return method .. " /api/v2" .. path .. " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
    .. srv.api_key .. "\r\n" .. (extra or "")
end

describe("instantly-mock HTTP/1.1", function()
  local srv

  setup(function()
    srv = assert(mock.start{ seed = 2, rate_limits = false, max_body = 4096 })
  end)

  teardown(function() srv:stop() end)

  before_each(function() srv:reset() end)

  it("keeps connections alive and answers pipelined requests in order", function()
    local s = connect(srv)
    local r = head(srv, "GET", "/campaigns/count-launched") .. "\r\n"
    local w = head(srv, "GET", "/workspaces/current") .. "\r\n"
    assert(s:send(r .. w .. r))
    local st1, h1, b1 = read_response(s)
    local st2, _, b2 = read_response(s)
    local st3, _, b3 = read_response(s)
    assert.are.same({ 200, 200, 200 }, { st1, st2, st3 })
    assert.are.equal("keep-alive", h1["connection"])
    assert.is_number(json.decode(b1).count)
    assert.is_string(json.decode(b2).name)
    assert.are.equal(b1, b3)
    s:close()
  end)

  it("closes HTTP/1.0 connections and on Connection: close", function()
    local s = connect(srv)
    assert(s:send("GET /api/v2/workspaces/current HTTP/1.0\r\nAuthorization: Bearer " .. srv.api_key .. "\r\n\r\n"))
    local status, h = read_response(s)
    assert.are.equal(200, status)
    assert.are.equal("close", h["connection"])
    local _, err = s:receive(1)
    assert.are.equal("closed", err)
    s:close()
    s = connect(srv)
    assert(s:send(head(srv, "GET", "/workspaces/current", "Connection: close\r\n") .. "\r\n"))
    status, h = read_response(s)
    assert.are.equal(200, status)
    assert.are.equal("close", h["connection"])
    s:close()
  end)

  it("answers Expect: 100-continue before reading the body", function()
    local s = connect(srv)
    local body = '{"name":"Expect list"}'
    assert(s:send(head(srv, "POST", "/lead-lists", "Content-Type: application/json\r\nExpect: 100-continue\r\n"
      .. "Content-Length: " .. #body .. "\r\n") .. "\r\n"))
    assert.are.equal("HTTP/1.1 100 Continue", s:receive("*l"))
    assert.are.equal("", s:receive("*l"))
    assert(s:send(body))
    local status, _, b = read_response(s)
    assert.are.equal(200, status)
    assert.are.equal("Expect list", json.decode(b).name)
    s:close()
  end)

  it("reads chunked request bodies", function()
    local s = connect(srv)
    local p1, p2 = '{"name":"Chun', 'ked list"}'
    assert(s:send(head(srv, "POST", "/lead-lists", "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n")
      .. "\r\n" .. string.format("%x\r\n%s\r\n%x;ext=1\r\n%s\r\n0\r\n\r\n", #p1, p1, #p2, p2)))
    local status, _, b = read_response(s)
    assert.are.equal(200, status)
    assert.are.equal("Chunked list", json.decode(b).name)
    local log = srv:requests()
    assert.are.equal("Chunked list", log[#log].body.name)
    s:close()
  end)

  it("answers 413 for bodies over the limit, before reading them", function()
    local s = connect(srv)
    assert(s:send(head(srv, "POST", "/lead-lists", "Content-Type: application/json\r\nExpect: 100-continue\r\n"
      .. "Content-Length: 100000\r\n") .. "\r\n"))
    local status, h, b = read_response(s)
    assert.are.equal(413, status)
    assert.are.equal("close", h["connection"])
    assert.are.equal(413, json.decode(b).statusCode)
    s:close()
    s = connect(srv)
    local big = string.rep("a", 5000)
    assert(s:send(head(srv, "POST", "/lead-lists", "Transfer-Encoding: chunked\r\n") .. "\r\n"
      .. string.format("%x\r\n%s\r\n0\r\n\r\n", #big, big)))
    assert.are.equal(413, (read_response(s)))
    s:close()
  end)

  local bad = {
    { "garbage line", "NOT A REQUEST\r\n\r\n", 400 },
    { "lower-case method", "get /api/v2/campaigns HTTP/1.1\r\n\r\n", 400 },
    { "header without colon", "GET /api/v2/campaigns HTTP/1.1\r\nBroken header\r\n\r\n", 400 },
    { "bad Content-Length", "POST /api/v2/lead-lists HTTP/1.1\r\nContent-Length: 12x\r\n\r\n", 400 },
    { "both lengths",
      "POST /api/v2/lead-lists HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", 400 },
    { "HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505 },
    { "unknown transfer coding", "POST /api/v2/lead-lists HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501 },
    -- chunk sizes that are not hex, or wrap a 64-bit integer (2^64 -> 0)
    { "chunk size ZZ", "POST /api/v2/lead-lists HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n", 400 },
    { "chunk size 2^64-1",
      "POST /api/v2/lead-lists HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\n", 400 },
    { "chunk size 2^64",
      "POST /api/v2/lead-lists HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\nx\r\n", 400 },
    { "chunk size with a sign", "POST /api/v2/lead-lists HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", 400 },
    { "chunk size with junk after it",
      "POST /api/v2/lead-lists HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5 x\r\nhello\r\n0\r\n\r\n", 400 },
  }
  for _, case in ipairs(bad) do
    it("rejects a malformed request: " .. case[1], function()
      local s = connect(srv)
      assert(s:send(case[2]))
      local status, h, b = read_response(s)
      assert.are.equal(case[3], status)
      assert.are.equal("close", h["connection"])
      assert.are.equal(case[3], json.decode(b).statusCode)
      s:close()
      -- and the server is still fine
      local c = client.new(srv.url, { api_key = srv.api_key })
      assert.are.equal(200, (c:request("GET", "/campaigns/count-launched")))
      c:close()
    end)
  end

  -- A line is bounded by max_header (64 KiB) whether or not a newline ever
  -- comes: 1 MiB without one gets an answer and a close, not a buffer.
  for _, case in ipairs{
    { "request line", function() return "GET /" .. string.rep("a", 1024 * 1024) end, 414 },
    { "header line", function() return head(srv, "GET", "/campaigns") .. "X-Long: " .. string.rep("b", 1024 * 1024) end,
      431 },
  } do
    it("answers " .. case[3] .. " to a " .. case[1] .. " longer than the cap, without its newline", function()
      local s = connect(srv)
      local data = case[2]()
      -- the server stops reading at the cap, so the send may not complete
      s:settimeout(5)
      s:send(data)
      local status, h = read_response(s)
      assert.are.equal(case[3], status)
      assert.are.equal("close", h["connection"])
      s:close()
      local c = client.new(srv.url, { api_key = srv.api_key })
      assert.are.equal(200, (c:request("GET", "/campaigns/count-launched")))
      c:close()
    end)
  end

  it("logs an unauthenticated request without its body", function()
    local c = client.new(srv.url, { api_key = "not-a-key" })
    local status = c:request("POST", "/lead-lists", { body = { name = string.rep("n", 3000) } })
    assert.are.equal(401, status)
    c:close()
    local e = srv:requests()[1]
    assert.is_nil(e.body)
    assert.are.equal("unauthenticated", e.body_omitted)
    assert.is_true(e.body_bytes > 3000)
  end)

  it("answers 431 to oversized headers", function()
    local s = connect(srv)
    local h = head(srv, "GET", "/campaigns") .. ("X-Pad: " .. string.rep("p", 1000) .. "\r\n"):rep(80) .. "\r\n"
    s:send(h)
    assert.are.equal(431, (read_response(s)))
    s:close()
  end)
end)

describe("instantly-mock faults", function()
  local srv, c

  mock_fixture({ seed = 2, rate_limits = false }, function(s, cl) srv, c = s, cl end)

  before_each(function() c:close() end)

  it("answers a status with Retry-After for the next count matches, then recovers", function()
    srv:fault{ method = "GET", path = "/campaigns", status = 503, retry_after = 7, count = 2 }
    assert.are.equal(1, #srv:faults())
    for _ = 1, 2 do
      local status, body, h = c:request("GET", "/campaigns")
      assert.are.equal(503, status)
      assert.are.equal("7", h["retry-after"])
      assert.are.same({ statusCode = 503, error = "Service Unavailable", message = "Injected fault 503" }, body)
    end
    assert.are.equal(200, (c:request("GET", "/campaigns")))
    assert.are.equal(0, #srv:faults())
  end)

  it("matches by method, template, pattern and operation id", function()
    srv:fault{ method = "POST", path = "/campaigns", status = 500 }
    assert.are.equal(200, (c:request("GET", "/campaigns")))
    local camp = select(2, c:request("GET", "/campaigns")).items[1]
    srv:fault{ path = "/campaigns/{id}", status = 502 }
    assert.are.equal(502, (c:request("GET", "/campaigns/" .. camp.id)))
    srv:fault{ pattern = "/api/v2/emails*", status = 429, retry_after = 1 }
    local status, _, h = c:request("GET", "/emails/unread/count")
    assert.are.equal(429, status)
    assert.are.equal("1", h["retry-after"])
    srv:fault{ op = "getWorkspace", status = 500, message = "boom" }
    local st, body = c:request("GET", "/workspaces/current")
    assert.are.equal(500, st)
    assert.are.equal("boom", body.message)
    srv:clear_faults()
    local camp_body = { name = "x", campaign_schedule = { schedules = {} } }
    assert.are.equal(200, (c:request("POST", "/campaigns", { body = camp_body })))
  end)

  it("does not perform an operation answered by a status fault", function()
    local before = #select(2, c:request("GET", "/lead-lists")).items
    srv:fault{ method = "POST", path = "/lead-lists", status = 500 }
    assert.are.equal(500, (c:request("POST", "/lead-lists", { body = { name = "never" } })))
    assert.are.equal(before, #select(2, c:request("GET", "/lead-lists")).items)
    srv:fault{ method = "POST", path = "/lead-lists", status = 502, process = true }
    assert.are.equal(502, (c:request("POST", "/lead-lists", { body = { name = "committed" } })))
    assert.are.equal(before + 1, #select(2, c:request("GET", "/lead-lists")).items)
  end)

  it("closes before the headers", function()
    srv:fault{ path = "/workspaces/current", close = "before_headers" }
    local s = connect(srv)
    s:send(head(srv, "GET", "/workspaces/current") .. "\r\n")
    local line, err = s:receive("*l")
    assert.is_nil(line)
    assert.are.equal("closed", err)
    s:close()
  end)

  it("closes after the headers, which promised a body", function()
    srv:fault{ method = "POST", path = "/lead-lists", close = "after_headers" }
    local s = connect(srv)
    local body = '{"name":"half-done"}'
    s:send(head(srv, "POST", "/lead-lists", "Content-Type: application/json\r\nContent-Length: " .. #body .. "\r\n")
      .. "\r\n" .. body)
    local status, err, head_status, h, part = read_response(s)
    assert.is_nil(status)
    assert.are.equal("closed", err)
    assert.are.equal(200, head_status)
    assert.is_true(tonumber(h["content-length"]) > 0)
    assert.are.equal("", part)
    s:close()
    -- the head arrived, the write happened
    local found = false
    for _, l in ipairs(select(2, c:request("GET", "/lead-lists")).items) do
      if l.name == "half-done" then found = true end
    end
    assert.is_true(found)
  end)

  it("truncates a body below its Content-Length", function()
    srv:fault{ path = "/workspaces/current", truncate = true }
    local s = connect(srv)
    s:send(head(srv, "GET", "/workspaces/current") .. "\r\n")
    local status, err, st, h, part = read_response(s)
    assert.is_nil(status)
    assert.are.equal("closed", err)
    assert.are.equal(200, st)
    assert.is_true(#part > 0)
    assert.is_true(#part < tonumber(h["content-length"]))
    s:close()
  end)

  it("sends invalid JSON", function()
    srv:fault{ path = "/workspaces/current", invalid_json = true }
    local status, body, h, raw = c:request("GET", "/workspaces/current")
    assert.are.equal(200, status)
    assert.truthy(h["content-type"]:find("json", 1, true))
    assert.is_nil(json.decode(raw))
    assert.are.equal(raw, body)
  end)

  it("sends an oversize body of the requested size", function()
    srv:fault{ path = "/workspaces/current", oversize = 300000 }
    local status, body, h, raw = c:request("GET", "/workspaces/current")
    assert.are.equal(200, status)
    assert.are.equal(300000, #raw)
    assert.are.equal("300000", h["content-length"])
    assert.is_string(body.padding)
  end)

  it("trickles a response and still delivers all of it", function()
    srv:fault{ path = "/workspaces/current", trickle = 0.4 }
    local status, body = c:request("GET", "/workspaces/current")
    assert.are.equal(200, status)
    assert.is_string(body.id)
  end)

  it("replaces the body of a processed response", function()
    srv:fault{ path = "/campaigns/count-launched", body = { count = "not a number" } }
    local status, body = c:request("GET", "/campaigns/count-launched")
    assert.are.equal(200, status)
    assert.are.equal("not a number", body.count)
  end)

  it("rejects malformed faults", function()
    assert.has.error(function() srv:fault{ statuss = 500 } end, "mock:fault: unknown option 'statuss'")
    assert.has.error(function() srv:fault{ path = "/x" } end)
    assert.has.error(function() srv:fault{ close = "sometimes" } end)
  end)
end)

describe("instantly-mock rate limits", function()
  it("limits per window exactly (ratelimit windows, synthetic clock)", function()
    local g = ratelimit.group{ { 3, 1 }, { 5, 60 } }
    for i = 1, 3 do assert.is_true((g:admit(100 + i * 0.01))) end
    local ok, wait = g:admit(100.5)
    assert.is_false(ok)
    assert.is_true(wait > 0.5 and wait <= 0.51 + 1e-9)
    assert.is_true((g:admit(101.02)))
    assert.is_true((g:admit(101.5)))
    ok, wait = g:admit(102.5)
    assert.is_false(ok)
    assert.is_true(wait > 57)
  end)

  it("parses the catalog's limit texts", function()
    assert.are.same({ { 20, 60 } }, ratelimit.parse("20/min"))
    assert.are.same({ { 30, 60 }, { 900, 3600 } }, ratelimit.parse("30/min or 900/hour"))
    assert.are.same({ { 75, 60 }, { 150, 60 } }, ratelimit.parse("75/min per workspace + 150/min per IP"))
    assert.are.same({ { 500, 30 * 86400 } }, ratelimit.parse("500/30 days per workspace"))
  end)

  it("answers 429 with Retry-After past an endpoint's limit, and can be switched off", function()
    local srv <close> = assert(mock.start{ seed = 2 })
    local c = client.new(srv.url, { api_key = srv.api_key })
    for i = 1, 20 do
      assert.are.equal(200, (c:request("GET", "/emails", { query = { limit = 1 } })), "request " .. i)
    end
    local status, body, h = c:request("GET", "/emails", { query = { limit = 1 } })
    assert.are.equal(429, status)
    assert.are.equal(429, body.statusCode)
    local wait = tonumber(h["retry-after"])
    assert.is_true(wait >= 1 and wait <= 60)
    -- other endpoints are not affected
    assert.are.equal(200, (c:request("GET", "/campaigns")))
    -- and the control plane never is
    srv:set{ rate_limits = false }
    assert.are.equal(200, (c:request("GET", "/emails", { query = { limit = 1 } })))
    srv:set{ rate_limits = true }
    c:close()
  end)

  it("limits every endpoint together per workspace (per-minute window lowered to 5)", function()
    local srv <close> = assert(mock.start{ seed = 2, api_keys = { "inst_a", "inst_b" } })
    srv:set{ per_minute = 5 }
    local a = client.new(srv.url, { api_key = "inst_a" })
    local paths = { "/campaigns", "/accounts", "/lead-lists", "/workspaces/current", "/custom-tags" }
    for _, p in ipairs(paths) do assert.are.equal(200, (a:request("GET", p)), p) end
    local status, body, h = a:request("GET", "/webhooks")
    assert.are.equal(429, status)
    assert.truthy(body.message:find("Too many requests", 1, true))
    assert.is_true(tonumber(h["retry-after"]) >= 1)
    -- the limits are per workspace: another key of the same workspace
    -- shares them, a sub-workspace has its own; rejected requests are
    -- still logged
    local b = client.new(srv.url, { api_key = "inst_b" })
    assert.are.equal(429, (b:request("GET", "/webhooks")))
    local child = srv:state().sub_workspaces[1].id
    assert.are.equal(200, (b:request("GET", "/webhooks", { headers = { ["x-as-workspace"] = child } })))
    assert.are.equal(8, #srv:requests())
    assert.has.error(function() srv:set{ per_minute = 0 } end)
    a:close()
    b:close()
  end)

  it("applies the 10/min limit on test emails", function()
    local srv <close> = assert(mock.start{ seed = 2 })
    local c = client.new(srv.url, { api_key = srv.api_key })
    local acc = select(2, c:request("GET", "/accounts")).items[1]
    local body = { eaccount = acc.email, to_address_email_list = "me@example.com", subject = "s",
      body = { html = "<p>x</p>" } }
    local codes = {}
    for i = 1, 11 do codes[i] = (c:request("POST", "/emails/test", { body = body })) end
    assert.are.same({ 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 429 }, codes)
    c:close()
  end)
end)

describe("instantly-mock concurrency", function()
  it("serves 64 keep-alive connections while some requests are parked", function()
    local srv <close> = assert(mock.start{ seed = 2, rate_limits = false })
    local N, SLOW = 64, 8
    local socks = {}
    for i = 1, N do socks[i] = connect(srv) end
    -- round 1: every connection works
    for i = 1, N do assert(socks[i]:send(head(srv, "GET", "/campaigns/count-launched") .. "\r\n")) end
    for i = 1, N do assert.are.equal(200, (read_response(socks[i]))) end
    srv:clear_requests()
    -- round 2: the first SLOW requests are parked for 5 s, the rest are not
    srv:fault{ path = "/workspaces/current", delay = 5, count = SLOW }
    for i = 1, SLOW do assert(socks[i]:send(head(srv, "GET", "/workspaces/current") .. "\r\n")) end
    -- wait (bounded) until the server has logged the parked requests
    for _ = 1, 200 do
      if #srv:requests() >= SLOW then break end
      socket.sleep(0.01)
    end
    assert.are.equal(SLOW, #srv:requests())
    for i = SLOW + 1, N do
      assert(socks[i]:send(head(srv, "GET", "/campaigns/count-launched", "X-Conn: " .. i .. "\r\n") .. "\r\n"))
    end
    -- collect responses in arrival order
    local order, pending = {}, {}
    for i = 1, N do pending[socks[i]] = i end
    for _ = 1, 1000 do
      if not next(pending) then break end
      local list = {}
      for s in pairs(pending) do list[#list + 1] = s end
      local ready = socket.select(list, nil, 10)
      for _, s in ipairs(ready) do
        local status = read_response(s)
        assert.are.equal(200, status)
        order[#order + 1] = pending[s]
        pending[s] = nil
      end
    end
    assert.are.equal(N, #order)
    -- every fast response arrived before any parked one
    for k = 1, N - SLOW do assert.is_true(order[k] > SLOW, "fast response " .. k .. " came from a parked request") end
    for k = N - SLOW + 1, N do assert.is_true(order[k] <= SLOW) end
    -- the log proves the parked requests were received first
    local log = srv:requests()
    assert.are.equal(N, #log)
    for k = 1, SLOW do assert.are.equal("/api/v2/workspaces/current", log[k].path) end
    for k = SLOW + 1, N do assert.are.equal("/api/v2/campaigns/count-launched", log[k].path) end
    for i = 1, N do socks[i]:close() end
  end)
end)

describe("instantly-mock connection cap", function()
  local function open_idle(srv)
    local s = connect(srv)
    assert(s:send(head(srv, "GET", "/campaigns/count-launched") .. "\r\n"))
    assert.are.equal(200, (read_response(s)))
    return s
  end

  it("closes the longest-idle connection to admit a new client", function()
    local srv <close> = assert(mock.start{ seed = 2, rate_limits = false, max_connections = 4 })
    local idle = {}
    for i = 1, 4 do
      idle[i] = open_idle(srv)
      socket.sleep(0.01) -- distinct idle-since times
    end
    local fresh = open_idle(srv)
    -- the first one was evicted: it reads the close; the others still work
    idle[1]:settimeout(5)
    local data, err = idle[1]:receive(1)
    assert.is_nil(data)
    assert.are.equal("closed", err)
    for i = 3, 4 do
      assert(idle[i]:send(head(srv, "GET", "/campaigns/count-launched") .. "\r\n"))
      assert.are.equal(200, (read_response(idle[i])))
    end
    for _, s in ipairs(idle) do s:close() end
    fresh:close()
  end)

  it("never evicts a connection in the middle of a request", function()
    local srv <close> = assert(mock.start{ seed = 2, rate_limits = false, max_connections = 2 })
    local busy = {}
    for i = 1, 2 do
      busy[i] = connect(srv)
      assert(busy[i]:send(head(srv, "GET", "/campaigns/count-launched"))) -- no blank line yet
    end
    socket.sleep(0.2)
    local extra = connect(srv)
    extra:settimeout(5)
    extra:send(head(srv, "GET", "/campaigns/count-launched") .. "\r\n")
    local status, err = read_response(extra)
    assert.is_nil(status)
    assert.are.equal("closed", err)
    extra:close()
    for _, s in ipairs(busy) do
      assert(s:send("\r\n"))
      assert.are.equal(200, (read_response(s)))
      s:close()
    end
  end)
end)

