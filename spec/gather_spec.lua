-- client:gather: concurrent SDK calls over the core's multi interface.
-- Overlap and the rate limiter are proven from the mock's request log:
-- arrival times the server recorded, compared with what causality forces
-- (a held response cannot arrive before its delay), never with our clock.
local instantly = require "instantly"
local mock = require "instantly.mock"
local gather = require "instantly.gather"

local function new_client(srv, opts)
  local o = { api_key = srv.api_key, base_url = srv.url, rate_limit = false, retry = { base = 0.01, cap = 0.02 } }
  for k, v in pairs(opts or {}) do o[k] = v end
  return instantly.new(o)
end

-- Log entries whose path contains `text` (plain text, not a pattern).
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

  it("returns an instantly.Error raised by an iterator as the task's error", function()
    srv:fault { method = "POST", path = "/leads/list", status = 400, count = 1 }
    local values, errs, failed = client:gather {
      function()
        local n = 0
        for _ in client.leads:each { campaign = campaigns[1].id } do n = n + 1 end
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

  it("drives an injected transport one request at a time", function()
    local calls = 0
    local fake = instantly.new {
      api_key = "k", rate_limit = false,
      transport = { request = function() calls = calls + 1; return 200, '{"id":"x"}', {} end },
    }
    local values = fake:gather { function() return fake.campaigns:get("a") end,
                                 function() return fake.campaigns:get("b") end }
    assert.equal(2, calls)
    assert.equal("x", values[2].id)
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
