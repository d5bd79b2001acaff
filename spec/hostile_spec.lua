-- The SDK against a server that misbehaves on purpose
-- (spec/support/hostile_server.lua, on loopback) and against hostile
-- input: the key never shows, path arguments cannot reach another
-- endpoint, header injection is refused, cursor cycles end, a decode that
-- runs out of memory is `nil, err`, and the transport fault rows keep
-- their classification and retry rules. docs/reliability.md names the
-- test behind each of its rows.
local instantly = require "instantly"
local cli = require "instantly.cli"
local catalog = require "instantly.entities"
local hostile = require "support.hostile_server"

-- A key with the characters that have other spellings (percent-encoded,
-- JSON-escaped), 51 bytes long like the keys of the issue.
local KEY = "sk_live_/Hostile+Key=0123456789abcdefghijklmnopqrst"
assert(#KEY == 51)
local PCT = KEY:gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end)
local UUID = "00000000-0000-4000-8000-000000000001"

local srv

setup(function() srv = hostile.start() end)
teardown(function() if srv then srv.stop() end end)
before_each(function() srv.reset() end)

local function client(mode, opts)
  local o = { api_key = KEY, base_url = srv.base(mode), rate_limit = false, retry = { base = 0.001, cap = 0.002 },
              max_retries = 2 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return instantly.new(o)
end

-- Every string an error holds, at any depth, keys included.
local function strings(v, out, seen)
  out, seen = out or {}, seen or {}
  if type(v) == "string" then
    out[#out + 1] = v
  elseif type(v) == "number" then
    out[#out + 1] = tostring(v)
  elseif type(v) == "table" and not seen[v] then
    seen[v] = true
    for k, x in pairs(v) do strings(k, out, seen); strings(x, out, seen) end
  end
  return out
end

-- The oracle: no 8 consecutive bytes of the key (in either spelling)
-- anywhere in `text` (the redacted form shows 4 + 3).
local function assert_no_key(text, what)
  for _, form in ipairs { KEY, PCT } do
    for i = 1, #form - 7 do
      local piece = form:sub(i, i + 7)
      if text:find(piece, 1, true) then
        error(("%s shows %q of the key (at byte %d of it)"):format(what, piece, i), 2)
      end
    end
  end
end

local function assert_error_clean(err, what)
  assert.is_true(instantly.is_error(err), what .. ": expected an instantly.Error, got " .. tostring(err))
  assert_no_key(tostring(err), what .. " tostring")
  assert_no_key(table.concat(strings(err), "\n"), what .. " fields")
end

describe("the key never shows in an error", function()
  it("200 with a non-JSON body echoing the key: body, headers, request id", function()
    local seen
    local c = client("echo-text", { on_response = function(r) seen = r end })
    local v, err = c.campaigns:list()
    assert.is_nil(v)
    assert.equal("decode", err.kind)
    assert.is_string(err.body)
    assert.matches("you sent Bearer", err.body, 1, true)
    assert.is_table(err.headers)
    assert.is_not_nil(err.headers["x-echo"])
    assert_error_clean(err, "decode error")
    -- the hook sees the same redacted headers
    assert_no_key(table.concat(strings(seen.headers), "\n"), "on_response headers")
  end)

  it("200 {error = ...}: every field, 10 levels deep, the key as a field name, headers", function()
    local _, err = client("echo-api-error").campaigns:get(UUID)
    assert.equal("api", err.kind)
    assert.equal("Unauthorized", err.code)
    assert.is_table(err.body.deep.level1)
    assert_error_clean(err, "api error")
  end)

  it("4xx with the key 12 levels deep, in a message list, as a field name and in headers", function()
    local _, err = client("echo-status").campaigns:get(UUID)
    -- /echo-status/N/... with no N: 400
    assert.equal("http", err.kind)
    assert_error_clean(err, "http error")
    local _, err2 = client("echo-status/401").accounts:pause("jane@example.com")
    assert.equal(401, err2.status)
    assert_error_clean(err2, "401 error")
  end)

  it("a text body whose key straddles the 2000-byte cut: removed before the cut", function()
    local _, err = client("echo-cut/400").campaigns:get(UUID)
    assert.equal(400, err.status)
    assert.is_true(#err.body <= 2000 + #"…")
    assert_error_clean(err, "cut text error")
    -- after retries too (503 is retried for a GET)
    local _, err2 = client("echo-cut/503").campaigns:get(UUID)
    assert.equal(3, err2.attempts)
    assert_error_clean(err2, "retried cut text error")
  end)

  it("the CLI's --verbose and --dry-run output", function()
    local function run(argv, mode)
      local out, errs = {}, {}
      local function sink(t) return { write = function(_, ...) for _, s in ipairs { ... } do t[#t + 1] = s end end } end
      local code = cli.main(argv, { stdout = sink(out), stderr = sink(errs) }, function(k)
        if k == "INSTANTLY_API_KEY" then return KEY end
        if k == "INSTANTLY_BASE_URL" then return srv.base(mode) end
        if k == "COLUMNS" then return "100" end
      end)
      return code, table.concat(out), table.concat(errs)
    end
    local code, out, err = run({ "campaigns", "get", UUID, "--verbose" }, "echo-cut/503")
    assert.is_true(code ~= 0)
    assert.matches("retrying", err, 1, true)
    assert_no_key(out .. err, "--verbose")
    code, out, err = run({ "campaigns", "list", "--verbose" }, "echo-text")
    assert.is_true(code ~= 0)
    assert_no_key(out .. err, "--verbose on a 200 echo")
    srv.reset()
    code, out, err = run({ "campaigns", "update", UUID, "--data", '{"name":"' .. KEY .. '"}', "--dry-run" }, "log")
    assert.equal(0, code, err)
    assert.matches("authorization: Bearer", out, 1, true)
    assert_no_key(out .. err, "--dry-run")
    assert.same({}, srv.log(), "a dry run sends nothing")
  end)
end)

describe("path arguments cannot reach another endpoint", function()
  it("'.' and '..' are refused for every path parameter of every operation, before sending", function()
    local c = client("log")
    local n = 0
    for _, name in ipairs(catalog.entities) do
      local def = require("instantly.entities." .. name)
      for _, op in ipairs(def.operations) do
        for i in ipairs(op.path_params) do
          for _, dots in ipairs { ".", ".." } do
            local args = {}
            for j, p in ipairs(op.path_params) do
              args[j] = j == i and dots or (p.format == "email" and "a@b.co" or UUID)
            end
            local ok, msg = pcall(c[def.lua_name][op.lua_method], c[def.lua_name], table.unpack(args))
            assert.is_false(ok, op.id .. " accepted " .. dots)
            assert.matches("path parameter '" .. op.path_params[i].name .. "'", msg, 1, true)
            n = n + 1
          end
        end
      end
    end
    assert.is_true(n >= 2 * 79, "checked " .. n)
    assert.same({}, srv.log(), "nothing may be sent")
  end)

  it("every other byte is percent-encoded and arrives as written; errors show the URL as sent", function()
    local c = client("status/404")
    local _, err = c.background_jobs:get("a/../b?c#d %2e")
    local log = srv.log()
    assert.equal(1, #log)
    assert.equal("/status/404/api/v2/background-jobs/a%2F..%2Fb%3Fc%23d%20%252e", log[1].target)
    assert.equal(srv.base("") .. log[1].target:sub(2), err.url)
    assert.equal("/api/v2/background-jobs/a%2F..%2Fb%3Fc%23d%20%252e", err.path)
  end)

  it("catalog formats are checked before sending, naming the argument", function()
    local c = client("log")
    assert.has_error(function() c.campaigns:delete("../../accounts") end,
      'instantly: campaigns:delete: path parameter \'id\' (argument #1) must be a uuid, got "../../accounts"')
    assert.has_error(function() c.accounts:pause("not an address") end,
      'instantly: accounts:pause: path parameter \'email\' (argument #1) must be an email, got "not an address"')
    assert.has_error(function() c.campaigns:get(12) end,
      "instantly: campaigns:get: path parameter 'id' (argument #1) must be a string, got number")
    assert.same({}, srv.log())
  end)

  it("the escape hatch refuses dot segments and control bytes in its path", function()
    local c = client("log")
    assert.has_error(function() c:request("POST", "/accounts/./pause") end,
      "instantly: client:request: path must not contain '.' or '..' segments: /accounts/./pause")
    assert.has_error(function() c:request("DELETE", "/campaigns/..") end)
    assert.has_error(function() c:request("GET", "/campaigns\r\nX-Evil: 1") end)
    assert.same({}, srv.log())
  end)
end)

describe("header injection is refused with the option's name", function()
  local cases = {
    { { api_key = "k0123456789abcdef\r\nX-Evil: 1" },
      "instantly.new: option 'api_key' must not contain CR, LF or NUL" },
    { { api_key = KEY, workspace = "w\nX-Evil: 1" },
      "instantly.new: option 'workspace' must not contain CR, LF or NUL" },
    { { api_key = KEY, workspace = "w\0" }, "instantly.new: option 'workspace' must not contain CR, LF or NUL" },
    { { api_key = KEY, user_agent = "me\r\nX-Evil: 1" },
      "instantly.new: option 'user_agent' must not contain CR, LF or NUL" },
    { { api_key = KEY, headers = { ["X-Ok"] = "a\r\nX-Evil: 1" } },
      "instantly.new: option 'headers' has a CR, LF or NUL in the value of header 'X-Ok'" },
    { { api_key = KEY, headers = { ["X-Evil: 1\r\nX"] = "a" } },
      'instantly.new: option \'headers\' has a header name that is not an HTTP token: "X-Evil: 1\\13\\10X"' },
  }
  for i, case in ipairs(cases) do
    it("case " .. i .. ": " .. case[2], function()
      local ok, msg = pcall(function() instantly.new(case[1]) end)
      assert.is_false(ok)
      assert.matches("hostile_spec%.lua:%d+: ", msg) -- blamed on the caller
      assert.equal(case[2], (msg:gsub("^.-hostile_spec%.lua:%d+: ", "")))
    end)
  end

  it("per-call and escape-hatch headers too; nothing is sent", function()
    local c = client("log")
    assert.has_error(function() c.campaigns:get(UUID, { headers = { ["X-A"] = "1\r\nX-Evil: 1" } }) end,
      "instantly: campaigns:get: option 'headers' has a CR, LF or NUL in the value of header 'X-A'")
    assert.has_error(function() c:request("GET", "/campaigns", { headers = { ["X A"] = "1" } }) end,
      'instantly: client:request: headers has a header name that is not an HTTP token: "X A"')
    assert.same({}, srv.log())
  end)
end)

describe("cursor cycles end the iteration", function()
  for _, period in ipairs { 1, 2, 3, 31, 50, 200 } do
    it("period " .. period .. ": each{} ends with it.err, all{} is nil, err; requests bounded", function()
      local c = client("cycle/" .. period)
      local it = c.campaigns:each()
      local n = 0
      for item in it do
        n = n + 1
        assert.equal("item-" .. (n == 1 and 0 or (n - 2) % period + 1), item.id)
        assert.is_true(n <= 3 * period + 2, "still iterating")
      end
      assert.equal("api", it.err.kind)
      assert.matches("again: its pages form a cycle", it.err.message, 1, true)
      -- short cycles are caught at the first repeated cursor
      if period <= 32 then assert.equal(period + 1, n) end
      assert.equal(n, #srv.log())
      local items, err = c.campaigns:all()
      assert.is_nil(items)
      assert.equal("api", err.kind)
    end)
  end

  it("cursors of 2 KB (kept out of the exact ring) are still caught, by Brent's method", function()
    for _, period in ipairs { 1, 3 } do
      srv.reset()
      local it = client("cycle-long/" .. period).campaigns:each()
      local n = 0
      for _ in it do n = n + 1; assert.is_true(n <= 4 * period + 4, "still iterating") end
      assert.equal("api", it.err.kind)
      assert.equal(n, #srv.log())
    end
  end)

  it("page by page: Page:next refuses a cursor the chain has used", function()
    local c = client("cycle/2")
    local page, err = assert(c.campaigns:list())
    local pages = 0
    while page do
      pages = pages + 1
      assert.is_true(pages < 10)
      page, err = page:next()
    end
    assert.equal(3, pages)
    assert.equal("api", err.kind)
    -- asking the same page twice is not a cycle
    local p1 = assert(c.campaigns:list())
    local a = assert(p1:next())
    local b = assert(p1:next())
    assert.equal(a.items[1].id, b.items[1].id)
  end)
end)

describe("a decode that runs out of memory", function()
  it("is nil, err through the client, and the process goes on", function()
    -- In a child limited to 150 MB of address space: 3,000,000 empty
    -- objects (9 MB of JSON) need more than that as Lua tables.
    -- AddressSanitizer reserves terabytes of address space at start-up,
    -- so under `make asan` the limit would kill the child before it runs.
    if (os.getenv("LD_PRELOAD") or ""):find("libasan", 1, true) then
      pending("an address-space limit cannot run under AddressSanitizer")
      return
    end
    local code = ("local i = require 'instantly'; local c = i.new{api_key = %q, base_url = %q, rate_limit = false, " ..
      "max_response_bytes = 100000000}; local v, err = c.campaigns:list(); " ..
      "print(v == nil, i.is_error(err) and err.kind, tostring(err)); " ..
      "local j, jerr = i.json.decode('[' .. string.rep('{},', 3000000) .. '{}]'); print('json', j == nil, jerr); " ..
      "local ok = c.campaigns:list(); print('after', collectgarbage('count') < 100000)"):format(KEY,
      srv.base("amplify/3000000"))
    local cmd = "ulimit -v 150000; LUA_PATH='" .. package.path .. "' LUA_CPATH='" .. package.cpath ..
      "' lua5.4 -e \"" .. code:gsub('"', '\\"') .. "\" 2>&1"
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    p:close()
    assert.matches("^true\tdecode\t", out)
    assert.matches("cannot decode %d+ bytes: not enough memory", out) -- not "not valid JSON"
    assert.matches("after\ttrue", out, 1, true)
    assert.matches("json\ttrue\t", out, 1, true) -- instantly.json.decode keeps the same rule
    assert_no_key(out, "child output")
  end)
end)

describe("transport fault rows keep holding", function()
  local rows = {
    -- mode, call, kind, transport_kind, attempts (max_retries = 2)
    { "slow/2000", "get", "timeout", "timeout", 3, { timeout = 0.3 } },
    { "slow/2000", "activate", "timeout", "timeout", 1, { timeout = 0.3 } }, -- a POST that may have arrived
    { "partial", "get", "transport", nil, nil },
    { "garbage", "get", "transport", "protocol", nil },
    { "oversize/200000", "get", "transport", "too_large", 1, { max_response_bytes = 100000 } },
    { "status/503", "get", "http", nil, 3 },
    { "status/503", "activate", "http", nil, 1 },
    { "status/429", "activate", "rate_limited", nil, 3 },
    { "status/500", "get", "http", nil, 1 },
  }
  for _, row in ipairs(rows) do
    local mode, call, kind, tk, attempts, opts = table.unpack(row)
    it(mode .. " " .. call .. " -> " .. kind .. (tk and (" (" .. tk .. ")") or "") ..
       (attempts and (", " .. attempts .. " attempt(s)") or ""), function()
      local c = client(mode, opts)
      local v, err
      if call == "get" then v, err = c.campaigns:get(UUID) else v, err = c.campaigns:activate(UUID) end
      assert.is_nil(v)
      assert.equal(kind, err.kind)
      if tk then assert.equal(tk, err.transport_kind) end
      if attempts then
        assert.equal(attempts, err.attempts)
        assert.equal(attempts, #srv.log())
      end
      assert_error_clean(err, mode)
      assert.is_nil(tostring(err):find("HTTP nil", 1, true))
    end)
  end

  it("a gzip bomb stops at max_response_bytes (64 MiB by default): too_large, not retried", function()
    local _, err = client("gzip-bomb").campaigns:get(UUID)
    assert.equal("transport", err.kind)
    assert.equal("too_large", err.transport_kind)
    assert.equal(1, err.attempts)
  end)

  it("a redirect to another origin does not carry the key", function()
    local c = client("redirect")
    local _, status = c:request("GET", "/campaigns")
    local log = srv.log()
    -- a GET follows the redirect; the second request (to localhost) goes without Authorization
    assert.equal(2, #log)
    assert.is_true(log[1].auth)
    assert.equal("/log/redirected", log[2].target)
    assert.is_false(log[2].auth)
    assert.equal(200, status)
  end)

  it("a closed port is a connect failure, retried, and says so", function()
    local socket = require "socket"
    local s = assert(socket.bind("127.0.0.1", 0))
    local port = select(2, s:getsockname())
    s:close()
    local c = instantly.new { api_key = KEY, base_url = "http://127.0.0.1:" .. port, rate_limit = false,
                              retry = { base = 0.001, cap = 0.002 } }
    local _, err = c.campaigns:activate(UUID)
    assert.equal("transport", err.kind)
    assert.equal("connect", err.transport_kind)
    assert.equal(3, err.attempts) -- never reached the server, so even a POST is retried
  end)
end)

describe("iteration keeps the error rule", function()
  -- Run a snippet in a child `lua5.4 -W` (warnings on) against a transport
  -- that fails every page after the first; returns what it printed.
  local function child(body)
    local code = "local i = require 'instantly'; local n = 0; local c = i.new{api_key = 'k0123456789abcdefghij', " ..
      "rate_limit = false, max_retries = 0, transport = {request = function() n = n + 1; " ..
      "if n == 1 then return 200, '{\"items\":[{\"id\":\"a\"}],\"next_starting_after\":\"a\"}', {} end; " ..
      "return 500, '{\"message\":\"down\"}', {} end}}; " .. body
    local p = assert(io.popen("LUA_PATH='" .. package.path .. "' LUA_CPATH='" .. package.cpath ..
      "' lua5.4 -W -e \"" .. code:gsub('"', '\\"') .. "\" 2>&1"))
    local out = p:read("a")
    p:close()
    return out
  end

  it("a failed page ends the loop without raising; it.err holds the error", function()
    local out = child("local it = c.campaigns:each(); local k = 0; for _ in it do k = k + 1 end; " ..
      "print(k, it.err.kind, it.err.status); it = nil; collectgarbage(); collectgarbage(); print('done')")
    assert.equal("1\thttp\t500\ndone\n", out) -- and no warning: the error was read
  end)

  it("an error nobody read is reported through Lua's warnings when the iterator is collected", function()
    local out = child("for _ in c.campaigns:each() do end; collectgarbage(); collectgarbage(); print('done')")
    assert.matches("Lua warning: instantly: an iteration stopped on an error nobody read (check it.err after " ..
      "the loop): instantly: GET /api/v2/campaigns: HTTP 500: down", out, 1, true)
    assert.matches("done", out, 1, true)
  end)
end)
