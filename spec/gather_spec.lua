-- client:gather: concurrent SDK calls over the core's multi interface.
-- Overlap and the rate limiter are proven from the mock's request log:
-- arrival times the server recorded, compared with what causality forces
-- (a held response cannot arrive before its delay), never with our clock.
local instantly = require "instantly"
local mock = require "instantly.mock"
local gather = require "instantly.workflows.gather"

local function new_client(srv, opts)
  local o = { api_key = srv.api_key, base_url = srv.url, rate_limit = false, retry = { base = 0.01, cap = 0.02 } }
  for k, v in pairs(opts or {}) do o[k] = v end
  return instantly.new(o)
end

-- Log entries whose path contains `text` (plain text, not a pattern).
-- An on_result that logs "result <key>" in events and keeps {v =, e =}
-- by key in into.
local function recorder(events, into)
  return function(k, v, e)
    events[#events + 1] = "result " .. k
    into[k] = { v = v, e = e }
  end
end

local function by_path(log, text)
  local out = {}
  for _, r in ipairs(log) do
    if r.path:find(text, 1, true) then out[#out + 1] = r end
  end
  return out
end

describe("client:gather", function()
  local srv, client, campaigns

  setup(function()
    srv = assert(mock.start { seed = 1, rate_limits = false })
    client = new_client(srv)
    campaigns = assert(client.campaigns:list { limit = 10 }).items
    assert.is_true(#campaigns >= 4)
  end)

  teardown(function()
    srv:stop()
  end)

  before_each(function()
    srv:clear_faults()
    srv:clear_requests()
  end)

  it("returns results in task order, each value or nil, err", function()
    -- Later tasks finish first: the early ones are held back by the mock.
    srv:fault { method = "GET", path = "/campaigns/" .. campaigns[1].id, delay = 0.3 }
    srv:fault { method = "GET", path = "/campaigns/" .. campaigns[2].id, delay = 0.15 }
    local tasks = {}
    for i = 1, 4 do
      tasks[i] = function() return client.campaigns:get(campaigns[i].id) end
    end
    tasks[5] = function() return client.campaigns:get("00000000-0000-4000-8000-000000000000") end
    tasks[6] = function() error("task blew up") end
    tasks[7] = function() return nil end
    local values, errs, failed = client:gather(tasks, { concurrency = 8 })
    for i = 1, 4 do
      assert.equal(campaigns[i].id, values[i].id)
      assert.is_nil(errs[i])
    end
    assert.is_nil(values[5])
    assert.is_true(instantly.is_error(errs[5]))
    assert.equal(404, errs[5].status)
    assert.is_nil(values[6])
    assert.equal("task", errs[6].kind)
    assert.matches("task 6 raised: .*task blew up", errs[6].message)
    assert.matches("task blew up", errs[6].traceback)
    assert.is_nil(values[7])
    assert.is_nil(errs[7])
    assert.equal(2, failed)
    -- records keep their methods inside gather
    assert.is_function(values[1].activate)
  end)

  it("keeps up to `concurrency` requests in flight, and no more", function()
    local D = 1.0
    srv:fault { method = "GET", path = "/campaigns/{id}", delay = D, count = 6 }
    local tasks = {}
    for i = 1, 6 do
      local id = campaigns[(i - 1) % 4 + 1].id
      tasks[i] = function() return client.campaigns:get(id) end
    end
    local values, _, failed = client:gather(tasks, { concurrency = 3 })
    assert.equal(0, failed)
    assert.equal(6, #values)
    local log = by_path(srv:requests(), "/api/v2/campaigns/")
    assert.equal(6, #log)
    table.sort(log, function(a, b) return a.time < b.time end)
    -- Three arrived while the first was still held: they overlapped.
    assert.is_true(log[3].time - log[1].time < D, "requests 1-3 did not overlap")
    -- The fourth waited for a free slot, i.e. for a response, which the
    -- server could not send before D had passed.
    assert.is_true(log[4].time - log[1].time >= D * 0.95, "a fourth request went out early")
  end)

  it("runs the same calls one at a time with concurrency 1", function()
    local D = 0.2
    srv:fault { method = "GET", path = "/campaigns/{id}", delay = D, count = 3 }
    local tasks = {}
    for i = 1, 3 do tasks[i] = function() return client.campaigns:get(campaigns[i].id) end end
    local _, _, failed = client:gather(tasks, { concurrency = 1 })
    assert.equal(0, failed)
    local log = by_path(srv:requests(), "/api/v2/campaigns/")
    for i = 2, 3 do assert.is_true(log[i].time - log[i - 1].time >= D * 0.95) end
  end)

  it("retries inside tasks exactly as outside", function()
    srv:fault { method = "GET", path = "/campaigns/" .. campaigns[2].id, status = 503, count = 2 }
    local values, errs = client:gather {
      function() return client.campaigns:get(campaigns[1].id) end,
      function() return client.campaigns:get(campaigns[2].id) end,
    }
    assert.is_nil(errs[2])
    assert.equal(campaigns[2].id, values[2].id)
    assert.equal(3, #by_path(srv:requests(), campaigns[2].id))
  end)

  it("holds the client's rate limit across concurrent tasks", function()
    local limited = new_client(srv, { rate_limit = { per_second = 4 } })
    local tasks = {}
    for i = 1, 10 do tasks[i] = function() return limited.campaigns:get(campaigns[(i - 1) % 4 + 1].id) end end
    local _, _, failed = limited:gather(tasks, { concurrency = 10 })
    assert.equal(0, failed)
    local log = by_path(srv:requests(), "/api/v2/campaigns/")
    assert.equal(10, #log)
    table.sort(log, function(a, b) return a.time < b.time end)
    -- No five requests within one second: the limiter sends request k+4
    -- at least 1.05 s after request k; arrival jitter on a loaded machine
    -- may eat some of that. Without the limiter all ten arrive within a
    -- few milliseconds.
    for k = 1, #log - 4 do
      assert.is_true(log[k + 4].time - log[k].time >= 0.75, "5 requests within a second at " .. k)
    end
    assert.is_true(log[10].time - log[1].time >= 1.5)
  end)

  it("wakes a sleeping task and starts a nested gather while another task keeps a transfer in flight", function()
    -- The ticker holds one transfer in flight from start to end (each of
    -- its 12 calls is held 0.05 s by the mock). The other task sleeps
    -- (a retry's backoff, at most 0.02 s), then gathers two calls and
    -- makes one more: all of that must reach the server while the
    -- ticker is still going, not wait for its transfers to run out.
    local tick, other = campaigns[1].id, campaigns[2].id
    srv:fault { method = "GET", path = "/campaigns/" .. tick, delay = 0.05, count = 12 }
    srv:fault { method = "GET", path = "/campaigns/" .. other, status = 503, count = 1 }
    local values, errs, failed = client:gather {
      function()
        for _ = 1, 12 do assert(client.campaigns:get(tick)) end
        return true
      end,
      function()
        assert(client.campaigns:get(other)) -- a 503, a sleep, the retry
        local v = client:gather {
          function() return client.campaigns:get(campaigns[3].id) end,
          function() return client.campaigns:get(campaigns[4].id) end,
        }
        assert(v[1] and v[2])
        return client.campaigns:get(other)
      end,
    }
    assert.equal(0, failed, tostring((select(2, next(errs)))))
    assert.equal(other, values[2].id)
    local last_tick, last_other = 0, 0
    for i, r in ipairs(srv:requests()) do
      if r.path:find(tick, 1, true) then last_tick = i end
      if r.path:find(other, 1, true) or r.path:find(campaigns[3].id, 1, true) then last_other = i end
    end
    assert.equal(12 + 3 + 2, #srv:requests())
    assert.is_true(last_other < last_tick, "the sleeper and the nested gather waited for the ticker")
  end)

  it("runs nested gathers on the same loop", function()
    local values, errs = client:gather {
      function()
        local v = client:gather {
          function() return client.campaigns:get(campaigns[1].id) end,
          function() return client.campaigns:get(campaigns[2].id) end,
        }
        return v[1].name .. " + " .. v[2].name
      end,
      function() return client.campaigns:get(campaigns[3].id) end,
    }
    assert.is_nil(errs[1])
    assert.equal(campaigns[1].name .. " + " .. campaigns[2].name, values[1])
    assert.equal(campaigns[3].id, values[2].id)
  end)

  it("takes tasks from an iterator and reports through on_result", function()
    local n, made = 0, 0
    local seen = {}
    local failed = client:gather(function()
      if made == 12 then return nil end
      made = made + 1
      local id = campaigns[(made - 1) % 4 + 1].id
      return function() return client.campaigns:get(id) end
    end, {
      concurrency = 3,
      on_result = function(i, v, e)
        n = n + 1
        assert.is_nil(e)
        seen[i] = v.id
      end,
    })
    assert.equal(0, failed)
    assert.equal(12, n)
    for i = 1, 12 do assert.equal(campaigns[(i - 1) % 4 + 1].id, seen[i]) end
  end)

  it("stops calling a stream once it ends, and fails the loop naming a non-function it gives", function()
    local calls, made = 0, 0
    local got = {}
    local failed = client:gather(function()
      calls = calls + 1
      if made < 5 then
        made = made + 1
        local id = campaigns[(made - 1) % 4 + 1].id
        return function() return client.campaigns:get(id) end
      end
    end, { concurrency = 2, on_result = function(k, v) got[k] = v.id end })
    assert.equal(0, failed)
    assert.equal(6, calls) -- five tasks and the nil, never again
    for i = 1, 5 do assert.equal(campaigns[(i - 1) % 4 + 1].id, got[i]) end
    made = 0
    local session <close> = require("instantly.core").session()
    local c = new_client(srv, { transport = session })
    assert.has_error(function()
      c:gather(function()
        made = made + 1
        if made == 4 then return "four" end
        return function() return c.campaigns:get(campaigns[1].id) end
      end, { concurrency = 2, on_result = function() end })
    end, "instantly: gather: task 4 is a string, not a function")
    assert.equal(0, session:pending())
  end)

  it("hands each of many tasks answered together its own answer", function()
    local session <close> = require("instantly.core").session()
    local c = new_client(srv, { transport = session })
    local tasks = {}
    for i = 1, 24 do
      local id = campaigns[(i - 1) % #campaigns + 1].id
      tasks[i] = function()
        local a = assert(c.campaigns:get(id))
        local b = assert(c.campaigns:get(id)) -- a second request from the same task
        return a.id .. "/" .. b.id
      end
    end
    local values, errs, failed = c:gather(tasks, { concurrency = 8 })
    assert.equal(0, failed, tostring((select(2, next(errs)))))
    for i = 1, 24 do
      local id = campaigns[(i - 1) % #campaigns + 1].id
      assert.equal(id .. "/" .. id, values[i])
    end
    assert.equal(0, session:pending())
  end)

  it("reports a task that raises while others are in flight, and the others still finish", function()
    srv:fault { method = "GET", path = "/campaigns/" .. campaigns[2].id, delay = 0.3 }
    srv:fault { method = "GET", path = "/campaigns/" .. campaigns[3].id, delay = 0.3 }
    local events = {}
    local tasks = {
      function()
        local _ <close> = setmetatable({}, { __close = function() events[#events + 1] = "closed 1" end })
        local v = assert(client.campaigns:get(campaigns[1].id))
        error("after " .. v.id, 0)
      end,
      function() return client.campaigns:get(campaigns[2].id) end,
      function() return client.campaigns:get(campaigns[3].id) end,
      function() return client.campaigns:get(campaigns[4].id) end,
    }
    local results = {}
    local failed = client:gather(tasks, { concurrency = 3, on_result = recorder(events, results) })
    assert.equal(1, failed)
    -- task 1 failed first (2 and 3 were still held), its __close ran before
    -- its result, and a fresh worker ran task 4 meanwhile
    assert.same({ "closed 1", "result 1" }, { events[1], events[2] })
    assert.equal("task", results[1].e.kind)
    assert.equal("task 1 raised: after " .. campaigns[1].id, results[1].e.message)
    assert.matches("after", results[1].e.traceback)
    for i = 2, 4 do assert.equal(campaigns[i].id, results[i].v.id) end
    assert.equal(5, #events)
  end)

  it("keeps the loop's answers from a gather run in a raising task's __close", function()
    -- The __close runs outside the loop, so its gather is a loop of its
    -- own on the same session, while the outer tasks' transfers are in
    -- flight (they are answered while it waits for its own): each loop
    -- must get its own answers.
    srv:fault { method = "GET", path = "/campaigns/" .. campaigns[2].id, delay = 0.1 }
    srv:fault { method = "GET", path = "/campaigns/" .. campaigns[3].id, delay = 0.1 }
    srv:fault { method = "GET", path = "/campaigns/" .. campaigns[4].id, delay = 0.5 }
    local inner
    -- (a loop that lost its answers would spin for ever: a count hook
    -- turns that into a failure)
    local hook = table.pack(debug.gethook())
    debug.sethook(function() error("gather: runaway loop", 0) end, "", 200000000)
    local ok, values, errs, failed = pcall(client.gather, client, {
      function()
        local _ <close> = setmetatable({}, { __close = function()
          inner = client:gather {
            function() return client.campaigns:get(campaigns[4].id) end,
            function() return client.campaigns:get(campaigns[1].id) end,
          }
        end })
        assert(client.campaigns:get(campaigns[1].id)) -- (2 and 3 are in flight by now)
        error("boom", 0)
      end,
      function() return client.campaigns:get(campaigns[2].id) end,
      function() return client.campaigns:get(campaigns[3].id) end,
    }, { concurrency = 3 })
    debug.sethook(table.unpack(hook, 1, hook.n))
    assert(ok, values)
    assert.equal(1, failed)
    assert.equal("task 1 raised: boom", errs[1].message)
    assert.equal(campaigns[4].id, inner[1].id)
    assert.equal(campaigns[1].id, inner[2].id)
    assert.equal(campaigns[2].id, values[2].id)
    assert.equal(campaigns[3].id, values[3].id)
  end)

  it("returns the error an iterator ended with as the task's error", function()
    srv:fault { method = "POST", path = "/leads/list", status = 400, count = 1 }
    local values, errs, failed = client:gather {
      function()
        local n = 0
        local it = client.leads:each { campaign = campaigns[1].id }
        for _ in it do n = n + 1 end
        if it.err then return nil, it.err end
        return n
      end,
    }
    assert.equal(1, failed)
    assert.is_nil(values[1])
    assert.is_true(instantly.is_error(errs[1]))
    assert.equal(400, errs[1].status)
  end)

  it("fails a task that yields on its own, not the others", function()
    local values, errs, failed = client:gather {
      function() coroutine.yield("mine") end,
      function() return client.campaigns:get(campaigns[1].id) end,
    }
    assert.equal(1, failed)
    assert.equal("task", errs[1].kind)
    assert.matches("yielded outside the SDK", errs[1].message)
    assert.equal(campaigns[1].id, values[2].id)
  end)

  it("cancels transfers in flight when on_result raises", function()
    srv:fault { method = "GET", path = "/campaigns/{id}", delay = 0.5, count = 3 }
    local tasks = {}
    tasks[1] = function() return 1 end
    for i = 2, 4 do tasks[i] = function() return client.campaigns:get(campaigns[i].id) end end
    -- The session is injected so that the spec can count its transfers.
    local session <close> = require("instantly.core").session()
    local c = new_client(srv, { transport = session })
    for i = 2, 4 do tasks[i] = function() return c.campaigns:get(campaigns[i].id) end end
    assert.has_error(function()
      client:gather(tasks, { on_result = function(i) if i == 1 then error("stop here", 0) end end })
    end, "stop here")
    assert.equal(0, session:pending())
    -- the client is still usable afterwards
    assert.equal(campaigns[1].id, assert(c.campaigns:get(campaigns[1].id)).id)
  end)

  it("overlaps the calls of several clients, each with its own session", function()
    -- Each response is held 0.4 s. If the second client's calls ran one
    -- after the other, its second request could not arrive before its
    -- first response, 0.4 s after the first arrival.
    srv:fault { method = "GET", path = "/campaigns/{id}", delay = 0.4, count = 4 }
    local a, b = new_client(srv), new_client(srv)
    local values, errs, failed = a:gather {
      a1 = function() return a.campaigns:get(campaigns[1].id) end,
      a2 = function() return a.campaigns:get(campaigns[2].id) end,
      b1 = function() return b.campaigns:get(campaigns[3].id) end,
      b2 = function() return b.campaigns:get(campaigns[4].id) end,
    }
    assert.equal(0, failed, tostring(errs.a1 or errs.a2 or errs.b1 or errs.b2))
    assert.equal(campaigns[4].id, values.b2.id)
    local log = by_path(srv:requests(), "/api/v2/campaigns/")
    assert.equal(4, #log)
    table.sort(log, function(x, y) return x.time < y.time end)
    assert.is_true(log[4].time - log[1].time < 0.4, "the four requests did not overlap")
    a:close()
    b:close()
  end)

  it("drives an injected transport one request at a time", function()
    local calls = 0
    local fake = instantly.new {
      api_key = "k", rate_limit = false,
      transport = { request = function() calls = calls + 1; return 200, '{"id":"x"}', {} end },
    }
    local values = fake:gather { function() return fake.campaigns:get("00000000-0000-4000-8000-00000000000a") end,
                                 function() return fake.campaigns:get("00000000-0000-4000-8000-00000000000b") end }
    assert.equal(2, calls)
    assert.equal("x", values[2].id)
  end)

  it("raises misuse at the caller's line, through the method and the module function", function()
    local cases = {
      function() return client:gather(42), debug.getinfo(1, "l").currentline end,
      function() return client:gather({}, { concurrency = 0 }), debug.getinfo(1, "l").currentline end,
      function() return client:gather { function() end, "x" }, debug.getinfo(1, "l").currentline end,
      function() return gather.gather(client, {}, 7), debug.getinfo(1, "l").currentline end,
    }
    for i, case in ipairs(cases) do
      local line = debug.getinfo(case, "S").linedefined
      local ok, err = pcall(case)
      assert.is_false(ok)
      assert.equal("gather_spec.lua:" .. line, tostring(err):match("([%w_]+%.lua:%d+): instantly: gather:"),
        "case " .. i .. ": " .. tostring(err))
    end
  end)

  it("raises on misuse", function()
    assert.has_error(function() client:gather(42) end,
      "instantly: gather: tasks must be an array of functions, a table of named functions or a function, got number")
    assert.has_error(function() client:gather { function() end, "x" } end,
      "instantly: gather: task 2 is a string, not a function")
    assert.has_error(function() client:gather({}, { concurrency = 0 }) end,
      "instantly: gather: concurrency must be a positive integer")
    assert.has_error(function() client:gather({}, { concurency = 2 }) end,
      "instantly: gather: unknown option 'concurency'")
    assert.has_error(function() client:gather({}, { on_result = 1 }) end,
      "instantly: gather: on_result must be a function")
    local v, e, f = client:gather {}
    assert.same({}, v)
    assert.same({}, e)
    assert.equal(0, f)
    assert.equal(8, gather.DEFAULT_CONCURRENCY)
  end)
end)

describe("client:gather across clients", function()
  local fixture = require "support.http_fixture"
  local core = require "instantly.core"
  local fx

  setup(function() fx = fixture.start() end)
  teardown(function() if fx then fx.stop() end end)

  -- A client whose own session serves the fixture's /barrier: the API
  -- prefix is taken off the URL and the plain-text answer is marked as
  -- text, so client:request returns the body ("released N").
  local function barrier_client()
    local session = core.session()
    local t = {}
    local function fix(req)
      req.url = req.url:gsub("/api/v2/", "/", 1)
      return req
    end
    local function text(status, body, headers)
      if type(headers) == "table" then headers["content-type"] = "text/plain" end
      return status, body, headers
    end
    function t.request(_, req) return text(session:request(fix(req))) end
    function t.submit(_, req) return session:submit(fix(req)) end
    function t.take(_, timeout)
      local id, status, body, headers = session:take(timeout)
      if id == nil then return nil end
      return id, text(status, body, headers)
    end
    function t.cancel(_, id) return session:cancel(id) end
    function t.close() session:close() end
    local c = instantly.new { api_key = "k", base_url = fx.url(""), transport = t, rate_limit = false,
                              max_retries = 0 }
    return c, t
  end

  local function call(c, name, n)
    return function()
      return c:request("GET", "/barrier", { query = { name = name, n = tostring(n) } })
    end
  end

  it("runs the calls of every client a task uses on one loop (a barrier of 4 is reached)", function()
    -- Each request is held until four are waiting at the server. Calls of
    -- the second client run one after another if gather does not drive
    -- them: then the barrier is never reached and each gets a 504.
    local a, ta = barrier_client()
    local b, tb = barrier_client()
    local values, errs, failed = a:gather {
      a1 = call(a, "four", 4), a2 = call(a, "four", 4),
      b1 = call(b, "four", 4), b2 = call(b, "four", 4),
    }
    assert.equal(0, failed, tostring(errs.a1 or errs.a2 or errs.b1 or errs.b2))
    for _, k in ipairs { "a1", "a2", "b1", "b2" } do assert.equal("released 4", values[k]) end
    -- The same with tasks that only use the other client.
    values, errs, failed = a:gather { call(b, "two", 2), call(b, "two", 2) }
    assert.equal(0, failed, tostring(errs[1] or errs[2]))
    assert.same({ "released 2", "released 2" }, values)
    ta.close()
    tb.close()
  end)

  it("runs a nested gather of another client on the same loop", function()
    local a, ta = barrier_client()
    local b, tb = barrier_client()
    local values, errs = a:gather {
      outer = function()
        local v = b:gather { call(b, "nest", 3), call(b, "nest", 3) }
        return v[1] .. "/" .. v[2]
      end,
      other = call(a, "nest", 3),
    }
    assert.is_nil(errs.outer)
    assert.equal("released 3/released 3", values.outer)
    assert.equal("released 3", values.other)
    ta.close()
    tb.close()
  end)
end)

describe("client:gather results by name", function()
  local H = require "support.client_helper"

  it("keys values and errors by task name, and every error names its task", function()
    local c = H.fake_client(function(req)
      if req.url:find("/00000000-0000-4000-8000-00000000dead", 1, true) then
        return 404, '{"message":"no such campaign"}', {}
      end
      return 200, '{"id":"ok"}', { ["content-type"] = "application/json" }
    end)
    local values, errs, failed = c:gather {
      good = function() return c.campaigns:get("00000000-0000-4000-8000-0000000000c1") end,
      missing = function() return c.campaigns:get("00000000-0000-4000-8000-00000000dead") end,
      boom = function() error("exploded") end,
      [7] = function() return "seven" end,
    }
    assert.equal(2, failed)
    assert.equal("ok", values.good.id)
    assert.is_nil(errs.good)
    assert.equal("seven", values[7])
    assert.equal("http", errs.missing.kind)
    assert.equal(404, errs.missing.status)
    assert.equal("missing", errs.missing.task)
    assert.equal("task", errs.boom.kind)
    assert.equal("boom", errs.boom.task)
    assert.matches("^task 'boom' raised: .*exploded", errs.boom.message)
    assert.is_nil(values.boom)
  end)

  it("names the index of an array task in its error", function()
    local c = H.fake_client(H.const(404, '{"message":"no"}', {}))
    local values, errs, failed = c:gather {
      function() return "fine" end,
      function() return c.campaigns:get("a") end,
      function() error({ custom = true }) end,
    }
    assert.equal(2, failed)
    assert.equal("fine", values[1])
    assert.equal(2, errs[2].task)
    assert.equal(3, errs[3].task)
    assert.same({ custom = true }, errs[3].cause)
    assert.matches("^task 3 raised: ", errs[3].message)
  end)

  it("passes names to on_result and refuses a named task that is not a function", function()
    local c = H.fake_client(H.const(200, '{"id":"x"}', { ["content-type"] = "application/json" }))
    local seen = {}
    local failed = c:gather({ one = function() return 1 end, two = function() return 2 end },
      { on_result = function(k, v) seen[k] = v end })
    assert.equal(0, failed)
    assert.same({ one = 1, two = 2 }, seen)
    assert.has_error(function() c:gather { one = function() end, two = "x" } end,
      "instantly: gather: task 'two' is a string, not a function")
  end)
end)

-- Workers are reused: one coroutine runs task after task. A task that
-- ends badly must not leave anything behind for the next one.
describe("client:gather worker reuse", function()
  -- A transport with the multi interface in Lua: every transfer answers
  -- 200 with `{"id":"<n>"}` at the next take, in submission order.
  local function multi_client()
    local q, head, tail, nid = {}, 1, 0, 0
    local t = {
      request = function() error("the multi interface should be used") end,
      submit = function() nid = nid + 1; tail = tail + 1; q[tail] = nid; return nid end,
      take = function()
        if head > tail then return nil end
        local id = q[head]
        q[head], head = nil, head + 1
        return id, 200, '{"id":"' .. id .. '"}', { ["content-type"] = "application/json" }
      end,
    }
    return instantly.new { api_key = "k", transport = t, rate_limit = false, max_retries = 0 }, t
  end

  it("runs tasks one after another on one coroutine while they succeed", function()
    local c = multi_client()
    local cos = {}
    local tasks = {}
    for i = 1, 3 do
      tasks[i] = function()
        cos[i] = coroutine.running()
        return assert(c.workspaces:get())
      end
    end
    local values, _, failed = c:gather(tasks, { concurrency = 1 })
    assert.equal(0, failed)
    assert.equal(cos[1], cos[2])
    assert.equal(cos[1], cos[3])
    for i = 1, 3 do assert.equal(tostring(i), values[i].id) end
  end)

  it("closes a raising task's to-be-closed variables, reports it, and runs the next on a fresh coroutine", function()
    local c = multi_client()
    local events, cos = {}, {}
    local function closer(name)
      return setmetatable({}, { __close = function() events[#events + 1] = "closed " .. name end })
    end
    local tasks = {
      function()
        cos[1] = coroutine.running()
        local _ <close> = closer("one")
        assert(c.workspaces:get()) -- suspended once before raising
        error("one failed")
      end,
      function()
        cos[2] = coroutine.running()
        events[#events + 1] = "two starts"
        local _ <close> = closer("two")
        return assert(c.workspaces:get())
      end,
      function()
        cos[3] = coroutine.running()
        local _ <close> = setmetatable({}, { __close = function() error("close failed", 0) end })
        error("three failed")
      end,
      function() cos[4] = coroutine.running(); return "four" end,
    }
    local seen = {}
    local failed = c:gather(tasks, { concurrency = 1, on_result = recorder(events, seen) })
    assert.equal(2, failed)
    assert.same({ "closed one", "result 1", "two starts", "closed two", "result 2", "result 3", "result 4" }, events)
    assert.equal("task", seen[1].e.kind)
    assert.matches("one failed", seen[1].e.message)
    assert.matches("one failed", seen[1].e.traceback)
    assert.equal(1, seen[1].e.task)
    -- a __close that raises has the last word, as it would under pcall
    assert.matches("close failed", seen[3].e.message)
    assert.equal("four", seen[4].v)
    assert.equal("dead", coroutine.status(cos[1]))
    assert.are_not.equal(cos[1], cos[2])
    assert.are_not.equal(cos[3], cos[4])
    -- the fresh worker has the scheduler: its calls still go through take
    assert.equal("2", seen[2].v.id)
  end)

  it("gives the next task a clean coroutine after one yields from a nested coroutine or outside the SDK", function()
    local c = multi_client()
    local closed = false
    local cos = {}
    local values, errs, failed = c:gather({
      function()
        -- a coroutine of its own: its yields are its business
        local inner = coroutine.wrap(function(a)
          local b = coroutine.yield(a + 1)
          return b * 2
        end)
        local one = inner(1)
        return one + inner(10)
      end,
      function()
        cos[2] = coroutine.running()
        local _ <close> = setmetatable({}, { __close = function() closed = true end })
        coroutine.yield("not ours")
        return "never"
      end,
      function()
        cos[3] = coroutine.running()
        return assert(c.workspaces:get()).id
      end,
    }, { concurrency = 1 })
    assert.equal(1, failed)
    assert.equal(22, values[1])
    assert.matches("yielded outside the SDK", errs[2].message)
    assert.is_true(closed)
    assert.equal("dead", coroutine.status(cos[2]))
    assert.are_not.equal(cos[2], cos[3])
    assert.equal("1", values[3])
  end)

  it("lets a raising task's __close make an SDK call (outside the loop: it cannot yield there)", function()
    local c, t = multi_client()
    local plain = 0
    t.request = function()
      plain = plain + 1
      return 200, '{"id":"plain"}', { ["content-type"] = "application/json" }
    end
    local got
    local values, errs, failed = c:gather({
      function()
        local _ <close> = setmetatable({}, { __close = function() got = assert(c.workspaces:get()).id end })
        error("boom")
      end,
      function() return assert(c.workspaces:get()).id end,
    }, { concurrency = 1 })
    assert.equal(1, failed)
    assert.matches("task 1 raised: .*boom", errs[1].message)
    assert.equal("plain", got)
    assert.equal(1, plain)
    assert.equal("1", values[2])
  end)

  it("fails the loop when on_result raises, and cancels what is in flight", function()
    local c, t = multi_client()
    local cancelled = {}
    t.cancel = function(_, id) cancelled[#cancelled + 1] = id end
    local started = 0
    assert.has_error(function()
      c:gather(function()
        started = started + 1
        if started <= 6 then return function() return assert(c.workspaces:get()) end end
      end, { concurrency = 3, on_result = function(k) if k == 2 then error("on_result broke", 0) end end })
    end, "on_result broke")
    -- 1, 2 and 3 sent; 1 answered (4 sent in its place), then 2 broke the loop
    table.sort(cancelled)
    assert.same({ 3, 4 }, cancelled)
    assert.equal(4, started)
  end)
end)
