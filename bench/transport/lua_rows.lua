-- lua_rows.lua - the Lua rows of bench/20-transport.sh.
--
--   lua5.4 lua_rows.lua --list
--       prints "NAME KIND" per row, in table order; KIND is "seq" (compared
--       with the plain C easy loop) or "multi" (compared with the C multi
--       loop at the same number in flight)
--   lua5.4 lua_rows.lua ROW WORKLOAD METHOD URL BODYFILE SECONDS [INFLIGHT]
--       runs one row for SECONDS and prints "REQUESTS ELAPSED_S CPU_S", CPU
--       being the process's user + system time spent in the loop
--   lua5.4 lua_rows.lua ROW WORKLOAD METHOD URL BODYFILE serve [INFLIGHT]
--       slice mode (bench/transport/lockstep.c drives it): sets the row up
--       once, then runs one slice per command read on stdin, "t SECONDS"
--       (requests for SECONDS) or "n COUNT" (COUNT requests), answering
--       each with "REQUESTS ELAPSED_S CPU_S"; "q" or end of input exits
--
-- Adding a row: append { name = ..., kind = "seq" | "multi", run = fn } to
-- `rows` below. fn(ctx) makes requests until ctx.deadline (a core.monotime
-- value) and returns how many it made; ctx has workload ("small", "page",
-- "pageN" for a page of N campaigns (SDK rows only) or "leads"), method,
-- url, base (scheme://host:port), path, body (string or nil), headers (the
-- request headers every row sends) and inflight. In slice mode fn is
-- called once per slice with the same ctx (a new ctx.deadline each time,
-- and ctx.limit: stop after that many requests, math.huge when timed).
-- A row that should keep its session or client from one slice to the next
-- gives `start = function(ctx) ... return loop end` instead of run, where
-- loop(deadline, limit) makes requests until the deadline or the limit and
-- returns how many; every row below does, so that set-up stays out of the
-- slices. Optional `available = function() return bool, why end` skips
-- the row (printed as skipped) when a module it needs is missing. The
-- shell script picks up new rows by itself.
local core = require "instantly.core"

local rows = {}

local function expect(status, body)
  if status ~= 200 then
    error(("status %s: %s"):format(tostring(status), tostring(body)), 2)
  end
end

-- session:request in a loop: the transport alone.
rows[#rows + 1] = { name = "core_request", kind = "seq", start = function(ctx)
  local s = core.session()
  local req = { method = ctx.method, url = ctx.url, headers = ctx.headers, body = ctx.body }
  local monotime = core.monotime
  return function(deadline, limit)
    local n = 0
    while n < limit and monotime() < deadline do
      expect(s:request(req))
      n = n + 1
    end
    return n
  end, function() s:close() end
end }

-- The same with the JSON work an API call does: the request body (if any)
-- encoded from a table on every request, each response decoded. This is
-- the fair comparison for sdk_client, which also encodes its body per call.
rows[#rows + 1] = { name = "core_request+json", kind = "seq",
  available = function() return core.json_decode ~= nil, "core.json_decode missing" end,
  start = function(ctx)
    local s = core.session()
    local req = { method = ctx.method, url = ctx.url, headers = ctx.headers, body = ctx.body }
    local monotime, decode, encode = core.monotime, core.json_decode, core.json_encode
    local value = ctx.body and assert(decode(ctx.body))
    return function(deadline, limit)
      local n = 0
      while n < limit and monotime() < deadline do
        if value then req.body = encode(value) end
        local status, body = s:request(req)
        expect(status, body)
        assert(decode(body))
        n = n + 1
      end
      return n
    end, function() s:close() end
  end }

-- submit/poll keeping ctx.inflight transfers going.
rows[#rows + 1] = { name = "core_submit_poll", kind = "multi", start = function(ctx)
  local s = core.session()
  local req = { method = ctx.method, url = ctx.url, headers = ctx.headers, body = ctx.body }
  local monotime = core.monotime
  return function(deadline, limit)
    local n, started = 0, 0
    while started < ctx.inflight and started < limit do
      s:submit(req)
      started = started + 1
    end
    while s:pending() > 0 do
      for _, r in ipairs(s:poll(1)) do
        expect(r.status, r.body or r.err)
        n = n + 1
        if started < limit and monotime() < deadline then
          s:submit(req)
          started = started + 1
        end
      end
    end
    return n
  end, function() s:close() end
end }

