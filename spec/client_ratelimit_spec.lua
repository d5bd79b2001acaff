-- The client-side rate limiter: parsing the catalog's limits, the
-- sliding windows, sharing between coroutines, per-endpoint limits, and a
-- burst against the mock with its limits on that sees no 429.
local ratelimit = require "instantly.request.ratelimit"
local catalog = require "instantly.entities"
local H = require "support.client_helper"

describe("rate limit strings", function()
  local cases = {
    { "20/min", { { 20, 60 } } },
    { "10/min per workspace", { { 10, 60, "workspace" } } },
    { "75/min per workspace + 150/min per IP", { { 75, 60, "workspace" }, { 150, 60, "IP" } } },
    { "30/min or 900/hour", { { 30, 60 }, { 900, 3600 } } },
    { "500/30 days per workspace", { { 500, 30 * 86400, "workspace" } } },
    { "500 per 30 days per workspace", { { 500, 30 * 86400, "workspace" } } },
    { "100/second", { { 100, 1 } } },
    { "6000/minute", { { 6000, 60 } } },
  }
  for _, case in ipairs(cases) do
    it("reads '" .. case[1] .. "'", function()
      local parts = assert(ratelimit.parse(case[1]))
      assert.equal(#case[2], #parts)
      for i, want in ipairs(case[2]) do
        assert.equal(want[1], parts[i].n)
        assert.equal(want[2], parts[i].period)
        assert.equal(want[3], parts[i].scope)
      end
    end)
  end

  it("refuses what it cannot read", function()
    assert.is_nil((ratelimit.parse("lots")))
    assert.is_nil((ratelimit.parse("10/fortnight")))
  end)

  it("reads every limit in the catalog", function()
    local n = 0
    for _, name in ipairs(catalog.entities) do
      for _, op in ipairs(require("instantly.entities." .. name).operations) do
        if op.rate_limit then
          assert.is_table(ratelimit.parse(op.rate_limit), op.id .. ": " .. op.rate_limit)
          n = n + 1
        end
      end
    end
    assert.is_true(n >= 5)
  end)
end)

describe("sliding windows", function()
  it("never admit more than n in any period", function()
    local now = 0
    local w = ratelimit.window(3, 1, "test")
    local times = {}
    local function clock() return now end
    local function sleep(s) now = now + s end
    for _ = 1, 10 do
      assert(ratelimit.acquire({ w }, nil, clock, sleep, 60))
      times[#times + 1] = now
    end
    for i = 4, #times do
      assert.is_true(times[i] - times[i - 3] >= 1, "4 requests within one period")
    end
    -- and it does not wait longer than needed
    assert.is_true(times[#times] < 4)
  end)

  it("refuse a wait beyond max_wait without taking a slot", function()
    local now = 0
    local w = ratelimit.window(1, 100, "slow")
    assert(ratelimit.acquire({ w }, nil, function() return now end, function(s) now = now + s end, 5))
    local ok, need = ratelimit.acquire({ w }, nil, function() return now end, function(s) now = now + s end, 5)
    assert.is_nil(ok)
    assert.is_true(need > 99)
    assert.equal(1, w.count)
  end)

  it("are safe when coroutines share them and sleep through a scheduler", function()
    -- A tiny cooperative scheduler on a virtual clock: sleeping yields.
    local now = 0
    local w = ratelimit.window(5, 1, "shared")
    local admitted = {}
    local function clock() return now end
    local function sleep(s) coroutine.yield(now + s) end
    local threads = {}
    for i = 1, 4 do
      threads[i] = coroutine.create(function()
        for _ = 1, 5 do
          assert(ratelimit.acquire({ w }, nil, clock, sleep, 60))
          admitted[#admitted + 1] = now
        end
      end)
    end
    local wake = {}
    for i = 1, 4 do wake[i] = 0 end
    for _ = 1, 1000 do
      local best
      for i = 1, 4 do
        if coroutine.status(threads[i]) ~= "dead" and (not best or wake[i] < wake[best]) then best = i end
      end
      if not best then break end
      if wake[best] > now then now = wake[best] end
      local ok, until_t = coroutine.resume(threads[best])
      assert.is_true(ok, until_t)
      wake[best] = until_t or now
    end
    assert.equal(20, #admitted)
    table.sort(admitted)
    for i = 6, #admitted do
      assert.is_true(admitted[i] - admitted[i - 5] >= 1, "6 admitted within one period")
    end
  end)
end)

describe("the client's limiter", function()
  it("applies per-endpoint limits: the 21st emails:list in a minute waits", function()
    local waits = {}
    local c, t = H.fake_client(H.const(200, '{"items":[]}'), {
      rate_limit = { max_wait = 0.5 }, on_wait = function(w) waits[#waits + 1] = w end,
    })
    for _ = 1, 20 do assert(c.emails:list()) end
    local v, err = c.emails:list()
    assert.is_nil(v)
    assert.equal("rate_limited", err.kind)
    assert.is_nil(err.status, "refused on the client, not by the server")
    assert.matches("emails:list 20/min", err.message, 1, true)
    assert.equal(20, #t.log)
    -- other endpoints are not held back by it
    assert(c.campaigns:list())
    assert.equal(21, #t.log)
    assert.equal(0, #waits)
  end)

  it("a burst of 300 calls against the mock's limits sees no 429", function()
    local srv = H.mock { rate_limits = true }
    local statuses, waits = {}, 0
    local ok, err = pcall(function()
      local c = H.mock_client(srv, {
        max_retries = 0,
        on_response = function(r) statuses[r.status or 0] = (statuses[r.status or 0] or 0) + 1 end,
        on_wait = function(w) if w.reason == "rate_limit" then waits = waits + 1 end end,
      })
      for i = 1, 300 do
        local v, e = c.workspaces:get()
        assert(v, "call " .. i .. ": " .. tostring(e))
      end
    end)
    srv:stop()
    assert.is_true(ok, tostring(err))
    assert.is_nil(statuses[429], "the server answered 429")
    assert.equal(300, statuses[200])
    assert.is_true(waits > 0, "the limiter had to wait (visible through on_wait)")
  end)
end)
