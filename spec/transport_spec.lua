-- transport_spec.lua - the HTTP transport of instantly.core (csrc/http.c)
-- against the fixture server in spec/support/http_fixture.lua, which runs
-- as a separate process on 127.0.0.1 and keeps a record of what it saw.
-- Every claim about connections or overlap is checked from that record.
local core = require "instantly.core"
local fixture = require "support.http_fixture"
local cjson = require "cjson"

local MB = 1024 * 1024

describe("transport", function()
  local fx, s

  setup(function()
    fx = fixture.start()
  end)

  teardown(function()
    if fx then fx.stop() end
  end)

  before_each(function()
    s = core.session()
  end)

  after_each(function()
    s:close()
  end)

  local function echo(req)
    req.url = req.url or fx.url("/echo")
    local status, body, headers = s:request(req)
    assert.equal(200, status, tostring(body))
    return cjson.decode(body), headers
  end

  -- Lua may run finalizers at any allocation, and handing a result over
  -- allocates. Each try makes a request with `make(size)` (`size`: bytes
  -- to allocate that pay for a whole cycle of the collector at this
  -- heap, stepmul 1000), arms a finalizer and runs `call(t, req)` on a
  -- fresh session; the finalizer checks that the session refuses to be
  -- used (it is inside a hand-over then: the tries that count), then
  -- calls `fn(t, rec)`. The collector runs incrementally meanwhile: each
  -- try starts after a whole cycle, and the next one starts once 5 % more
  -- is allocated, which only the hand-over does, and runs to its end. At
  -- most 40 tries; in the one that counts, `whole(got, size)` checks what
  -- the call returned (`got`: pcall's results). Returns the finalizer's
  -- record (`rec[1], rec[2]`: pcall's results of fn).
  local function arm(t, fn, rec) -- (no register of the caller keeps the table)
    setmetatable({}, { __gc = function()
      local used, msg = pcall(t.pending, t)
      rec.busy = not used and msg:find("busy handing over a result", 1, true) ~= nil
      if rec.busy then rec[1], rec[2] = pcall(fn, t, rec) end
    end })
  end
  local function in_hand_over(make, call, fn, whole)
    local prev = collectgarbage("incremental", 105, 1000)
    local ok, ran = pcall(function()
      collectgarbage()
      local size = math.max(300000, math.floor(collectgarbage("count") * 512))
      local req = make(size)
      for _ = 1, 40 do
        local t = core.session()
        local rec = {}
        collectgarbage()
        arm(t, fn, rec)
        local got = table.pack(pcall(call, t, req))
        t:close()
        if rec.busy then
          whole(got, size)
          return rec
        end
      end
      error("the finalizer never ran inside a hand-over")
    end)
    collectgarbage(prev)
    if prev == "incremental" then collectgarbage("incremental", 200, 100) end
    if not ok then error(ran, 0) end
    return ran
  end

  describe("request", function()
    it("returns status, body and lower-cased headers", function()
      local status, body, headers = s:request{ url = fx.url("/hello") }
      assert.equal(200, status)
      assert.equal("hello world", body)
      assert.equal("text/plain", headers["content-type"])
      assert.equal("11", headers["content-length"])
      assert.is_nil(headers["Content-Type"])
    end)

    it("joins repeated and folded headers, trims values and keeps empty ones", function()
      local status, _, headers = s:request{ url = fx.url("/headers") }
      assert.equal(200, status)
      assert.equal("one, two", headers["x-repeat"])
      assert.equal("a=1, b=2", headers["set-cookie"])
      assert.equal("Value With Spaces", headers["x-mixed-case"])
      assert.equal("", headers["x-empty"])
      assert.equal("first second", headers["x-folded"])
    end)

    it("answers raw_headers requests with the header block, which parse_headers reads the same way", function()
      local _, _, parsed = s:request{ url = fx.url("/headers") }
      local status, body, raw = s:request{ url = fx.url("/headers"), raw_headers = true }
      assert.equal(200, status)
      assert.equal("headers", body)
      assert.is_string(raw)
      assert.matches("^HTTP/1%.1 200", raw)
      local t = core.parse_headers(raw)
      parsed.date, t.date = nil, nil
      assert.same(parsed, t)
      -- into an existing table; submit/take and poll honour it too
      local into = { keep = "me" }
      assert.equal(into, core.parse_headers(raw, into))
      assert.equal("one, two", into["x-repeat"])
      assert.equal("me", into.keep)
      local id = s:submit{ url = fx.url("/headers"), raw_headers = true }
      local got, st, h
      for _ = 1, 100 do
        local b
        got, st, b, h = s:take(0.1)
        if got then assert.equal("headers", b) end
        if got then break end
      end
      assert.equal(id, got)
      assert.equal(200, st)
      assert.is_string(h)
      -- a block with only a status line, or nothing at all
      assert.same({}, core.parse_headers("HTTP/1.1 204 No Content\r\n\r\n"))
      assert.same({}, core.parse_headers(""))
      assert.has_error(function() core.parse_headers({}) end)
      assert.has_error(function() s:request{ url = fx.url("/headers"), raw_headers = 1 } end,
        "bad argument #1 to 'request' (field 'raw_headers' must be a boolean, got number)")
    end)

    it("returns HTTP errors as data, with an empty body when there is none", function()
      for _, code in ipairs{ 404, 500, 503 } do
        local status, body = s:request{ url = fx.url("/status/" .. code) }
        assert.equal(code, status)
        assert.equal("status " .. code, body)
      end
      local status, body, headers = s:request{ url = fx.url("/status/204") }
      assert.equal(204, status)
      assert.equal("", body)
      assert.is_table(headers)
    end)

    it("sends the default User-Agent and asks for every encoding libcurl decodes", function()
      local got = echo{}
      assert.equal("instantly-lua/" .. core.VERSION .. " libcurl/" .. core.curl_version, got.headers["user-agent"])
      assert.truthy(got.headers["accept-encoding"]:find("gzip", 1, true))
      assert.truthy(got.headers["accept-encoding"]:find("deflate", 1, true))
    end)

    it("lets the session and the request override headers", function()
      s:close()
      s = core.session{ user_agent = "custom-agent/1" }
      local got = echo{ headers = { ["X-Api-Key"] = "k", Accept = "application/json", ["X-Blank"] = "" } }
      assert.equal("custom-agent/1", got.headers["user-agent"])
      assert.equal("k", got.headers["x-api-key"])
      assert.equal("application/json", got.headers["accept"])
      assert.equal("", got.headers["x-blank"])
      got = echo{ headers = { ["User-Agent"] = "per-request/2" } }
      assert.equal("per-request/2", got.headers["user-agent"])
    end)

    it("sends each request's own headers when one connection carries them in turn", function()
      -- The transfer keeps its header list while a request sends the same
      -- lines; every change (a value, a header more or less, the body
      -- headers, the same table edited in place) must reach the server.
      local h = { ["X-A"] = "1", ["X-B"] = "2" }
      local rows = {
        { h = h, want = { ["x-a"] = "1", ["x-b"] = "2" } },
        { h = h, want = { ["x-a"] = "1", ["x-b"] = "2" } },
        { h = { ["X-A"] = "1" }, want = { ["x-a"] = "1", ["x-b"] = false } },
        { h = { ["X-A"] = "1", ["X-B"] = "2", ["X-C"] = "3" }, want = { ["x-c"] = "3" } },
        { h = { ["X-A"] = "one" }, want = { ["x-a"] = "one", ["x-c"] = false } },
        { h = {}, want = { ["x-a"] = false } },
        { h = nil, want = { ["x-a"] = false } },
        { h = { ["Content-Type"] = "application/json" }, body = "{}",
          want = { ["content-type"] = "application/json" } },
        { h = nil, body = "{}", want = { ["content-type"] = false, expect = false } },
        { h = { ["User-Agent"] = "mine/1" }, want = { ["user-agent"] = "mine/1" } },
        { h = nil, want = { ["user-agent"] = "instantly-lua/" .. core.VERSION .. " libcurl/" .. core.curl_version } },
      }
      for i, row in ipairs(rows) do
        local got = echo{ method = row.body and "POST" or "GET", headers = row.h, body = row.body }
        for k, v in pairs(row.want) do
          assert.equal(v or nil, got.headers[k], "request " .. i .. ", header " .. k)
        end
      end
      h["X-B"] = "changed"
      assert.equal("changed", echo{ headers = h }.headers["x-b"])
      h["X-B"] = nil
      assert.is_nil(echo{ headers = h }.headers["x-b"])
    end)

    it("asks for exactly the encodings libcurl decodes, once, unless the request names its own", function()
      -- The core writes the Accept-Encoding line itself (csrc/http.c says
      -- why); it must be the line libcurl would have sent. The curl tool
      -- on the same libcurl sends libcurl's own (--compressed).
      local ae = echo{}.headers["accept-encoding"]
      local seen = {}
      for token in ae:gmatch("[^, ]+") do
        assert.is_nil(seen[token], "sent twice: " .. ae)
        seen[token] = true
        assert.truthy(({ deflate = true, gzip = true, br = true, zstd = true, identity = true })[token], ae)
      end
      -- (outside any sanitizer runtime the suite itself may run under)
      local p = io.popen("env -u LD_PRELOAD curl -V 2>/dev/null")
      local tool = p:read("a") or ""
      p:close()
      if tool:find("libcurl/" .. core.curl_version, 1, true) then
        p = io.popen("env -u LD_PRELOAD curl -s --compressed " .. fx.url("/echo"))
        local out = p:read("a")
        p:close()
        assert.equal(cjson.decode(out).headers["accept-encoding"], ae)
      end
      -- the request's own line replaces it (once, in any case), and what
      -- comes back is still decoded
      assert.equal("identity", echo{ headers = { ["Accept-Encoding"] = "identity" } }.headers["accept-encoding"])
      assert.equal("gzip", echo{ headers = { ["accept-encoding"] = "gzip" } }.headers["accept-encoding"])
      local status, body, headers = s:request{ url = fx.url("/gzip"), headers = { ["ACCEPT-ENCODING"] = "gzip" } }
      assert.equal(200, status)
      assert.equal("gzip", headers["content-encoding"])
      assert.equal(fixture.GZIP_TEXT, body)
      assert.equal(ae, echo{}.headers["accept-encoding"])
    end)

    it("gives each request its own options when one handle carries them in turn", function()
      -- A transfer's easy handle keeps the options of its last request and
      -- is given only those that change: nothing of one request may leak
      -- into the next (method, body, redirects, timeouts, header form).
      local got = echo{ method = "POST", body = '{"a":1}' }
      assert.same({ "POST", 7 }, { got.method, got.body_length })
      got = echo{ method = "GET" }
      assert.same({ "GET", 0 }, { got.method, got.body_length })
      got = echo{ method = "PUT", body = "xyz" }
      assert.same({ "PUT", 3 }, { got.method, got.body_length })
      got = echo{ method = "DELETE" }
      assert.same({ "DELETE", 0 }, { got.method, got.body_length })
      got = echo{ method = "PATCH", body = "{}" }
      assert.same({ "PATCH", 2 }, { got.method, got.body_length })
      got = echo{}
      assert.same({ "GET", 0 }, { got.method, got.body_length })
      local status, body = s:request{ method = "HEAD", url = fx.url("/hello") }
      assert.same({ 200, "" }, { status, body })
      status, body = s:request{ url = fx.url("/hello") }
      assert.same({ 200, "hello world" }, { status, body })
      -- redirects: followed for GET only, whatever came before
      assert.equal(302, (s:request{ method = "POST", body = "{}", url = fx.url("/redirect?to=/hello") }))
      assert.equal(200, (s:request{ url = fx.url("/redirect?to=/hello") }))
      assert.equal(302, (s:request{ method = "DELETE", url = fx.url("/redirect?to=/hello") }))
      -- the URL: a relative redirect resolves against this request's URL,
      -- not the one the handle was given before (/status/echo is no route)
      assert.equal(200, (s:request{ url = fx.url("/redirect?to=/hello") }))
      assert.equal(201, (s:request{ url = fx.url("/status/201") }))
      status, body = s:request{ url = fx.url("/redirect?to=echo") }
      assert.equal(200, status, body)
      assert.equal("/echo", cjson.decode(body).target)
      -- a URL libcurl's parser refuses (the core then hands libcurl the
      -- string alone) fails as libcurl reports it, and the next one works
      local st0, err0 = s:request{ url = "http://[::1/" }
      assert.is_nil(st0)
      assert.equal("internal", err0.kind)
      assert.equal("/echo?after=1", echo{ url = fx.url("/echo?after=1") }.target)
      -- raw_headers one request, a table the next
      local _, _, h = s:request{ url = fx.url("/hello"), raw_headers = true }
      assert.is_string(h)
      _, _, h = s:request{ url = fx.url("/hello") }
      assert.equal("text/plain", h["content-type"])
      -- a shorter timeout takes effect after a longer one, and the
      -- session's comes back when a request names none
      assert.equal(200, (s:request{ url = fx.url("/slow?ms=300"), timeout = 10 }))
      local st, err = s:request{ url = fx.url("/slow?ms=3000"), timeout = 0.2 }
      assert.is_nil(st)
      assert.equal("timeout", err.kind)
      assert.equal(200, (s:request{ url = fx.url("/slow?ms=300") }))
      -- likewise connect_timeout: the 0.2 s limit fires, not the request's
      -- 5 s total (libcurl's message names the time waited)
      assert.equal(200, (s:request{ url = fx.url("/hello"), connect_timeout = 30 }))
      st, err = s:request{ url = "http://127.0.0.1:" .. fx.blackhole_port .. "/", connect_timeout = 0.2, timeout = 5 }
      assert.is_nil(st)
      assert.equal("connect", err.kind)
      assert.truthy(tonumber(err.message:match("after (%d+) m")) < 4000, err.message)
      assert.equal(200, (s:request{ url = fx.url("/hello") }))
    end)

    it("sends each method as given, with and without a body", function()
      local rows = {
        { method = "GET" }, { method = "DELETE" }, { method = "POST" },
        { method = "POST", body = '{"a":1}' }, { method = "PUT", body = "x" },
        { method = "PATCH", body = '{"name":"n"}' }, { method = "DELETE", body = '{"ids":[1]}' },
        { method = "get" },
      }
      for _, row in ipairs(rows) do
        local got = echo{ method = row.method, body = row.body }
        assert.equal(row.method:upper(), got.method)
        assert.equal(row.body and #row.body or 0, got.body_length)
        if row.body then assert.equal(row.body, got.body_head) end
      end
      local status, body, headers = s:request{ method = "HEAD", url = fx.url("/hello") }
      assert.equal(200, status)
      assert.equal("", body)
      assert.equal("11", headers["content-length"])
    end)

    it("sends no form Content-Type and no Expect: 100-continue with a body", function()
      local got = echo{ method = "POST", body = string.rep("x", 2 * MB) }
      assert.is_nil(got.headers["content-type"])
      assert.is_nil(got.headers["expect"])
      assert.equal(2 * MB, got.body_length)
      got = echo{ method = "POST", body = "{}", headers = { ["Content-Type"] = "application/json" } }
      assert.equal("application/json", got.headers["content-type"])
    end)

    it("decodes gzip", function()
      local status, body, headers = s:request{ url = fx.url("/gzip") }
      assert.equal(200, status)
      assert.equal("gzip", headers["content-encoding"])
      assert.is_true(tonumber(headers["x-encoded-length"]) < #fixture.GZIP_TEXT)
      assert.equal(fixture.GZIP_TEXT, body)
    end)

    it("follows redirects for GET only", function()
      local status, body = s:request{ url = fx.url("/redirect?to=/hello") }
      assert.equal(200, status)
      assert.equal("hello world", body)
      local st2, _, headers = s:request{ method = "POST", body = "{}", url = fx.url("/redirect?to=/hello") }
      assert.equal(302, st2)
      assert.equal("/hello", headers["location"])
    end)
  end)

  describe("connections", function()
    it("reuses one connection for a hundred sequential requests", function()
      fx.reset()
      for i = 1, 100 do
        local status = s:request{ url = fx.url(i % 2 == 0 and "/hello" or "/echo"),
          method = i % 3 == 0 and "POST" or "GET", body = i % 3 == 0 and "{}" or nil }
        assert.equal(200, status)
      end
      local rec = fx.stats()
      assert.equal(100, rec.requests)
      assert.equal(1, rec.connections)
    end)

    it("sends a GET again to its own URL when the kept connection drops it", function()
      -- A server that answers one request, takes the next on the same
      -- connection and closes without answering: libcurl sends that GET
      -- again on a new connection, to the URL it holds for the transfer
      -- (which the core must have given it for this request, not kept
      -- from the last one).
      local script = [[
        local socket = require "socket"
        local srv = assert(socket.bind("127.0.0.1", 0))
        local _, port = srv:getsockname()
        io.write(port, "\n")
        io.flush()
        srv:settimeout(10)
        local function target(c)
          c:settimeout(10)
          local line = c:receive("*l")
          repeat local h = c:receive("*l") until not h or h == ""
          return line and line:match("^%u+ (%S+)") or "?"
        end
        local function answer(c, body, close)
          c:send("HTTP/1.1 200 OK\r\nContent-Length: " .. #body .. (close and "\r\nConnection: close" or "")
            .. "\r\n\r\n" .. body)
        end
        local c1 = assert(srv:accept())
        answer(c1, target(c1))
        target(c1)
        c1:close()
        local c2 = assert(srv:accept())
        answer(c2, target(c2), true)
        c2:close()
      ]]
      local p = assert(io.popen((os.getenv("LUA") or "lua5.4") .. " -e " .. ("%q"):format(script), "r"))
      local port = assert(tonumber(p:read("l")))
      local base = "http://127.0.0.1:" .. port
      local st1, b1 = s:request{ url = base .. "/first" }
      local st2, b2 = s:request{ url = base .. "/second" }
      p:close()
      assert.same({ 200, "/first" }, { st1, b1 })
      assert.same({ 200, "/second" }, { st2, b2 })
    end)

    -- A server closes idle connections on its own clock, and a write sent
    -- as the close goes out is lost (and never sent again). So a POST or
    -- PATCH reuses only a connection used moments ago; GET reuses as usual.
    -- libcurl counts idle time in whole seconds: after 1.2 s idle a
    -- connection is "1 s" idle, beyond write_max_idle = 0.
    it("sends a write on a fresh connection once the kept one has been idle past write_max_idle", function()
      local w <close> = core.session { write_max_idle = 0 }
      fx.reset()
      assert.equal(200, (w:request{ method = "POST", body = "{}", url = fx.url("/echo") }))
      assert.equal(200, (w:request{ method = "PATCH", body = "{}", url = fx.url("/echo") }))
      assert.equal(1, fx.stats().connections)        -- used just now: reused
      core.sleep(1.2)
      assert.equal(200, (w:request{ url = fx.url("/hello") }))
      assert.equal(1, fx.stats().connections)        -- a GET reuses it still
      core.sleep(1.2)
      assert.equal(200, (w:request{ method = "POST", body = "{}", url = fx.url("/echo") }))
      assert.equal(2, fx.stats().connections)        -- the write did not
      assert.equal(200, (w:request{ method = "POST", body = "{}", url = fx.url("/echo") }))
      assert.equal(2, fx.stats().connections)
    end)

    it("checks write_max_idle", function()
      for _, bad in ipairs{ -1, 119, 1.5, "2" } do
        local ok, err = pcall(core.session, { write_max_idle = bad })
        assert.is_false(ok)
        assert.matches("write_max_idle", err)
      end
      assert.equal("userdata", type(core.session { write_max_idle = 118 }))
    end)

    it("keeps separate sessions on separate connections", function()
      local other <close> = core.session()
      fx.reset()
      for _ = 1, 5 do
        assert.equal(200, (s:request{ url = fx.url("/hello") }))
        assert.equal(200, (other:request{ url = fx.url("/hello") }))
      end
      assert.equal(2, fx.stats().connections)
    end)
  end)

  describe("bodies of any size", function()
    it("uploads and downloads 10 MB in one exchange", function()
      local parts = {}
      for i = 1, 10 * 1024 do
        local n = tostring(i)
        parts[i] = n .. string.rep(".", 1023 - #n) .. "\n"
      end
      local body = table.concat(parts)
      assert.equal(10 * MB, #body)
      local status, back = s:request{ method = "POST", url = fx.url("/echo?back=1"), body = body }
      assert.equal(200, status)
      assert.equal(#body, #back)
      assert.is_true(body == back)
    end)

    it("downloads 10 MB with and without a Content-Length", function()
      local want = fixture.pattern(10 * MB)
      for _, path in ipairs{ "/bytes?n=", "/chunked?n=" } do
        local status, body = s:request{ url = fx.url(path .. 10 * MB) }
        assert.equal(200, status)
        assert.is_true(body == want, path)
      end
    end)

    it("stops a response over max_response_bytes with too_large, and carries on", function()
      s:close()
      s = core.session{ max_response_bytes = 4096 }
      for _, path in ipairs{ "/bytes?n=5000", "/chunked?n=100000", "/chunked?n=4097" } do
        local status, err = s:request{ url = fx.url(path) }
        assert.is_nil(status, path)
        assert.equal("too_large", err.kind, path)
        assert.truthy(err.message:find("4096", 1, true))
      end
      local status, body = s:request{ url = fx.url("/chunked?n=4096") }
      assert.equal(200, status)
      assert.equal(4096, #body)
    end)
  end)

  describe("failures", function()
    it("returns a timeout when the server is too slow", function()
      local status, err = s:request{ url = fx.url("/slow?ms=5000"), timeout = 0.2 }
      assert.is_nil(status)
      assert.equal("timeout", err.kind)
      assert.equal(28, err.curl_code)
      assert.truthy(tostring(err):match("^timeout error: "))
    end)

    it("returns connect when connecting times out (the request never left)", function()
      local url = "http://127.0.0.1:" .. fx.blackhole_port .. "/hello"
      local status, err = s:request{ url = url, connect_timeout = 0.2 }
      assert.is_nil(status)
      assert.equal("connect", err.kind)
      assert.equal(28, err.curl_code)
      -- a session-wide connect_timeout does the same
      local quick <close> = core.session{ connect_timeout = 0.2 }
      status, err = quick:request{ url = url }
      assert.is_nil(status)
      assert.equal("connect", err.kind)
    end)

    it("returns connect when the connection is refused", function()
      local socket = require "socket"
      local probe = assert(socket.bind("127.0.0.1", 0))
      local _, port = probe:getsockname()
      probe:close()
      local status, err = s:request{ url = "http://127.0.0.1:" .. port .. "/" }
      assert.is_nil(status)
      assert.equal("connect", err.kind)
      assert.equal(7, err.curl_code)
      assert.is_string(err.message)
    end)

    it("returns protocol when the server closes mid-body", function()
      local status, err = s:request{ url = fx.url("/close-mid-body") }
      assert.is_nil(status)
      assert.equal("protocol", err.kind)
      assert.equal(18, err.curl_code)
      -- and the session still works afterwards
      assert.equal(200, (s:request{ url = fx.url("/hello") }))
    end)

    it("returns protocol when the server does not speak HTTP or redirects off HTTP", function()
      local status, err = s:request{ url = fx.url("/garbage") }
      assert.is_nil(status)
      assert.equal("protocol", err.kind)
      status, err = s:request{ url = fx.url("/redirect?to=ftp://127.0.0.1/x") }
      assert.is_nil(status)
      assert.equal("protocol", err.kind)
      assert.equal(1, err.curl_code) -- CURLE_UNSUPPORTED_PROTOCOL
      assert.equal(200, (s:request{ url = fx.url("/hello") }))
    end)

    it("returns tls when the server does not speak TLS", function()
      local status, err = s:request{ url = "https://127.0.0.1:" .. fx.port .. "/hello" }
      assert.is_nil(status)
      assert.equal("tls", err.kind)
    end)
  end)

  describe("concurrency", function()
    local function drain(sess, want)
      local results = {}
      for _ = 1, 200 do
        for _, r in ipairs(sess:poll(0.1)) do results[r.id] = r end
        if sess:pending() == 0 then break end
      end
      local n = 0
      for _ in pairs(results) do n = n + 1 end
      assert.equal(want, n)
      return results
    end

    it("runs submitted transfers at the same time", function()
      fx.reset()
      local ids = {}
      for i = 1, 4 do ids[i] = s:submit{ url = fx.url("/barrier?name=four&n=4") } end
      assert.equal(4, s:pending())
      local results = drain(s, 4)
      for _, id in ipairs(ids) do
        assert.equal(200, results[id].status)
        assert.equal("released 4", results[id].body)
        assert.is_table(results[id].headers)
      end
      local rec = fx.stats()
      assert.equal(4, rec.max_inflight)
      assert.equal(4, rec.connections)
    end)

    it("take hands over one finished transfer at a time as plain values", function()
      fx.reset()
      local ids = {}
      for i = 1, 3 do ids[i] = s:submit{ url = fx.url("/barrier?name=take&n=3") } end
      ids[4] = s:submit{ url = "http://127.0.0.1:" .. fx.blackhole_port .. "/x", connect_timeout = 0.2 }
      ids[5] = s:submit{ method = "POST", url = fx.url("/echo"), body = string.rep("b", 5000) }
      local got, errs = {}, {}
      for _ = 1, 400 do
        local id, status, body, headers = s:take(0.05)
        if id ~= nil then
          if status == nil then
            errs[id] = body
          else
            got[id] = { status = status, body = body, headers = headers }
          end
        end
        if s:pending() == 0 then break end
      end
      assert.equal(0, s:pending())
      for i = 1, 3 do
        assert.equal(200, got[ids[i]].status)
        assert.equal("released 3", got[ids[i]].body)
        assert.is_table(got[ids[i]].headers)
      end
      assert.equal(200, got[ids[5]].status)
      assert.equal("connect", errs[ids[4]].kind)
      -- nothing finished: nothing returned, at once
      assert.equal(0, select("#", s:take()))
      assert.equal(0, select("#", s:take(0.01)))
      -- without a timeout take only hands over what is already finished
      local id6 = s:submit{ url = fx.url("/hello") }
      assert.equal(0, select("#", s:take()))
      local got6
      for _ = 1, 100 do
        got6 = s:take(0.1)
        if got6 then break end
      end
      assert.equal(id6, got6)
      assert.has_error(function() s:take(-1) end)
    end)

    it("wait_sessions waits on several sessions at once", function()
      fx.reset()
      local s2 <close> = core.session()
      local id1 = s:submit{ url = fx.url("/barrier?name=waitall&n=2") }
      local id2 = s2:submit{ url = fx.url("/barrier?name=waitall&n=2") }
      local id3 = s2:submit{ url = fx.url("/slow?ms=300") }
      local got, rounds = {}, 0
      while (s:pending() > 0 or s2:pending() > 0) and rounds < 1000 do
        rounds = rounds + 1
        core.wait_sessions({ s, s2 }, 5)
        for _, sess in ipairs({ s, s2 }) do
          local id, status, body = sess:take(0)
          if id then got[id] = { status, body } end
        end
      end
      -- Both meet at the barrier (so both were in flight), and the loop
      -- slept between rounds instead of spinning: a wait that returned at
      -- once would go round thousands of times during the 300 ms reply.
      assert.same({ 200, "released 2" }, got[id1])
      assert.same({ 200, "released 2" }, got[id2])
      assert.equal(200, got[id3][1])
      assert.is_true(rounds < 200, rounds .. " rounds")
      -- nothing in flight: returns at once; misuse raises
      core.wait_sessions({ s, s2 }, 0)
      assert.has_error(function() core.wait_sessions({ s, {} }, 1) end,
        "bad argument #1 to 'wait_sessions' (item 2 is not a session)")
      assert.has_error(function() core.wait_sessions({ s }, -1) end,
        "bad argument #2 to 'wait_sessions' (timeout must be a non-negative number of seconds)")
      local closed = core.session()
      closed:close()
      assert.has_error(function() core.wait_sessions({ closed }, 1) end,
        "bad argument #1 to 'wait_sessions' (session 1 is closed)")
    end)

    it("queues transfers beyond max_connections", function()
      local capped <close> = core.session{ max_connections = 2 }
      fx.reset()
      local ids = {}
      -- Pairs meet at a barrier: each pair proves two were in flight at
      -- once (without relying on timing), the cap that no more were.
      for i = 1, 6 do ids[i] = capped:submit{ url = fx.url("/barrier?name=pair&n=2") } end
      local results = drain(capped, 6)
      for _, id in ipairs(ids) do
        assert.equal(200, results[id].status)
        assert.equal("released 2", results[id].body)
      end
      local rec = fx.stats()
      assert.equal(6, rec.requests)
      assert.equal(2, rec.max_open)
      assert.equal(2, rec.max_inflight)
    end)

    it("numbers transfers uniquely and reports errors per transfer", function()
      local a = s:submit{ url = fx.url("/hello") }
      local b = s:submit{ url = fx.url("/close-mid-body") }
      local c = s:submit{ url = fx.url("/status/404") }
      assert.is_true(a ~= b and b ~= c and a ~= c)
      local results = drain(s, 3)
      assert.equal("hello world", results[a].body)
      assert.equal("protocol", results[b].err.kind)
      assert.is_nil(results[b].status)
      assert.equal(404, results[c].status)
    end)

    it("keeps a submitted body alive until it is sent", function()
      local id = s:submit{ method = "POST", url = fx.url("/echo"), body = string.rep("ab", 50000) .. "!" }
      collectgarbage()
      collectgarbage()
      local r = drain(s, 1)[id]
      assert.equal(100001, cjson.decode(r.body).body_length)
    end)

    it("polls without waiting when asked to, and with nothing pending", function()
      assert.same({}, s:poll(0))
      assert.same({}, s:poll(5)) -- nothing in flight: returns at once
      local id = s:submit{ url = fx.url("/slow?ms=300") }
      local first = s:poll(0)
      assert.same({}, first)
      assert.equal(1, s:pending())
      assert.equal(200, drain(s, 1)[id].status)
    end)

    it("cancels a transfer so that poll never reports it", function()
      local slow = s:submit{ url = fx.url("/slow?ms=3000") }
      local fast = s:submit{ url = fx.url("/hello") }
      assert.is_true(s:cancel(slow))
      assert.is_false(s:cancel(slow))
      assert.is_false(s:cancel(12345))
      assert.equal(1, s:pending())
      local results = drain(s, 1)
      assert.equal(200, results[fast].status)
      assert.is_nil(results[slow])
    end)

    it("keeps results of submitted transfers that finish during request()", function()
      local id = s:submit{ url = fx.url("/barrier?name=mixed&n=2") }
      local status, body = s:request{ url = fx.url("/barrier?name=mixed&n=2") }
      assert.equal(200, status)
      assert.equal("released 2", body)
      assert.equal(1, s:pending())
      local r = drain(s, 1)[id]
      assert.equal(200, r.status)
    end)
  end)

  describe("dispatch: coroutines resumed by the core", function()
    -- A coroutine that submits `reqs` one after another with `token`,
    -- yielding the token after each submit, and records what it is
    -- resumed with; then does what `finish` says.
    local function submitter(token, reqs, log, finish)
      return coroutine.create(function()
        for i, req in ipairs(reqs) do
          s:submit(req, token)
          local got = table.pack(coroutine.yield(token))
          log[#log + 1] = { i = i, n = got.n, status = got[1], body = got[2], headers = got[3] }
        end
        if finish then return finish() end
      end)
    end

    -- dispatch with a timeout until nothing of `token` is pending; returns
    -- the coroutines that stopped it, with what they returned.
    local function run(token, stops)
      stops = stops or {}
      for _ = 1, 400 do
        local got = table.pack(s:dispatch(token, 0.05))
        if got[2] ~= nil then stops[#stops + 1] = got end
        if got[1] == 0 then return stops end
      end
      error("dispatch never drained")
    end

    it("resumes the submitting coroutine with what take returns after the id", function()
      fx.reset()
      local token = {}
      local logs, cos = {}, {}
      for i = 1, 3 do
        logs[i] = {}
        cos[i] = submitter(token, {
          { url = fx.url("/barrier?name=disp&n=3"), raw_headers = true },
          { method = "POST", url = fx.url("/echo"), body = string.rep("x", 1000 * i) },
          { url = "http://127.0.0.1:" .. fx.blackhole_port .. "/x", connect_timeout = 0.2 },
        }, logs[i])
        assert.is_true(coroutine.resume(cos[i]))
      end
      collectgarbage() -- the coroutines are held by the session alone
      assert.equal(3, s:pending())
      -- each returns after its third answer: a return stops the loop
      local stops = run(token)
      assert.equal(3, #stops)
      for _, st in ipairs(stops) do
        assert.equal(3, st.n)
        assert.is_true(st[3])
      end
      assert.equal(0, s:pending())
      for i = 1, 3 do
        local log = logs[i]
        assert.equal(3, #log)
        assert.same({ 1, 3, 200, "released 3" }, { log[1].i, log[1].n, log[1].status, log[1].body })
        assert.is_string(log[1].headers) -- raw_headers honoured
        assert.equal(200, log[2].status)
        assert.equal(1000 * i, cjson.decode(log[2].body).body_length)
        assert.is_table(log[2].headers)
        -- a transport failure: nil, err
        assert.equal(2, log[3].n)
        assert.is_nil(log[3].status)
        assert.equal("connect", log[3].body.kind)
        assert.equal("dead", coroutine.status(cos[i]))
      end
      -- nothing of ours pending: at once, without waiting
      assert.same({ 0 }, { s:dispatch(token, 5) })
    end)

    it("hands over every transfer finished by the time it is called, without running any", function()
      fx.reset()
      local token, log = {}, {}
      local function wait() return coroutine.yield(token) end -- (goes on)
      for _ = 1, 3 do
        assert.is_true(coroutine.resume(submitter(token, { { url = fx.url("/barrier?name=many&n=4") } }, log, wait)))
      end
      -- The fourth at the barrier releases all four; the blocking
      -- requests run the others meanwhile (a request drives every
      -- transfer of its session).
      local status, body = s:request{ url = fx.url("/barrier?name=many&n=4") }
      assert.same({ 200, "released 4" }, { status, body })
      assert.equal(200, (s:request{ url = fx.url("/slow?ms=300") }))
      assert.same({ 0 }, { s:dispatch(token) })
      assert.equal(3, #log)
      for _, r in ipairs(log) do assert.same({ 200, "released 4" }, { r.status, r.body }) end
      -- without a timeout, dispatch runs nothing
      local later = {}
      assert.is_true(coroutine.resume(submitter(token, { { url = fx.url("/hello") } }, later, wait)))
      assert.same({ 1 }, { s:dispatch(token) })
      assert.same({}, later)
      run(token)
      assert.equal("hello world", later[1].body)
    end)

    it("goes on while coroutines yield exactly the token and hands back any other", function()
      local token = {}
      local logs = { {}, {}, {}, {} }
      local returns = submitter(token, { { url = fx.url("/hello") } }, logs[1], function() return "all", "done" end)
      local raises = submitter(token, { { url = fx.url("/hello") } }, logs[2], function() error({ code = 7 }) end)
      local more = submitter(token, { { url = fx.url("/hello") } }, logs[3], function()
        return coroutine.yield(token, "and more")
      end)
      local other = submitter(token, { { url = fx.url("/hello") } }, logs[4], function()
        return coroutine.yield("not the token")
      end)
      local chained = submitter(token, { { url = fx.url("/hello") }, { url = fx.url("/status/404") } }, {})
      for _, co in ipairs { returns, raises, more, other, chained } do assert.is_true(coroutine.resume(co)) end
      local stops = run(token)
      local by = {}
      for _, st in ipairs(stops) do by[st[2]] = st end
      assert.equal(5, #stops)
      assert.same({ true, "all", "done" }, { by[returns][3], by[returns][4], by[returns][5] })
      assert.equal(5, by[returns].n)
      assert.same({ false, { code = 7 } }, { by[raises][3], by[raises][4] })
      assert.equal(4, by[raises].n)
      -- the coroutine is left as coroutine.resume leaves it: its traceback can still be read
      assert.equal("dead", coroutine.status(raises))
      assert.is_string(debug.traceback(raises))
      assert.same({ true, token, "and more" }, { by[more][3], by[more][4], by[more][5] })
      assert.same({ true, "not the token" }, { by[other][3], by[other][4] })
      -- (after both its answers, through the loop)
      assert.same({ 3, chained, true }, { by[chained].n, by[chained][2], by[chained][3] })
      assert.equal("dead", coroutine.status(chained))
      for i = 1, 4 do assert.equal("hello world", logs[i][1].body) end
    end)

    it("leaves the transfers of another token and untagged ones alone", function()
      local mine, theirs = {}, {}
      local log_m, log_t = {}, {}
      assert.is_true(coroutine.resume(submitter(mine, { { url = fx.url("/hello") } }, log_m)))
      local co_t = submitter(theirs, { { url = fx.url("/status/404") } }, log_t)
      assert.is_true(coroutine.resume(co_t))
      local plain = s:submit{ url = fx.url("/hello") }
      run(mine)
      assert.equal(1, #log_m)
      assert.same({}, log_t)
      assert.equal(2, s:pending())
      -- take and poll hand over a tagged transfer too (its coroutine is
      -- then never resumed)
      local seen = {}
      for _ = 1, 200 do
        local id, status = s:take(0.05)
        if id then seen[id] = status end
        if s:pending() == 0 then break end
      end
      assert.equal(200, seen[plain])
      seen[plain] = nil
      local _, st = next(seen)
      assert.equal(404, st)
      assert.same({ 0 }, { s:dispatch(theirs, 0.01) })
      assert.same({}, log_t)
      assert.equal("suspended", coroutine.status(co_t))
    end)

    it("cancels every transfer of a token, and only those, letting go of their coroutines", function()
      local token, other = {}, {}
      local weak = setmetatable({}, { __mode = "k" })
      for _ = 1, 3 do
        local co = submitter(token, { { url = fx.url("/slow?ms=3000") } }, {})
        weak[co] = true
        assert.is_true(coroutine.resume(co))
      end
      local keep = submitter(other, { { url = fx.url("/hello") } }, {})
      assert.is_true(coroutine.resume(keep))
      assert.equal(4, s:pending())
      assert.equal(3, s:cancel(token))
      assert.equal(0, s:cancel(token))
      assert.equal(1, s:pending())
      collectgarbage()
      collectgarbage()
      assert.is_nil(next(weak))
      assert.same({ 0 }, { s:dispatch(token, 0.01) })
      run(other)
      assert.equal("dead", coroutine.status(keep))
    end)

    it("does not resume a coroutine that is not suspended in a yield", function()
      local token = {}
      -- submits and returns without yielding: dead when its answer comes
      local dead = coroutine.create(function() s:submit({ url = fx.url("/hello") }, token) end)
      assert.is_true(coroutine.resume(dead))
      local got = run(token)[1]
      assert.same({ dead, false, "cannot resume non-suspended coroutine" }, { got[2], got[3], got[4] })
      -- dispatching from the very coroutine the transfer belongs to
      local inner
      local self_co = coroutine.create(function()
        s:submit({ url = fx.url("/hello") }, token)
        for _ = 1, 400 do
          inner = table.pack(s:dispatch(token, 0.05))
          if inner[2] then return end
        end
      end)
      assert.is_true(coroutine.resume(self_co))
      assert.same({ 0, self_co, false, "cannot resume non-suspended coroutine" },
        { inner[1], inner[2], inner[3], inner[4] })
      assert.equal(0, s:pending())
    end)

    it("stops cleanly when a resumed coroutine closes the session", function()
      fx.reset()
      local token, resumed = {}, 0
      for _ = 1, 2 do
        local co = coroutine.create(function()
          s:submit({ url = fx.url("/barrier?name=shut&n=2") }, token)
          coroutine.yield(token)
          resumed = resumed + 1
          s:close()
          coroutine.yield(token)
        end)
        assert.is_true(coroutine.resume(co))
      end
      local got
      for _ = 1, 400 do
        got = table.pack(s:dispatch(token, 0.05))
        if resumed > 0 then break end
      end
      assert.equal(1, resumed)
      assert.same({ 0 }, { got[1] })
      assert.has_error(function() s:dispatch(token) end, "attempt to use a closed session")
    end)

    it("raises on misuse, naming the argument", function()
      assert.has_error(function() s:submit({ url = fx.url("/hello") }, {}) end,
        "submit with a token outside a coroutine")
      assert.has_error(function() s:submit({ url = fx.url("/hello") }, "tok") end,
        "bad argument #2 to 'submit' (table expected, got string)")
      assert.has_error(function() s:dispatch() end, "bad argument #1 to 'dispatch' (table expected, got no value)")
      assert.has_error(function() s:dispatch({}, -1) end,
        "bad argument #2 to 'dispatch' (timeout must be a non-negative number of seconds)")
      assert.has_error(function() s:cancel("x") end)
      assert.equal(0, s:pending())
    end)
  end)

  describe("lifetime", function()
    it("raises on any use of a closed session; close is idempotent", function()
      local t = core.session()
      assert.truthy(tostring(t):match("^instantly%.Session %(open"))
      t:close()
      t:close()
      assert.truthy(tostring(t):match("^instantly%.Session %(closed%)"))
      local calls = {
        function() t:request{ url = fx.url("/hello") } end,
        function() t:submit{ url = fx.url("/hello") } end,
        function() t:poll(0) end,
        function() t:pending() end,
        function() t:cancel(1) end,
      }
      for _, f in ipairs(calls) do
        assert.has_error(f, "attempt to use a closed session")
      end
    end)

    it("closes with <close> and cancels what is in flight", function()
      local before = core._stats()
      do
        local t <close> = core.session()
        t:submit{ url = fx.url("/slow?ms=2000") }
        t:submit{ url = fx.url("/slow?ms=2000") }
        assert.equal(before.sessions + 1, core._stats().sessions)
        assert.equal(before.transfers + 2, core._stats().transfers)
      end
      assert.same(before, core._stats())
    end)

    describe("a finalizer that runs while a result is handed over", function()
      -- A body of /bytes that pays for a whole cycle; its result must
      -- come whole (`got` is what the call returned, after pcall's true).
      local function bytes_req(size)
        return { url = fx.url("/bytes?n=" .. size), raw_headers = true }
      end
      local function whole(got, size)
        assert.same({ true, 200, size }, { got[1], got[2], #got[3] })
        assert.is_true(got[3] == fixture.pattern(size))
        assert.equal("string", type(got[4]))
        assert.truthy(got[4]:find("Content-Length: " .. size, 1, true))
      end
      local function tries(call, fn) return in_hand_over(bytes_req, call, fn, whole) end

      local calls = {
        request = function(t, req) return t:request(req) end,
        take = function(t, req)
          t:submit(req)
          return select(2, t:take(5))
        end,
        dispatch = function(t, req)
          local token, got = {}, nil
          local co = coroutine.wrap(function()
            t:submit(req, token)
            got = { coroutine.yield(token) }
          end)
          co()
          for _ = 1, 100 do
            if got or t:dispatch(token, 0.05) == 0 then break end
          end
          return table.unpack(got)
        end,
        poll = function(t, req)
          t:submit(req)
          for _ = 1, 100 do
            local r = t:poll(0.05)[1]
            if r then return r.status, r.body, r.headers end
          end
        end,
      }

      for _, name in ipairs{ "request", "take", "dispatch", "poll" } do
        it("closing the session there leaves " .. name .. "'s result whole, and the session closed", function()
          collectgarbage()
          local before = core._stats()
          local ran = tries(calls[name], function(t, rec)
            t:close()
            rec.closed = tostring(t)
          end)
          assert.is_true(ran[1], tostring(ran[2]))
          assert.truthy(ran.closed:match("%(closed%)"))
          collectgarbage()
          collectgarbage()
          assert.same(before, core._stats()) -- the transfer kept for the pusher is freed too
        end)
      end

      it("a request from there on another session works", function()
        local other = core.session()
        local ran = tries(calls.request, function()
          return other:request{ url = fx.url("/hello") }
        end)
        other:close()
        assert.is_true(ran[1], tostring(ran[2]))
        assert.equal(200, ran[2])
      end)
    end)

    it("frees unclosed sessions and their transfers on collection", function()
      s:close()
      collectgarbage()
      collectgarbage()
      -- relative to what other spec files may still hold in this state
      local before = core._stats()
      local weak = setmetatable({}, { __mode = "v" })
      for i = 1, 5 do
        local t = core.session()
        t:submit{ url = fx.url("/slow?ms=2000") }
        t:request{ url = fx.url("/hello") }
        weak[i] = t
      end
      assert.equal(before.sessions + 5, core._stats().sessions)
      assert.equal(before.transfers + 10, core._stats().transfers)
      collectgarbage()
      collectgarbage()
      assert.is_nil(next(weak))
      assert.same(before, core._stats())
    end)
  end)

  describe("decode: answers the core decodes", function()
    local d = core.json_decoder{}
    -- a JSON text of some size, sent to /echo?back=1 to come back as is
    local doc = { items = {} }
    for i = 1, 2000 do doc.items[i] = { id = i, name = "n" .. i, on = i % 2 == 0, tags = { "a", "b" } } end
    local text = cjson.encode(doc)
    local function echo_req(extra)
      local r = { method = "POST", url = fx.url("/echo?back=1"), body = text, decode = d }
      for k, v in pairs(extra or {}) do r[k] = v end
      return r
    end
    local function same_doc(v)
      assert.equal("table", type(v))
      assert.equal(2000, #v.items)
      assert.same({ id = 1, name = "n1", on = false, tags = { "a", "b" } }, v.items[1])
      assert.same({ id = 2000, name = "n2000", on = true, tags = { "a", "b" } }, v.items[2000])
    end

    it("a 2xx body comes as its value, with true after the headers, in request, take, dispatch and poll", function()
      local got = table.pack(s:request(echo_req()))
      assert.equal(4, got.n)
      assert.equal(200, got[1])
      same_doc(got[2])
      assert.equal("table", type(got[3]))
      assert.is_true(got[4])
      -- raw headers too
      got = table.pack(s:request(echo_req{ raw_headers = true }))
      assert.same({ 4, 200, "string", true }, { got.n, got[1], type(got[3]), got[4] })
      local id = s:submit(echo_req())
      got = table.pack(s:take(5))
      assert.same({ 5, id, 200, true }, { got.n, got[1], got[2], got[5] })
      same_doc(got[3])
      s:submit(echo_req())
      local r
      for _ = 1, 100 do r = s:poll(0.05)[1]; if r then break end end
      assert.same({ 200, true }, { r.status, r.decoded })
      same_doc(r.body)
      local token, res = {}, nil
      local co = coroutine.wrap(function()
        s:submit(echo_req(), token)
        res = table.pack(coroutine.yield(token))
      end)
      co()
      for _ = 1, 100 do if res or s:dispatch(token, 0.05) == 0 then break end end
      assert.same({ 4, 200, true }, { res.n, res[1], res[4] })
      same_doc(res[2])
    end)

    it("anything else comes as text: errors, 204, empty bodies, bodies that do not decode", function()
      local function text_of(req)
        req.decode = d
        local got = table.pack(s:request(req))
        assert.equal(3, got.n, req.url)
        assert.equal("string", type(got[2]), req.url)
        return got[1], got[2]
      end
      assert.same({ 404, "no route /nowhere" }, { text_of{ url = fx.url("/nowhere") } })
      local st, body = text_of{ method = "POST", url = fx.url("/status/500"), body = text }
      assert.equal(500, st)
      assert.is_string(body)
      assert.same({ 204, "" }, { text_of{ url = fx.url("/status/204") } })
      assert.same({ 200, "hello world" }, { text_of{ url = fx.url("/hello") } })
      -- a decoder's own limits hold: too deep for it is text, for the
      -- caller to decode and learn why
      local shallow = core.json_decoder{ max_depth = 2 }
      local got = table.pack(s:request(echo_req{ decode = shallow }))
      assert.same({ 3, 200, true }, { got.n, got[1], got[2] == text })
      local v, why = shallow(got[2])
      assert.is_nil(v)
      assert.truthy(why:find("deep", 1, true), why)
      -- false: no decoder
      got = table.pack(s:request(echo_req{ decode = false }))
      assert.same({ 3, 200, true }, { got.n, got[1], got[2] == text })
    end)

    it("makes no Lua string of the body (the heap, with the collector stopped, does not grow by it)", function()
      local body = string.rep(" ", 4 * MB) .. "[1]" -- decodes to a small value
      local function growth(req)
        collectgarbage()
        collectgarbage("stop")
        local before = collectgarbage("count")
        local got = table.pack(s:request(req))
        local kb = collectgarbage("count") - before
        collectgarbage("restart")
        return kb, got
      end
      local req = { method = "POST", url = fx.url("/echo?back=1"), body = body, raw_headers = true }
      local kb, got = growth(req)
      assert.same({ 3, 200 }, { got.n, got[1] })
      assert.is_true(kb > 4096, kb) -- the control: the text is a 4 MB string
      req.decode = d
      kb, got = growth(req)
      assert.same({ 4, 200, { 1 }, true }, { got.n, got[1], got[2], got[4] })
      assert.is_true(kb < 64, kb)
    end)

    it("the decoder's options hold (nulls)", function()
      local nulls = {}
      local dn = core.json_decoder{ nulls = nulls }
      local got = table.pack(s:request{ method = "POST", url = fx.url("/echo?back=1"),
                                         body = '{"a":1,"b":null}', decode = dn })
      assert.same({ 4, { a = 1 } }, { got.n, got[2] })
      assert.equal("b", nulls[got[2]])
    end)

    it("more decoders in flight than a session keeps: the others answer with text, and nothing is lost", function()
      local decs, ids = {}, {}
      for i = 1, 7 do
        decs[i] = core.json_decoder{}
        ids[s:submit(echo_req{ decode = decs[i] })] = i
      end
      local decoded, texts = 0, 0
      for _ = 1, 200 do
        local got = table.pack(s:take(0.05))
        if got.n > 0 then
          assert.equal(200, got[2])
          if got[5] then decoded = decoded + 1; same_doc(got[3])
          else texts = texts + 1; assert.is_true(got[3] == text) end
          ids[got[1]] = nil
        end
        if next(ids) == nil then break end
      end
      assert.is_nil(next(ids))
      assert.same({ 4, 3 }, { decoded, texts })
      -- the slots are free again: a new decoder is kept
      local got = table.pack(s:request(echo_req{ decode = core.json_decoder{} }))
      assert.same({ 4, true }, { got.n, got[4] })
    end)

    it("a finalizer closing the session mid-decode leaves the value whole", function()
      -- an array of 64 KB strings, as many as pay for a whole cycle
      local parts
      local function strings_req(size)
        parts = {}
        for i = 1, math.max(4, math.ceil(size / 65536)) do
          parts[i] = string.rep(string.char(96 + i % 26), 65536)
        end
        return { method = "POST", url = fx.url("/echo?back=1"), body = cjson.encode(parts), decode = d }
      end
      local function whole(got)
        assert.same({ true, 200, true, #parts }, { got[1], got[2], got[5], #got[3] })
        for i = 1, #parts do assert.is_true(got[3][i] == parts[i]) end
      end
      local ran = in_hand_over(strings_req, function(t, req) return t:request(req) end,
                               function(t) t:close() end, whole)
      assert.is_true(ran[1], tostring(ran[2]))
    end)
  end)

  describe("misuse raises, naming the argument", function()
    local rows = {
      { function() core.session{ timeoutt = 1 } end, "bad argument #1 to 'session' (unknown option 'timeoutt')" },
      { function() core.session{ timeout = -1 } end,
        "bad argument #1 to 'session' (option 'timeout' must be positive)" },
      { function() core.session{ timeout = "1" } end,
        "bad argument #1 to 'session' (option 'timeout' must be a number of seconds, got string)" },
      { function() core.session{ insecure = 1 } end,
        "bad argument #1 to 'session' (option 'insecure' must be a boolean, got number)" },
      { function() core.session{ max_response_bytes = 1.5 } end,
        "bad argument #1 to 'session' (option 'max_response_bytes' must be a positive integer)" },
      { function() core.session{ user_agent = "" } end,
        "bad argument #1 to 'session' (option 'user_agent' must be non-empty, without CR or LF)" },
      { function() core.session{ user_agent = "a\r\nX-Injected: 1" } end,
        "bad argument #1 to 'session' (option 'user_agent' must be non-empty, without CR or LF)" },
      { function() core.session{ max_connections = 0 } end,
        "bad argument #1 to 'session' (option 'max_connections' must be a positive integer)" },
      { function() core.session{ proxy = false } end,
        "bad argument #1 to 'session' (option 'proxy' must be a string, got boolean)" },
      { function() core.session("x") end, "bad argument #1 to 'session' (table expected, got string)" },
    }
    local function bad(msg) return "bad argument #1 to 'request' (" .. msg .. ")" end
    local req_rows = {
      { nil, bad("table expected, got nil") },
      { { }, bad("field 'url' is required") },
      { { url = "x", colour = 1 }, bad("unknown field 'colour'") },
      { { url = "ftp://127.0.0.1/" }, bad("field 'url' is not an http(s) URL: 'ftp://127.0.0.1/'") },
      { { url = "not a url" }, bad("field 'url' contains whitespace or control characters") },
      { { url = "http://h/", method = "GE T" }, bad("field 'method' is not an HTTP method: 'GE T'") },
      { { url = "http://h/", body = 5 }, bad("field 'body' must be a string, got number") },
      { { url = "http://h/", headers = "x" }, bad("field 'headers' must be a table, got string") },
      { { url = "http://h/", headers = { A = 1 } }, bad("header 'A' must be a string, got number") },
      { { url = "http://h/", headers = { A = "x\r\nB: y" } }, bad("header 'A' contains CR, LF or NUL") },
      { { url = "http://h/", headers = { ["A B"] = "x" } }, bad("header name 'A B' is not a valid token") },
      { { url = "http://h/", headers = { "x" } }, bad("header names must be strings") },
      { { url = "http://h/", timeout = 0 }, bad("field 'timeout' must be positive") },
      { { url = "http://h/", decode = print },
        bad("field 'decode' must be a decoder made by json_decoder, or false, got function") },
      { { url = "http://h/", decode = true },
        bad("field 'decode' must be a decoder made by json_decoder, or false, got boolean") },
      { { url = "http://h/", decode = core.json_decode },
        bad("field 'decode' must be a decoder made by json_decoder, or false, got function") },
    }

    it("in session options", function()
      for _, row in ipairs(rows) do assert.has_error(row[1], row[2]) end
    end)

    it("in request tables, for request and submit alike", function()
      assert.equal(200, (s:request{ url = fx.url("/hello") })) -- one pooled transfer
      local live = core._stats().transfers
      for _, row in ipairs(req_rows) do
        assert.has_error(function() s:request(row[1]) end, row[2])
        assert.has_error(function() s:submit(row[1]) end, (row[2]:gsub("'request'", "'submit'")))
      end
      assert.equal(0, s:pending())
      assert.has_error(function() s:poll(-1) end,
        "bad argument #1 to 'poll' (timeout must be a non-negative number of seconds)")
      assert.has_error(function() s:cancel("x") end, "bad argument #1 to 'cancel' (number expected, got string)")
      -- validation comes before anything is acquired: nothing was left behind
      assert.equal(live, core._stats().transfers)
    end)

    it("a request libcurl refuses reports libcurl's reason, not a memory error", function()
      -- libcurl refuses URLs over 8 MB (CURLE_BAD_FUNCTION_ARGUMENT): the
      -- setopt fails after validation passed; the message names the
      -- CURLcode's text, the session stays usable and nothing leaks.
      local live = core._stats().transfers
      local long = fx.url("/hello?q=" .. string.rep("a", 9 * 1024 * 1024))
      local ok, err = pcall(s.request, s, { url = long })
      assert.is_false(ok)
      assert.matches("^instantly.core: cannot start the request: ", err)
      assert.not_matches("memory", err)
      assert.matches("argument", err)
      ok, err = pcall(s.submit, s, { url = long })
      assert.is_false(ok)
      assert.matches("^instantly.core: cannot start the request: ", err)
      assert.equal(0, s:pending())
      assert.equal(200, (s:request{ url = fx.url("/hello") }))
      assert.is_true(core._stats().transfers <= live + 1)
    end)
  end)

  describe("proxies", function()
    it("sends requests through the proxy option", function()
      local p <close> = core.session{ proxy = fx.url("") }
      local status, body = p:request{ url = "http://api.example.invalid/echo" }
      assert.equal(200, status)
      assert.equal("http://api.example.invalid/echo", cjson.decode(body).target)
    end)

    it("follows libcurl's rules for the proxy environment variables", function()
      -- Each row runs a fresh process with only the variables given (and
      -- none of the others); the echo's target says whether the request
      -- went through the fixture as a proxy (absolute form) or straight.
      local fxp = fx.url("")
      local names = { "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                      "no_proxy", "NO_PROXY" }
      local rows = {
        { env = { http_proxy = fxp }, proxied = true },
        { env = { HTTP_PROXY = fxp }, proxied = false }, -- never for http:// (httpoxy)
        { env = { HTTP_PROXY = fxp, https_proxy = fxp }, proxied = false },
        { env = { all_proxy = fxp }, proxied = true },
        { env = { ALL_PROXY = fxp }, proxied = true },
        { env = { http_proxy = "", all_proxy = fxp }, proxied = true }, -- empty counts as unset
        { env = { http_proxy = fxp, no_proxy = "127.0.0.1" }, proxied = false },
        { env = { http_proxy = fxp, NO_PROXY = "127.0.0.1" }, proxied = false },
        { env = { http_proxy = fxp, no_proxy = "example.invalid" }, proxied = true },
        { env = { http_proxy = fxp, https_proxy = "http://127.0.0.1:9" }, proxied = true },
        { env = { https_proxy = fxp, HTTPS_PROXY = fxp }, proxied = false },
        { env = { no_proxy = "127.0.0.1" }, opts = "{proxy = '" .. fxp .. "'}", proxied = false },
        { env = {}, opts = "{proxy = '" .. fxp .. "'}", proxied = true },
        { env = { http_proxy = fxp }, opts = "{proxy = ''}", proxied = false },
      }
      for i, row in ipairs(rows) do
        local script = ("local c = require 'instantly.core'; local s = c.session(%s); "
          .. "local st, b = s:request{url = %q}; io.write(tostring(st), ' ', tostring(b))"):format(
          row.opts or "", fx.url("/echo"))
        local unset, set = {}, {}
        for _, n in ipairs(names) do
          if row.env[n] then set[#set + 1] = n .. "=" .. row.env[n] else unset[#unset + 1] = "-u " .. n end
        end
        local cmd = ("env %s %s LUA_CPATH=%q %s -e %q"):format(table.concat(unset, " "), table.concat(set, " "),
          package.cpath, os.getenv("LUA") or "lua5.4", script)
        local p = assert(io.popen(cmd, "r"))
        local out = p:read("a")
        p:close()
        local status, body = out:match("^(%d+) (.*)$")
        assert.equal("200", status, "row " .. i .. ": " .. out)
        local target = cjson.decode(body).target
        assert.equal(row.proxied and fx.url("/echo") or "/echo", target, "row " .. i)
      end
    end)

    it("reads the proxy from the standard environment variables", function()
      local script = ("local c = require 'instantly.core'; local s = c.session(); "
        .. "local st, b = s:request{url = 'http://api.example.invalid/echo'}; io.write(st, ' ', b)")
      local cmd = ("env -u no_proxy -u NO_PROXY http_proxy=%s LUA_CPATH=%q %s -e %q"):format(
        fx.url(""), package.cpath, os.getenv("LUA") or "lua5.4", script)
      local p = assert(io.popen(cmd, "r"))
      local out = p:read("a")
      p:close()
      local status, body = out:match("^(%d+) (.*)$")
      assert.equal("200", status, out)
      assert.equal("http://api.example.invalid/echo", cjson.decode(body).target)
    end)
  end)
end)
