-- `instantly webhooks listen`: a child process receiving the mock's
-- deliveries, printing JSON lines, forwarding, refusing a wrong secret.

local socket = require "socket"
local core = require "instantly.core"
local cli = require "instantly.cli"
local webhook = require "instantly.webhook"
local instantly = require "instantly"
local mock = require "instantly.mock"

local function sink()
  local buf = {}
  return { write = function(self, ...) for _, s in ipairs{ ... } do buf[#buf + 1] = tostring(s) end return self end,
    text = function() return table.concat(buf) end }
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

local function alive(pid) return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true end

describe("instantly webhooks listen", function()
  it("rejects unknown options and bad numbers with exit 2 and prints usage on --help", function()
    local out, err = sink(), sink()
    assert.are.equal(2, cli.main({ "webhooks", "listen", "--bogus" }, { stdout = out, stderr = err }))
    assert.truthy(err.text():find("unknown option --bogus", 1, true))
    err = sink()
    assert.are.equal(2, cli.main({ "webhooks", "listen", "--port", "x" }, { stdout = out, stderr = err }))
    assert.truthy(err.text():find("--port must be a number", 1, true))
    out = sink()
    assert.are.equal(0, cli.main({ "webhooks", "listen", "--help" }, { stdout = out, stderr = sink() }))
    assert.truthy(out.text():find("does not sign", 1, true))
  end)

  it("reads the secret from --secret-file, and refuses a missing file", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write("file-secret\n")
    f:close()
    local out, err = sink(), sink()
    local code = cli.main({ "webhooks", "listen", "--port", "0", "--count", "0", "--secret-file", path },
      { stdout = out, stderr = err }, function() return nil end)
    os.remove(path)
    assert.are.equal(0, code)
    assert.truthy(err.text():find("(secret required)", 1, true))
    assert.falsy(err.text():find("file-secret", 1, true))
    err = sink()
    assert.are.equal(2, cli.main({ "webhooks", "listen", "--secret-file", path }, { stdout = out, stderr = err }))
    assert.truthy(err.text():find("--secret-file", 1, true))
  end)

  it("answers 500 when --forward fails, so the sender retries", function()
    -- a port nobody listens on: bind, note it, close
    local probe = assert(socket.bind("127.0.0.1", 0))
    local _, dead = probe:getsockname()
    probe:close()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    local errf = dir .. "/err"
    local p = io.popen(string.format("LUA_PATH=%q LUA_CPATH=%q lua5.4 bin/instantly webhooks listen --port 0 "
      .. "--forward http://127.0.0.1:%s/ >/dev/null 2>%s & echo $!", package.path, package.cpath, dead, errf))
    local pid = assert(math.tointeger(tonumber(p:read("l"))))
    p:close()
    local ok, answer = pcall(function()
      local url
      local stop = socket.gettime() + 10
      repeat
        socket.sleep(0.02)
        url = read(errf):match("listening on (http://%S+)")
      until url or socket.gettime() > stop
      assert(url, "the listener did not start: " .. read(errf))
      local c = assert(socket.connect("127.0.0.1", tonumber(url:match(":(%d+)/"))))
      c:settimeout(10)
      c:send("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        .. "Content-Length: 28\r\nConnection: close\r\n\r\n{\"event_type\":\"lead_closed\"}")
      local a = c:receive("*a")
      c:close()
      return a
    end)
    if alive(pid) then os.execute("kill " .. pid) end
    os.execute("rm -rf " .. dir)
    assert(ok, answer)
    assert.truthy(answer:match("^HTTP/1%.1 500"))
  end)

  it("prints each delivery from the mock as one JSON line, forwards it, refuses a wrong secret", function()
    local SECRET = "cli-secret-" .. tostring(math.random(1e6))
    local srv = assert(mock.start{ rate_limits = false })
    local client = instantly.new{ base_url = srv.url, api_key = srv.api_key, max_retries = 0 }
    local forwarded = {}
    local fwd <close> = assert(webhook.receiver{ path = "/fwd",
      on_event = function(ev) forwarded[#forwarded + 1] = ev end })
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    local outf, errf = dir .. "/out", dir .. "/err"
    local cmd = string.format("INSTANTLY_WEBHOOK_SECRET=%s LUA_PATH=%q LUA_CPATH=%q lua5.4 bin/instantly "
      .. "webhooks listen --port 0 --count 2 --forward %s >%s 2>%s & echo $!",
      SECRET, package.path, package.cpath, fwd.url, outf, errf)
    local p = io.popen(cmd)
    local pid = assert(math.tointeger(tonumber(p:read("l"))))
    p:close()
    local ok, res = pcall(function()
      local url
      local stop = socket.gettime() + 10
      repeat
        socket.sleep(0.02)
        url = read(errf):match("listening on (http://%S+)")
      until url or socket.gettime() > stop
      assert(url, "the listener did not start: " .. read(errf))
      local port = tonumber(url:match(":(%d+)/"))
      -- a wrong secret is refused before anything is printed
      local c = assert(socket.connect("127.0.0.1", port))
      c:settimeout(5)
      c:send("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Webhook-Secret: nope\r\n"
        .. "Content-Length: 28\r\nConnection: close\r\n\r\n{\"event_type\":\"lead_closed\"}")
      local answer = c:receive("*a")
      c:close()
      assert.truthy(answer:match("^HTTP/1%.1 401"))
      assert(client.webhooks:create{ target_hook_url = url, event_type = "all_events",
        headers = { [webhook.SECRET_HEADER] = SECRET } })
      local lead = assert(client.leads:list{ limit = 1, in_campaign = true }).items[1]
      assert(srv:_call("POST", "/__mock/events/reply", { lead_email = lead.email, text = "hello" }))
      assert(srv:_call("POST", "/__mock/events/open", { lead_email = lead.email }))
      stop = socket.gettime() + 15
      while (#forwarded < 2 or alive(pid)) and socket.gettime() < stop do fwd:step(0.05) end
      return lead
    end)
    if alive(pid) then os.execute("kill " .. pid) end
    srv:stop()
    local out, err = read(outf), read(errf)
    os.execute("rm -rf " .. dir)
    assert(ok, res)
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = assert(core.json_decode(l)) end
    assert.are.equal(2, #lines)
    local types = { [lines[1].event_type] = true, [lines[2].event_type] = true }
    assert.is_true(types.reply_received and types.email_opened)
    assert.are.equal(res.email, lines[1].lead_email)
    assert.are.equal(2, #forwarded)
    assert.falsy(err:find(SECRET, 1, true))
    assert.truthy(err:find("401", 1, true))
  end)
end)