-- What Lua users write today: LuaSocket's socket.http and lua-cjson
-- (a new connection per request: socket.http has no keep-alive).
rows[#rows + 1] = { name = "luasocket+cjson", kind = "seq",
  available = function()
    local ok = pcall(require, "socket.http") and pcall(require, "cjson")
    return ok, "lua-socket or lua-cjson missing"
  end,
  start = function(ctx)
    local http, ltn12, cjson, socket = require "socket.http", require "ltn12", require "cjson", require "socket"
    local headers = {}
    for k, v in pairs(ctx.headers) do headers[k] = v end
    local value = ctx.body and cjson.decode(ctx.body) -- encoded again per request, like an API call
    return function(deadline, limit)
      local n = 0
      deadline = deadline - core.monotime() + socket.gettime()
      while n < limit and socket.gettime() < deadline do
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
    end
  end }

-- The SDK call a workload makes: client.workspaces:get(), a page of
-- campaigns or add_many of the leads body.
local function sdk_call(ctx, client)
  if ctx.workload == "small" then
    return function() return client.workspaces:get() end
  elseif ctx.workload:match("^page") then
    -- pageN: the server answers a page of N items (the API caps limit
    -- at 100; bench/20-transport.sh picks the file by this header).
    local n = ctx.workload:match("^page(%d+)$")
    local opts = n and { headers = { ["x-bench-page"] = n } } or nil
    return function() return client.campaigns:list({ limit = 100 }, opts) end
  end
  local params = assert(core.json_decode(ctx.body))
  return function() return client.leads:add_many(params) end
end

local function sdk_available()
  local ok, err = pcall(require, "instantly")
  return ok, "instantly: " .. tostring(err)
end

-- The SDK itself: instantly.new{...} and the generated methods, i.e.
-- argument checks, URL and headers, the pipeline, JSON decoding and records
-- (the client's rate limiter is off: it would pace the loop to 100/s).
rows[#rows + 1] = { name = "sdk_client", kind = "seq", available = sdk_available, start = function(ctx)
  local instantly = require "instantly"
  local client = instantly.new{ api_key = "bench-key", base_url = ctx.base, rate_limit = false, max_retries = 0 }
  local call, monotime = sdk_call(ctx, client), core.monotime
  return function(deadline, limit)
    local n = 0
    while n < limit and monotime() < deadline do
      local v, err = call()
      if not v then error(tostring(err)) end
      n = n + 1
    end
    return n
  end, function() client:close() end
end }

-- The SDK with ctx.inflight calls in flight: client:gather over a stream
-- of tasks, each one ordinary generated method call (compared with the C
-- multi loop at the same number in flight).
rows[#rows + 1] = { name = "sdk_gather", kind = "multi", available = sdk_available, start = function(ctx)
  local instantly = require "instantly"
  local client = instantly.new{ api_key = "bench-key", base_url = ctx.base, rate_limit = false, max_retries = 0 }
  local call, monotime = sdk_call(ctx, client), core.monotime
  return function(deadline, limit)
    local n, started = 0, 0
    local failed = client:gather(function()
      if started < limit and monotime() < deadline then
        started = started + 1
        return call
      end
    end, { concurrency = ctx.inflight, on_result = function(_, v, err)
      if not v then error(tostring(err)) end
      n = n + 1
    end })
    assert(failed == 0)
    return n
  end, function() client:close() end
end }

local M = { rows = rows }

-- The row's loop(deadline, limit) and its close function (or nil).
local function open(row, ctx)
  if row.start then return row.start(ctx) end
  return function(deadline, limit)
    ctx.deadline, ctx.limit = deadline, limit
    return row.run(ctx)
  end
end

-- Slice mode: one slice per command on stdin.
local function serve(loop)
  local monotime, clock, huge = core.monotime, os.clock, math.huge
  for line in io.stdin:lines() do
    local cmd, v = line:match("^%s*(%a)%s*(%S*)")
    if cmd == "q" then break end
    v = tonumber(v)
    if not ((cmd == "t" or cmd == "n") and v and v >= 0) then error("lua_rows: bad command: " .. line) end
    local start, cpu = monotime(), clock()
    local n
    if cmd == "t" then n = loop(start + v, huge) else n = loop(huge, v) end
    io.stdout:write(n, " ", ("%.6f %.6f"):format(monotime() - start, clock() - cpu), "\n")
    io.stdout:flush()
  end
end

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
  local ctx = { workload = workload, method = method, url = url, base = base, path = path, body = body,
    headers = headers, inflight = tonumber(inflight) or 4 }
  if seconds == "serve" then
    local loop, close = open(row, ctx)
    serve(loop)
    if close then close() end
  else
    local start, cpu = core.monotime(), os.clock()
    local loop, close = open(row, ctx)
    local n = loop(start + assert(tonumber(seconds), "SECONDS: a number or serve"), math.huge)
    if close then close() end
    io.write(n, " ", ("%.6f %.6f"):format(core.monotime() - start, os.clock() - cpu), "\n")
  end
end

return M
