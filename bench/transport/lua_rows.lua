-- lua_rows.lua - the Lua rows of bench/20-transport.sh.
--
--   lua5.4 lua_rows.lua --list
--       prints "NAME KIND" per row, in table order; KIND is "seq" (compared
--       with the plain C easy loop) or "multi" (compared with the C multi
--       loop at the same number in flight)
--   lua5.4 lua_rows.lua ROW WORKLOAD METHOD URL BODYFILE SECONDS [INFLIGHT]
--       runs one row for SECONDS and prints "REQUESTS ELAPSED_S CPU_S", CPU
--       being the process's user + system time spent in the loop
--
-- Adding a row: append { name = ..., kind = "seq" | "multi", run = fn } to
-- `rows` below. fn(ctx) makes requests until ctx.deadline (a core.monotime
-- value) and returns how many it made; ctx has workload ("small", "page",
-- "pageN" for a page of N campaigns (SDK rows only) or "leads"), method,
-- url, base (scheme://host:port), path, body (string or nil), headers (the
-- request headers every row sends) and inflight.
-- Optional `available = function() return bool, why end` skips the row
-- (printed as skipped) when a module it needs is missing. The shell script
-- picks up new rows by itself.
local core = require "instantly.core"

local rows = {}

local function expect(status, body)
  if status ~= 200 then
    error(("status %s: %s"):format(tostring(status), tostring(body)), 2)
  end
end

-- session:request in a loop: the transport alone.
rows[#rows + 1] = { name = "core_request", kind = "seq", run = function(ctx)
  local s <close> = core.session()
  local req = { method = ctx.method, url = ctx.url, headers = ctx.headers, body = ctx.body }
  local n, deadline, monotime = 0, ctx.deadline, core.monotime
  while monotime() < deadline do
    expect(s:request(req))
    n = n + 1
  end
  return n
end }

-- The same with the JSON work an API call does: the request body (if any)
-- encoded from a table on every request, each response decoded. This is
-- the fair comparison for sdk_client, which also encodes its body per call.
rows[#rows + 1] = { name = "core_request+json", kind = "seq",
  available = function() return core.json_decode ~= nil, "core.json_decode missing" end,
  run = function(ctx)
    local s <close> = core.session()
    local req = { method = ctx.method, url = ctx.url, headers = ctx.headers, body = ctx.body }
    local n, deadline, monotime, decode, encode = 0, ctx.deadline, core.monotime, core.json_decode, core.json_encode
    local value = ctx.body and assert(decode(ctx.body))
    while monotime() < deadline do
      if value then req.body = encode(value) end
      local status, body = s:request(req)
      expect(status, body)
      assert(decode(body))
      n = n + 1
    end
    return n
  end }

-- submit/poll keeping ctx.inflight transfers going.
rows[#rows + 1] = { name = "core_submit_poll", kind = "multi", run = function(ctx)
  local s <close> = core.session()
  local req = { method = ctx.method, url = ctx.url, headers = ctx.headers, body = ctx.body }
  local n, deadline, monotime = 0, ctx.deadline, core.monotime
  for _ = 1, ctx.inflight do s:submit(req) end
  while s:pending() > 0 do
    for _, r in ipairs(s:poll(1)) do
      expect(r.status, r.body or r.err)
      n = n + 1
      if monotime() < deadline then s:submit(req) end
    end
  end
  return n
end }

