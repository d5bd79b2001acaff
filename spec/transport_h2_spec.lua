-- transport_h2_spec.lua - HTTP/2 in the HTTP transport: on by default over
-- TLS, concurrent transfers share one multiplexed connection, http2 = false
-- falls back to HTTP/1.1. The server is nginx (nginx-light) on 127.0.0.1
-- with a throwaway certificate, started from a temporary prefix; its access
-- log (connection serial number and protocol per request) is the record
-- the assertions read.
local core = require "instantly.core"
local socket = require "socket"

local function sh(cmd)
  assert(os.execute(cmd), "failed: " .. cmd)
end

describe("transport over HTTP/2", function()
  local dir, proc, pid, base, ca

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    sh("mkdir -m 755 " .. dir)
    sh(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
      .. "-keyout %s/key.pem -out %s/cert.pem -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
      .. ">/dev/null 2>&1"):format(dir, dir))
    ca = dir .. "/cert.pem"
    local probe = assert(socket.bind("127.0.0.1", 0))
    local _, port = probe:getsockname()
    probe:close()
    local conf = assert(io.open(dir .. "/nginx.conf", "w"))
    local text = [[
worker_processes 1;
pid DIR/nginx.pid;
error_log DIR/error.log warn;
events { worker_connections 64; }
http {
    log_format rec '$connection $server_protocol $request_uri';
    access_log DIR/access.log rec;
    client_body_temp_path DIR/body;
    proxy_temp_path DIR/proxy;
    fastcgi_temp_path DIR/fastcgi;
    uwsgi_temp_path DIR/uwsgi;
    scgi_temp_path DIR/scgi;
    server {
        listen 127.0.0.1:PORT ssl http2;
        ssl_certificate DIR/cert.pem;
        ssl_certificate_key DIR/key.pem;
        location / { return 200 'hello over tls'; }
    }
}
]]
    text = text:gsub("DIR", dir)
    text = text:gsub("PORT", tostring(port))
    conf:write(text)
    conf:close()
    local cmd = "exec sh -c 'echo $$; exec timeout 120 nginx -p %s -c %s/nginx.conf -g \"daemon off;\" 2>&1'"
    proc = assert(io.popen(cmd:format(dir, dir), "r"))
    pid = assert(tonumber(proc:read("l")))
    local up = false
    for _ = 1, 50 do
      local c = socket.tcp()
      c:settimeout(0.2)
      up = c:connect("127.0.0.1", port) ~= nil
      c:close()
      if up then break end
      socket.sleep(0.1)
    end
    assert(up, "nginx did not start")
    base = "https://127.0.0.1:" .. port
  end)

  teardown(function()
    if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
    if proc then proc:close() end
    if dir then os.execute("rm -rf " .. dir) end
  end)

  local function read_record(path)
    local rows = {}
    local f = io.open(dir .. "/access.log")
    if not f then return rows end
    for line in f:lines() do
      local conn, proto, uri = line:match("^(%d+) (%S+) (%S+)$")
      if uri == path then rows[#rows + 1] = { conn = conn, proto = proto } end
    end
    f:close()
    return rows
  end

  -- The access log lines for one request path: { {conn=, proto=}, ... }.
  -- nginx logs a request after its response has gone out, so the last line
  -- can lag behind the client: wait (bounded) for `want` lines.
  local function record(path, want)
    local rows = read_record(path)
    for _ = 1, 50 do
      if #rows >= want then break end
      socket.sleep(0.05)
      rows = read_record(path)
    end
    return rows
  end

  it("speaks HTTP/2 by default over TLS", function()
    local s <close> = core.session{ ca_file = ca }
    local status, body, headers = s:request{ url = base .. "/one" }
    assert.equal(200, status)
    assert.equal("hello over tls", body)
    assert.is_string(headers["content-type"])
    local rec = record("/one", 1)
    assert.equal(1, #rec)
    assert.equal("HTTP/2.0", rec[1].proto)
  end)

  it("multiplexes concurrent transfers over one connection", function()
    local s <close> = core.session{ ca_file = ca }
    local ids = {}
    for i = 1, 6 do ids[i] = s:submit{ url = base .. "/mux" } end
    local done = {}
    for _ = 1, 100 do
      for _, r in ipairs(s:poll(0.1)) do done[r.id] = r end
      if s:pending() == 0 then break end
    end
    for _, id in ipairs(ids) do assert.equal(200, done[id].status) end
    local rec = record("/mux", 6)
    assert.equal(6, #rec)
    for _, r in ipairs(rec) do
      assert.equal("HTTP/2.0", r.proto)
      assert.equal(rec[1].conn, r.conn)
    end
  end)

  it("uses HTTP/1.1 when http2 = false", function()
    local s <close> = core.session{ ca_file = ca, http2 = false }
    for _ = 1, 3 do assert.equal(200, (s:request{ url = base .. "/h1" })) end
    local rec = record("/h1", 3)
    assert.equal(3, #rec)
    for _, r in ipairs(rec) do
      assert.equal("HTTP/1.1", r.proto)
      assert.equal(rec[1].conn, r.conn) -- and keep-alive over TLS
    end
  end)
end)
