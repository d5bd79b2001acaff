-- transport_tls_spec.lua - TLS in the HTTP transport: verification is on
-- by default, ca_file and insecure work as documented, a session resumes
-- TLS sessions across connections and easy handles (the share handle), and
-- https goes through a proxy (option or https_proxy) as a CONNECT tunnel.
-- The server is `openssl s_server -www` on 127.0.0.1 with a throwaway
-- self-signed certificate; its status page says whether each handshake
-- was "New" or "Reused", which is the server-side record used. The proxy
-- is the transport specs' fixture server, which records its tunnels.
local core = require "instantly.core"
local fixture = require "support.http_fixture"

local function sh(cmd)
  local ok = os.execute(cmd)
  assert(ok, "failed: " .. cmd)
end

describe("transport over TLS", function()
  local dir, proc, pid, url, port, fx

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    sh("mkdir -m 700 " .. dir)
    sh(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
      .. "-keyout %s/key.pem -out %s/cert.pem -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
      .. ">/dev/null 2>&1"):format(dir, dir))
    -- The shell prints its pid, then becomes the (time-bounded) server.
    -- TLS 1.2: under 1.3 the session ticket comes after the handshake, and
    -- whether it is stored before `-www` closes the connection is a race;
    -- under 1.2 resumption data is part of the handshake.
    proc = assert(io.popen(("exec sh -c 'echo $$; exec timeout 120 openssl s_server -accept 127.0.0.1:0 "
      .. "-no_tls1_3 -cert %s/cert.pem -key %s/key.pem -www 2>&1'"):format(dir, dir), "r"))
    pid = assert(tonumber(proc:read("l")))
    fx = fixture.start()
    for _ = 1, 20 do
      local line = proc:read("l")
      if not line then break end
      port = line:match("^ACCEPT 127%.0%.0%.1:(%d+)")
      if port then break end
    end
    assert(port, "openssl s_server did not start")
    url = "https://127.0.0.1:" .. port .. "/"
  end)

  teardown(function()
    if fx then fx.stop() end
    if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
    if proc then proc:close() end
    if dir then os.execute("rm -rf " .. dir) end
  end)

  local function handshake(body)
    return body and body:match("\n(%a+), TLSv1%.%d")
  end

  it("verifies certificates by default", function()
    local s <close> = core.session()
    local status, err = s:request{ url = url }
    assert.is_nil(status)
    assert.equal("tls", err.kind)
    assert.equal(60, err.curl_code) -- CURLE_PEER_FAILED_VERIFICATION
    assert.truthy(err.message:find("certificate", 1, true))
  end)

  it("trusts a ca_file, and resumes TLS sessions across connections and handles", function()
    local s <close> = core.session{ ca_file = dir .. "/cert.pem" }
    local status, body = s:request{ url = url }
    assert.equal(200, status)
    assert.equal("New", handshake(body))
    -- s_server -www closes every connection: each request below connects
    -- again, two of them at once on two different easy handles.
    local a = s:submit{ url = url }
    local b = s:submit{ url = url }
    local seen = {}
    for _ = 1, 100 do
      for _, r in ipairs(s:poll(0.1)) do seen[r.id] = r end
      if s:pending() == 0 then break end
    end
    assert.equal(200, seen[a].status)
    assert.equal(200, seen[b].status)
    assert.equal("Reused", handshake(seen[a].body))
    assert.equal("Reused", handshake(seen[b].body))
  end)

  it("skips verification only when insecure = true", function()
    local s <close> = core.session{ insecure = true }
    local status, body = s:request{ url = url }
    assert.equal(200, status)
    assert.truthy(handshake(body))
  end)

  it("tunnels https through the proxy option with CONNECT", function()
    fx.reset()
    local s <close> = core.session{ ca_file = dir .. "/cert.pem", proxy = fx.url("") }
    for _ = 1, 2 do
      local status, body = s:request{ url = url }
      assert.equal(200, status)
      assert.truthy(handshake(body))
    end
    local rec = fx.stats()
    assert.equal(2, rec.tunnels) -- s_server closes each connection
    assert.equal("127.0.0.1:" .. port, rec.last_tunnel)
  end)

  it("tunnels https through the proxy environment variables", function()
    -- https_proxy, HTTPS_PROXY or all_proxy; with http_proxy the same, the
    -- session takes the proxy once for both schemes (see env_proxy)
    local fxp = fx.url("")
    local rows = {
      "https_proxy=" .. fxp,
      "HTTPS_PROXY=" .. fxp,
      "all_proxy=" .. fxp,
      "http_proxy=" .. fxp .. " https_proxy=" .. fxp,
    }
    for i, vars in ipairs(rows) do
      fx.reset()
      local script = ("local c = require 'instantly.core'; local s = c.session{ ca_file = %q }; "
        .. "local st, b = s:request{ url = %q }; io.write(tostring(st), ' ', tostring(b))"):format(
        dir .. "/cert.pem", url)
      local cmd = ("env -u no_proxy -u NO_PROXY -u http_proxy -u https_proxy -u HTTPS_PROXY -u all_proxy "
        .. "-u ALL_PROXY %s LUA_CPATH=%q %s -e %q"):format(vars, package.cpath, os.getenv("LUA") or "lua5.4", script)
      local p = assert(io.popen(cmd, "r"))
      local out = p:read("a")
      p:close()
      assert.equal("200", out:match("^(%d+) "), "row " .. i .. ": " .. out)
      assert.equal(1, fx.stats().tunnels, "row " .. i)
    end
  end)

  it("reports an unreadable ca_file as a tls error", function()
    local s <close> = core.session{ ca_file = dir .. "/missing.pem" }
    local status, err = s:request{ url = url }
    assert.is_nil(status)
    assert.equal("tls", err.kind)
  end)
end)