-- What Lua users write today: LuaSocket's socket.http and lua-cjson
-- (a new connection per request: socket.http has no keep-alive).
rows[#rows + 1] = { name = "luasocket+cjson", kind = "seq",
  available = function()
    local ok = pcall(require, "socket.http") and pcall(require, "cjson")
    return ok, "lua-socket or lua-cjson missing"
  end,
  run = function(ctx)
    local http, ltn12, cjson, socket = require "socket.http", require "ltn12", require "cjson", require "socket"
    local headers = {}
    for k, v in pairs(ctx.headers) do headers[k] = v end
    local value = ctx.body and cjson.decode(ctx.body) -- encoded again per request, like an API call
    local n, deadline = 0, ctx.deadline - core.monotime() + socket.gettime()
    while socket.gettime() < deadline do
      local sink, body_out = {}, value and cjson.encode(value)
      if body_out then headers["Content-Length"] = tostring(#body_out) end
      local _, status = http.request{ method = ctx.method, url = ctx.url, headers = headers,
        source = body_out and ltn12.source.string(body_out) or nil, sink = ltn12.sink.table(sink) }
      local body = table.concat(sink)
      expect(status, body)
      assert(cjson.decode(body))
      n = n + 1
    end
    return n
  end }

-- The SDK itself: instantly.new{...} and the generated methods, i.e.
-- argument checks, URL and headers, the pipeline, JSON decoding and records
-- (the client's rate limiter is off: it would pace the loop to 100/s).
rows[#rows + 1] = { name = "sdk_client", kind = "seq",
  available = function()
    local ok, err = pcall(require, "instantly")
    return ok, "instantly: " .. tostring(err)
  end,
  run = function(ctx)
    local instantly = require "instantly"
    local client = instantly.new{ api_key = "bench-key", base_url = ctx.base, rate_limit = false, max_retries = 0 }
    local call
    if ctx.workload == "small" then
      call = function() return client.workspaces:get() end
    elseif ctx.workload:match("^page") then
      -- pageN: the server answers a page of N items (the API caps limit
      -- at 100; bench/20-transport.sh picks the file by this header).
      local n = ctx.workload:match("^page(%d+)$")
      local opts = n and { headers = { ["x-bench-page"] = n } } or nil
      call = function() return client.campaigns:list({ limit = 100 }, opts) end
    else
      local params = assert(core.json_decode(ctx.body))
      call = function() return client.leads:add_many(params) end
    end
    local n, deadline, monotime = 0, ctx.deadline, core.monotime
    while monotime() < deadline do
      local v, err = call()
      if not v then error(tostring(err)) end
      n = n + 1
    end
    client:close()
    return n
  end }

-- The SDK with ctx.inflight calls in flight: client:gather over a stream
-- of tasks, each one ordinary generated method call (compared with the C
-- multi loop at the same number in flight).
rows[#rows + 1] = { name = "sdk_gather", kind = "multi",
  available = function()
    local ok, err = pcall(require, "instantly")
    return ok, "instantly: " .. tostring(err)
  end,
  run = function(ctx)
    local instantly = require "instantly"
    local client = instantly.new{ api_key = "bench-key", base_url = ctx.base, rate_limit = false, max_retries = 0 }
    local call
    if ctx.workload == "small" then
      call = function() return client.workspaces:get() end
    elseif ctx.workload:match("^page") then
      -- pageN: the server answers a page of N items (the API caps limit
      -- at 100; bench/20-transport.sh picks the file by this header).
      local n = ctx.workload:match("^page(%d+)$")
      local opts = n and { headers = { ["x-bench-page"] = n } } or nil
      call = function() return client.campaigns:list({ limit = 100 }, opts) end
    else
      local params = assert(core.json_decode(ctx.body))
      call = function() return client.leads:add_many(params) end
    end
    local deadline, monotime = ctx.deadline, core.monotime
    local n = 0
    local failed = client:gather(function()
      if monotime() < deadline then return call end
    end, { concurrency = ctx.inflight, on_result = function(_, v, err)
      if not v then error(tostring(err)) end
      n = n + 1
    end })
    assert(failed == 0)
    client:close()
    return n
  end }

local M = { rows = rows }

if arg and arg[1] == "--list" then
  for _, row in ipairs(rows) do
    local ok, why = true, nil
    if row.available then ok, why = row.available() end
    print(row.name, row.kind, ok and "ok" or ("skip:" .. tostring(why):gsub("%s", "_")))
  end
elseif arg and arg[1] then
  local name, workload, method, url, bodyfile, seconds, inflight = table.unpack(arg, 1, 7)
  local row
  for _, r in ipairs(rows) do if r.name == name then row = r end end
  assert(row, "no row " .. tostring(name))
  local body
  if bodyfile ~= "-" then
    local f = assert(io.open(bodyfile, "rb"))
    body = f:read("a")
    f:close()
  end
  local headers = { Authorization = "Bearer bench-key" }
  if body then headers["Content-Type"] = "application/json" end
  local base, path = url:match("^(https?://[^/]+)(.*)$")
  local start, cpu = core.monotime(), os.clock()
  local n = row.run{ workload = workload, method = method, url = url, base = base, path = path, body = body,
    headers = headers, inflight = tonumber(inflight) or 4, deadline = start + tonumber(seconds) }
  io.write(n, " ", ("%.6f %.6f"):format(core.monotime() - start, os.clock() - cpu), "\n")
end

return M
