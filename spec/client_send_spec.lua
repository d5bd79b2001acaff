-- The short way of pipeline.send: a client with a core session, no
-- client-side rate limit and no request hooks sends a call without body
-- or options through one request table it keeps. What the core sees must
-- be exactly what the long way would send: the sender's timeouts (or the
-- call's own), a body only with the call that has one (also after a
-- request that raised), and failures judged and retried as always.
local H = require "support.client_helper"
local core = require "instantly.core"

local srv

H.mock_fixture({ rate_limits = false }, function(s)
  srv = s
end)

-- Runs fn with every core session's request method wrapped: each request
-- table is copied (its fields as the core reads them) into `seen` before
-- the real call; `raise(req)` may raise instead (a failure inside the
-- core). The method is restored whatever happens.
local function watching(fn, raise)
  local idx = debug.getmetatable(core.session()).__index
  local real = idx.request
  local seen = {}
  idx.request = function(s, req)
    local copy = {}
    for k, v in pairs(req) do copy[k] = v end
    seen[#seen + 1] = copy
    if raise then raise(req) end
    return real(s, req)
  end
  local ok, err = pcall(fn, seen)
  idx.request = real
  assert(ok, err)
  return seen
end

local function count(method, path) return H.count(srv, method, path) end

-- A client of a loopback port nobody listens on (bound, then closed),
-- retrying once, quickly.
local function refused_client()
  local s = assert(require("socket").bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return require("instantly").new { api_key = "spec-key-0123456789", base_url = "http://127.0.0.1:" .. port,
    rate_limit = false, max_retries = 1, retry = { base = 0.001, cap = 0.002 } }
end

describe("the short way of a call", function()
  it("sends the sender's timeouts, the call's own when it has them, and a body only with its call", function()
    local c = H.mock_client(srv, { rate_limit = false, timeout = 7, connect_timeout = 3 })
    local seen = watching(function()
      assert(c.workspaces:get())
      assert(c.workspaces:get { timeout = 1.5 })
      assert(c.workspaces:get())
      assert(c.campaigns:create { name = "short way", campaign_schedule = {
        schedules = { { name = "s", timing = { from = "09:00", to = "17:00" },
                        days = { ["1"] = true }, timezone = "America/Chicago" } } } })
      assert(c.workspaces:get())
      assert(c.workspaces:get { connect_timeout = 0.5 })
      assert(c.workspaces:get())
    end)
    assert.equal(7, #seen)
    local want = {
      { "GET", 7, 3, false }, { "GET", 1.5, 3, false }, { "GET", 7, 3, false },
      { "POST", 7, 3, true }, { "GET", 7, 3, false }, { "GET", 7, 0.5, false }, { "GET", 7, 3, false },
    }
    for i, w in ipairs(want) do
      local r = seen[i]
      assert.equal(w[1], r.method, "request " .. i)
      assert.equal(w[2], r.timeout, "request " .. i)
      assert.equal(w[3], r.connect_timeout, "request " .. i)
      assert.equal(w[4], r.body ~= nil, "request " .. i)
      assert.is_true(r.raw_headers, "request " .. i)
    end
    c:close()
  end)

  it("has the core decode the answer, with the operation's decoder, only on the short way", function()
    local c = H.mock_client(srv, { rate_limit = false })
    local record = require "instantly.request.record"
    local seen = watching(function()
      local ws = assert(c.workspaces:get())
      assert.is_string(ws.id)
      assert.is_not_nil(getmetatable(ws)) -- a record
      assert(c.workspaces:get { timeout = 2 })
    end)
    assert.equal(record.decode, seen[1].decode)
    assert.is_nil(seen[2].decode) -- the long way decodes the text itself
    c:close()
  end)

  it("gives a custom scheduler the decoded answer; one that passes on only three values still works", function()
    local c = H.mock_client(srv, { rate_limit = false })
    local pipeline = require "instantly.request.pipeline"
    local function through(sched)
      local co = coroutine.create(function() return c.workspaces:get() end)
      pipeline.attach(co, sched)
      local ok, ws, status = coroutine.resume(co)
      pipeline.attach(co, nil)
      assert.is_true(ok, tostring(ws))
      assert.equal(200, status)
      assert.is_string(ws.id)
      assert.is_not_nil(getmetatable(ws))
    end
    local n = {}
    through { request = function(_, session, req)
      n[#n + 1] = select("#", session:request(req))
      return session:request(req)
    end, sleep = function() end }
    assert.same({ 4 }, n)
    through { request = function(_, session, req)
      local status, value, headers = session:request(req)
      return status, value, headers
    end, sleep = function() end }
    c:close()
  end)

  it("serves client:request (the escape hatch) the same way, with and without a body", function()
    local c = H.mock_client(srv, { rate_limit = false, timeout = 6 })
    local seen = watching(function()
      local ws = assert(c:request("GET", "/workspaces/current"))
      assert.is_string(ws.id)
      assert(c:request("POST", "/campaigns", { body = { name = "hatch", campaign_schedule = {
        schedules = { { name = "s", timing = { from = "09:00", to = "17:00" },
                        days = { ["1"] = true }, timezone = "America/Chicago" } } } } }, { max_retries = 0 }))
      assert(c:request("GET", "/workspaces/current"))
    end)
    assert.equal(3, #seen)
    assert.is_nil(seen[1].body)
    assert.is_string(seen[2].body)
    assert.is_nil(seen[3].body)
    for i = 1, 3 do assert.equal(6, seen[i].timeout, "request " .. i) end
    c:close()
  end)

  it("leaves the timeouts to the session when the client has none", function()
    local c = H.mock_client(srv, { rate_limit = false })
    local seen = watching(function()
      assert(c.workspaces:get { timeout = 2 })
      assert(c.workspaces:get())
    end)
    assert.equal(2, seen[1].timeout)
    assert.is_nil(seen[2].timeout)
    assert.is_nil(seen[2].connect_timeout)
    c:close()
  end)

  it("sends no stale body after a request with a body raised inside the core", function()
    local c = H.mock_client(srv, { rate_limit = false, max_retries = 0 })
    local seen = watching(function()
      local ok, err = pcall(c.campaigns.create, c.campaigns, { name = "boom", campaign_schedule = {
        schedules = { { name = "s", timing = { from = "09:00", to = "17:00" },
                        days = { ["1"] = true }, timezone = "America/Chicago" } } } })
      assert.is_false(ok)
      assert.matches("core failed", tostring(err))
      local ws = assert(c.workspaces:get())
      assert.is_string(ws.id)
    end, function(req)
      if req.body then error("core failed") end
    end)
    assert.equal(2, #seen)
    assert.is_string(seen[1].body)
    assert.equal("GET", seen[2].method)
    assert.is_nil(seen[2].body)
    c:close()
  end)

  it("retries a GET through 503s (the first answer came the short way)", function()
    local c = H.mock_client(srv, { rate_limit = false, max_retries = 2 })
    srv:fault { method = "GET", path = "/workspaces/current", status = 503, count = 2 }
    local ws, status, h = c.workspaces:get()
    assert.is_table(ws)
    assert.equal(200, status)
    assert.is_string(h["content-type"])
    assert.equal(3, count("GET", "/api/v2/workspaces/current"))
    c:close()
  end)

  it("gives an HTTP failure out of retries as an error with plain headers and attempts", function()
    local c = H.mock_client(srv, { rate_limit = false, max_retries = 1 })
    srv:fault { method = "GET", path = "/workspaces/current", status = 503, count = 5 }
    local v, err = c.workspaces:get()
    assert.is_nil(v)
    assert.equal("http", err.kind)
    assert.equal(503, err.status)
    assert.equal(2, err.attempts)
    assert.is_table(err.headers)
    assert.is_nil(getmetatable(err.headers))
    assert.equal(2, count("GET", "/api/v2/workspaces/current"))
    c:close()
  end)

  it("gives a refused connection as a transport error after its retries", function()
    local c = refused_client()
    local v, err = c.workspaces:get()
    assert.is_nil(v)
    assert.equal("transport", err.kind)
    assert.equal("connect", err.transport_kind)
    assert.equal(2, err.attempts)
    c:close()
  end)

  it("gives the same answers inside gather (a scheduler) and after it", function()
    local c = H.mock_client(srv, { rate_limit = false, timeout = 9 })
    local before = assert(c.workspaces:get())
    local tasks = {}
    for i = 1, 6 do tasks[i] = function() return c.workspaces:get() end end
    local seen
    seen = watching(function()
      local values, _, failed = c:gather(tasks, { concurrency = 3 })
      assert.equal(0, failed)
      for i = 1, 6 do
        assert.equal(before.id, values[i].id)
        assert.equal(getmetatable(before), getmetatable(values[i]))
      end
      local after, status, h = c.workspaces:get()
      assert.equal(before.id, after.id)
      assert.equal(200, status)
      assert.is_string(h["content-type"])
    end)
    assert.equal(1, #seen) -- gather submits through the session, not request
    assert.equal(9, seen[1].timeout)
    c:close()
  end)

  it("is not taken with hooks or a rate limit: they see every attempt", function()
    local got = {}
    local c = H.mock_client(srv, { rate_limit = false, max_retries = 1,
      on_request = function(r) got[#got + 1] = r.attempt end })
    srv:fault { method = "GET", path = "/workspaces/current", status = 503, count = 1 }
    assert(c.workspaces:get())
    assert.same({ 1, 2 }, got)
    c:close()
  end)
end)

-- Counts the times pipeline.send or pipeline.attempts (the ways other
-- than the builder's short way) are entered while fn runs: in the calling
-- coroutine, and in a gathered task wrapped by `counted` (a hook set with
-- debug.sethook belongs to one coroutine).
local function pipeline_calls(fn)
  local pipeline = require "instantly.request.pipeline"
  local n = 0
  local function hook()
    local f = debug.getinfo(2, "f").func
    if f == pipeline.send or f == pipeline.attempts then n = n + 1 end
  end
  local function counted(task)
    return function()
      debug.sethook(coroutine.running(), hook, "c")
      return task()
    end
  end
  debug.sethook(hook, "c")
  local ok, err = pcall(fn, counted)
  debug.sethook()
  assert(ok, err)
  return n
end

describe("the short way inside gather", function()
  local pipeline = require "instantly.request.pipeline"
  local ids

  setup(function()
    local c = H.mock_client(srv, { rate_limit = false })
    ids = {}
    for i, it in ipairs(assert(c.campaigns:list { limit = 4 }).items) do ids[i] = it.id end
    c:close()
  end)

  it("is taken by every gathered call that succeeds, and by the calls after gather", function()
    local c = H.mock_client(srv, { rate_limit = false, max_retries = 1 })
    local tasks = {}
    assert.equal(0, pipeline_calls(function(counted)
      for i = 1, 8 do tasks[i] = counted(function() return c.workspaces:get() end) end
      local _, errs, failed = c:gather(tasks, { concurrency = 4 })
      assert.equal(0, failed, tostring((select(2, next(errs)))))
      assert(c.workspaces:get())
    end))
    assert.is_false(pipeline.attached.map)
    -- (the control: a failed first answer is judged the long way)
    srv:fault { method = "GET", path = "/workspaces/current", status = 503, count = 1 }
    assert.is_true(pipeline_calls(function(counted)
      for i = 1, 8 do tasks[i] = counted(function() return c.workspaces:get() end) end
      local values, _, failed = c:gather(tasks, { concurrency = 4 })
      assert.equal(0, failed)
      assert.equal(8, #values)
    end) > 0)
    c:close()
  end)

  it("hands each of several calls in flight at once, on different paths of one client, its own answer", function()
    local c = H.mock_client(srv, { rate_limit = false })
    -- the first calls are held, so the later ones refill the client's
    -- request table while they are in flight
    srv:fault { method = "GET", path = "/campaigns/" .. ids[1], delay = 0.2, count = 1 }
    srv:fault { method = "GET", path = "/workspaces/current", delay = 0.1, count = 1 }
    local ws = assert(c.workspaces:get())
    local tasks, want = {}, {}
    for i = 1, 12 do
      if i % 3 == 0 then
        tasks[i] = function() return c.workspaces:get() end
        want[i] = ws.id
      else
        local id = ids[(i - 1) % #ids + 1]
        tasks[i] = function() return c.campaigns:get(id) end
        want[i] = id
      end
    end
    local values, errs, failed = c:gather(tasks, { concurrency = 6 })
    assert.equal(0, failed, tostring((select(2, next(errs)))))
    for i = 1, 12 do assert.equal(want[i], values[i].id) end
    c:close()
  end)

  it("retries a 503 and a 429 inside gather, as outside", function()
    local c = H.mock_client(srv, { rate_limit = false, max_retries = 2 })
    srv:fault { method = "GET", path = "/workspaces/current", status = 503, count = 1 }
    srv:fault { method = "GET", path = "/campaigns/" .. ids[1], status = 429, count = 2 }
    local values, errs, failed = c:gather({
      function() return c.workspaces:get() end,
      function() return c.campaigns:get(ids[1]) end,
    }, { concurrency = 2 })
    assert.equal(0, failed, tostring((select(2, next(errs)))))
    assert.is_string(values[1].id)
    assert.equal(ids[1], values[2].id)
    assert.equal(2, count("GET", "/api/v2/workspaces/current"))
    assert.equal(3, count("GET", "/api/v2/campaigns/" .. ids[1]))
    -- out of retries: the error the long way gives
    srv:fault { method = "GET", path = "/workspaces/current", status = 503, count = 5 }
    local _, errs2 = c:gather({ function() return c.workspaces:get() end })
    assert.equal("http", errs2[1].kind)
    assert.equal(503, errs2[1].status)
    assert.equal(3, errs2[1].attempts)
    assert.equal(1, errs2[1].task)
    assert.is_nil(getmetatable(errs2[1].headers))
    c:close()
  end)

  it("gives a refused connection inside gather as a transport error after its retries", function()
    local c = refused_client()
    local _, errs, failed = c:gather({
      function() return c.workspaces:get() end,
      function() return c.workspaces:get() end,
    })
    assert.equal(2, failed)
    for i = 1, 2 do
      assert.equal("transport", errs[i].kind)
      assert.equal("connect", errs[i].transport_kind)
      assert.equal(2, errs[i].attempts)
    end
    c:close()
  end)

  it("is not taken with hooks or a rate limit inside gather: they see every attempt", function()
    local got = {}
    local c = H.mock_client(srv, { rate_limit = false, max_retries = 1,
      on_request = function(r) got[#got + 1] = r.path .. "#" .. r.attempt end })
    srv:fault { method = "GET", path = "/workspaces/current", status = 503, count = 1 }
    local _, _, failed = c:gather({ function() return c.workspaces:get() end })
    assert.equal(0, failed)
    assert.same({ "/api/v2/workspaces/current#1", "/api/v2/workspaces/current#2" }, got)
    c:close()
    local limited = H.mock_client(srv, { rate_limit = { per_second = 50, per_minute = 1000 } })
    assert.is_true(pipeline_calls(function(counted)
      local _, _, f = limited:gather({ counted(function() return limited.workspaces:get() end) })
      assert.equal(0, f)
    end) > 0)
    limited:close()
  end)

  it("forgets its workers when gather ends, however it ends", function()
    local c = H.mock_client(srv, { rate_limit = false })
    local seen
    c:gather({ function()
      seen = pipeline.attached.map
      return c:gather({ function() return c.workspaces:get() end })
    end })
    assert.is_table(seen)
    assert.is_false(pipeline.attached.map)
    assert.has_error(function()
      c:gather({ function() return c.workspaces:get() end, function() return c.workspaces:get() end },
        { on_result = function() error("stop") end })
    end)
    assert.is_false(pipeline.attached.map)
    local _, errs = c:gather({ function() error("boom") end, function() coroutine.yield() end })
    assert.equal("task", errs[1].kind)
    assert.equal("task", errs[2].kind)
    assert.is_false(pipeline.attached.map)
    c:close()
  end)
end)
