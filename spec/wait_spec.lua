-- Waits: background jobs to every terminal state and to a timeout, email
-- verification through pending, OAuth sessions (expiry, read-once),
-- SuperSearch enrichments, and waits sleeping inside gather.
local instantly = require "instantly"
local mock = require "instantly.mock"
local wait = require "instantly.workflows.wait"

local FAST = { interval = 0.01, timeout = 10 }

local function opts(extra)
  local o = { interval = FAST.interval, timeout = FAST.timeout }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

local function count(log, method, text)
  local n = 0
  for _, r in ipairs(log) do
    if r.method == method and (r.decoded_path or r.path):find(text, 1, true) then n = n + 1 end
  end
  return n
end

describe("waits", function()
  local srv, client, emails

  setup(function()
    srv = assert(mock.start { seed = 1, rate_limits = false })
    client = instantly.new { api_key = srv.api_key, base_url = srv.url, rate_limit = false,
                             retry = { base = 0.01, cap = 0.02 } }
    emails = {}
    for a in client.accounts:each {} do emails[#emails + 1] = a.email end
  end)

  teardown(function()
    srv:stop()
  end)

  before_each(function()
    srv:reset()
  end)

  local function start_job()
    local job = assert(client.accounts:enable_warmup { emails = { emails[1] } })
    assert.equal("instantly.request.record.background_jobs", getmetatable(job).__name)
    return job
  end

  describe("background jobs", function()
    it("job:wait() reaches success, reporting progress", function()
      srv:set { job_steps = 3 }
      local job = start_job()
      local seen = {}
      local done = assert(job:wait(opts { on_progress = function(j) seen[#seen + 1] = j.status end }))
      assert.equal("success", done.status)
      assert.equal(job.id, done.id)
      assert.same({ "in-progress", "in-progress", "success" }, seen)
      assert.equal(3, count(srv:requests(), "GET", "/background-jobs/" .. job.id))
    end)

    it("client.background_jobs:wait takes an id and the jobs of leads:move", function()
      local camps = client.campaigns:list {}.items
      local job = assert(client.leads:move { campaign = camps[1].id, to_campaign_id = camps[2].id, limit = 3 })
      assert.equal("success", assert(client.background_jobs:wait(job.id, opts())).status)
      assert.equal("success", assert(client.accounts:disable_warmup { emails = { emails[2] } }):wait(opts()).status)
    end)

    it("returns nil, err with the job when it fails", function()
      srv:set { fail_jobs = true }
      local job = start_job()
      local none, err = job:wait(opts())
      assert.is_nil(none)
      assert.is_true(instantly.is_error(err))
      assert.equal("failed", err.kind)
      assert.equal("failed", err.state)
      assert.equal("failed", err.job.status)
      assert.equal(err.job, err.result)
      assert.matches("background job .* ended failed: Job failed", tostring(err))
    end)

    -- States the API may report (the catalog lists draining, paused and
    -- cancelled; the vendor helper also completed and error): served by
    -- the mock as bodies of the next polls.
    local CASES = {
      { { "pending", "draining", "cancelled" }, false, "cancelled" },
      { { "in-progress", "paused", "in-progress", "completed" }, true, "completed" },
      { { "error" }, false, "error" },
      { { "canceled" }, false, "canceled" },
      { { "something-new", "success" }, true, "success" },
    }
    for _, case in ipairs(CASES) do
      it("treats " .. table.concat(case[1], " -> ") .. " as " .. (case[2] and "done" or "failed"), function()
        local job = start_job()
        for i, st in ipairs(case[1]) do
          srv:fault { method = "GET", path = "/background-jobs/" .. job.id, count = 1,
                      status = 200, body = { id = job.id, status = st, progress = i * 10 } }
        end
        local states = {}
        local done, err = job:wait(opts { on_progress = function(j) states[#states + 1] = j.status end })
        assert.same(case[1], states)
        if case[2] then
          assert.equal(case[3], done.status)
        else
          assert.is_nil(done)
          assert.equal("failed", err.kind)
          assert.equal(case[3], err.state)
          assert.equal(case[3], err.job.status)
        end
      end)
    end

    it("times out with the last job attached", function()
      srv:set { job_steps = 100000 }
      local job = start_job()
      local none, err = job:wait { interval = 0.02, timeout = 0.15 }
      assert.is_nil(none)
      assert.equal("timeout", err.kind)
      assert.equal("in-progress", err.job.status)
      assert.matches("still in%-progress %(%d+%%%) after", err.message)
      assert.is_true(err.polls >= 1)
    end)

    it("returns a job already terminal without asking", function()
      srv:set { job_steps = 1 }
      local job = start_job()
      local done = assert(job:wait(opts()))
      srv:clear_requests()
      assert.equal(done, assert(done:wait(opts())))
      assert.equal(0, #srv:requests())
    end)

    it("returns the poll's own error with the job attached", function()
      local job = start_job()
      srv:fault { method = "GET", path = "/background-jobs/" .. job.id, status = 404, count = 5 }
      local none, err = job:wait(opts())
      assert.is_nil(none)
      assert.equal(404, err.status)
    end)

    it("raises on misuse", function()
      assert.has_error(function() client.background_jobs:wait(nil) end,
        "instantly: background_jobs:wait: expected a id string or an object with one, got nothing")
      assert.has_error(function() client.background_jobs:wait({}) end,
        "instantly: background_jobs:wait: the object has no 'id'")
      assert.has_error(function() client.background_jobs:wait("x", { timout = 1 }) end,
        "instantly: background_jobs:wait: unknown option 'timout'")
      assert.has_error(function() client.background_jobs:wait("x", { interval = 0 }) end,
        "instantly: background_jobs:wait: option 'interval' must be more than 0")
      assert.has_error(function() client.background_jobs:wait("x", { timeout = -1 }) end,
        "instantly: background_jobs:wait: option 'timeout' must be a non-negative number of seconds")
    end)
  end)

  describe("email verification", function()
    it("verify{wait = true} polls through pending to the verdict", function()
      srv:set { verification_polls = 3 }
      local seen = {}
      local v = assert(client.email_verification:verify("ann@example.com",
        opts { wait = true, on_progress = function(r) seen[#seen + 1] = r.verification_status end }))
      assert.equal("verified", v.verification_status)
      assert.same({ "pending", "pending", "pending", "verified" }, seen)
      local log = srv:requests()
      assert.equal(1, count(log, "POST", "/email-verification"))
      assert.equal(3, count(log, "GET", "/email-verification/ann@example.com"))
    end)

    it("an invalid verdict is a result, not an error", function()
      local v = assert(client.email_verification:verify("bounce@example.com", opts { wait = true }))
      assert.equal("invalid", v.verification_status)
    end)

    it("without wait returns the pending answer; result:wait() finishes it", function()
      srv:set { verification_polls = 2 }
      local v = assert(client.email_verification:verify("bob@example.com"))
      assert.equal("pending", v.verification_status)
      assert.equal("verified", assert(v:wait(opts())).verification_status)
    end)

    it("times out with the pending verification attached", function()
      srv:set { verification_polls = 100000 }
      local none, err = client.email_verification:verify("cy@example.com",
        { wait = true, interval = 0.02, timeout = 0.1 })
      assert.is_nil(none)
      assert.equal("timeout", err.kind)
      assert.equal("pending", err.verification.verification_status)
    end)

    it("raises on misuse", function()
      assert.has_error(function() client.email_verification:verify(nil) end,
        "instantly: email_verification:verify: email must be a non-empty string, got nothing")
      assert.has_error(function() client.email_verification:verify("a@b.co", { wiat = true }) end,
        "instantly: email_verification:verify: unknown option 'wiat'")
    end)

    it("raises misuse at the caller's line", function()
      -- (not tail calls: a tail call would leave no line of ours to name)
      local cases = {
        function() local r = client.email_verification:verify(nil); return r end,
        function() local r = client.email_verification:wait("a@b.co", { wiat = true }); return r end,
        function() local r = client.background_jobs:wait({}); return r end,
        function() local r = client.oauth:wait(42); return r end,
        function() local r = client.supersearch_enrichment:wait("r", 5); return r end,
      }
      for i, case in ipairs(cases) do
        local line = debug.getinfo(case, "S").linedefined
        local ok, err = pcall(case)
        assert.is_false(ok)
        assert.equal("wait_spec.lua:" .. line, tostring(err):match("([%w_]+%.lua:%d+): instantly:"),
          "case " .. i .. ": " .. tostring(err))
      end
    end)
  end)

  describe("OAuth sessions", function()
    it("waits for success and honours the read-once rule", function()
      srv:set { oauth_polls = 2 }
      local s = assert(client.oauth:init_google())
      local done = assert(client.oauth:wait(s, opts()))
      assert.equal("success", done.status)
      assert.matches("@mockworkspace%.test$", done.email)
      assert.equal(3, count(srv:requests(), "GET", "/oauth/session/status/"))
      -- the result was read once: a second wait finds the session gone
      local none, err = client.oauth:wait(s.session_id, opts())
      assert.is_nil(none)
      assert.equal("failed", err.kind)
      assert.equal("gone", err.state)
      assert.equal(404, err.cause.status)
    end)

    it("reports a denied session as failed", function()
      srv:set { oauth_result = "error", oauth_polls = 0 }
      local s = assert(client.oauth:init_microsoft())
      local none, err = client.oauth:wait(s, opts())
      assert.is_nil(none)
      assert.equal("error", err.state)
      assert.matches("The user denied access", err.message)
      assert.equal("error", err.session.status)
    end)

    it("reports a session the server expired", function()
      srv:set { oauth_lifetime = 0, oauth_polls = 100000 }
      local s = assert(client.oauth:init_google())
      local none, err = client.oauth:wait(s.session_id, opts())
      assert.is_nil(none)
      assert.equal("failed", err.kind)
      assert.equal("expired", err.state)
    end)

    it("stops at the session's expiry without waiting for the timeout", function()
      srv:set { oauth_polls = 100000 }
      local s = assert(client.oauth:init_google())
      -- pretend it expires now: the grace period is the only wait left
      s.expires_at = os.date("!%Y-%m-%dT%H:%M:%S.000Z", os.time() - wait.EXPIRY_GRACE)
      local none, err = client.oauth:wait(s, { interval = 0.01, timeout = 3600 })
      assert.is_nil(none)
      assert.equal("timeout", err.kind)
      assert.matches("expired at", err.message)
      assert.equal("pending", err.session.status)
    end)

    it("reads ISO times with Z, offsets and fractions", function()
      local t = os.time { year = 2026, month = 1, day = 2, hour = 3, min = 4, sec = 5 }
      local z = wait.parse_time("2026-01-02T03:04:05Z")
      assert.equal(z + 0.5, wait.parse_time("2026-01-02T03:04:05.500Z"))
      assert.equal(z - 3600, wait.parse_time("2026-01-02T03:04:05+01:00"))
      assert.equal(z + 5400, wait.parse_time("2026-01-02T03:04:05-0130"))
      assert.is_nil(wait.parse_time("2026-01-02 03:04"))
      assert.is_nil(wait.parse_time("2026-01-02T03:04:05")) -- no zone: ambiguous
      assert.is_number(t)
    end)
  end)

  describe("SuperSearch enrichments", function()
    it("waits until the resource's enrichment is no longer in progress", function()
      srv:set { job_steps = 3 }
      local list = client.lead_lists:list {}.items[1]
      local created = assert(client.supersearch_enrichment:create {
        resource_id = list.id, type = "work_email_enrichment" })
      local polls = 0
      local e = assert(client.supersearch_enrichment:wait(created,
        opts { on_progress = function() polls = polls + 1 end }))
      assert.is_false(e.in_progress)
      assert.equal(3, polls)
    end)

    it("with ai = true also waits for AI enrichments", function()
      srv:set { job_steps = 2 }
      local list = client.lead_lists:list {}.items[2]
      assert(client.supersearch_enrichment:create_ai { resource_id = list.id, resource_type = 1,
        output_column = "icebreaker", model_version = "gpt-4o", input_columns = { "first_name" } })
      local e = assert(client.supersearch_enrichment:wait(list.id, opts { ai = true }))
      assert.is_false(e.in_progress)
      assert.is_true(count(srv:requests(), "GET", "/in-progress") >= 2)
    end)

    it("times out while in progress", function()
      srv:set { job_steps = 100000 }
      local list = client.lead_lists:list {}.items[1]
      assert(client.supersearch_enrichment:create { resource_id = list.id })
      local none, err = client.supersearch_enrichment:wait(list.id, { interval = 0.02, timeout = 0.1 })
      assert.is_nil(none)
      assert.equal("timeout", err.kind)
      assert.is_true(err.enrichment.in_progress)
    end)
  end)

  it("sleeps through the scheduler inside gather: waits interleave", function()
    srv:set { job_steps = 4 }
    local a = start_job()
    local b = assert(client.accounts:enable_warmup { emails = { emails[2] } })
    srv:clear_requests()
    local values, errs = client:gather {
      function() return a:wait { interval = 0.05, timeout = 10 } end,
      function() return b:wait { interval = 0.05, timeout = 10 } end,
    }
    assert.is_nil(errs[1])
    assert.is_nil(errs[2])
    assert.equal("success", values[1].status)
    assert.equal("success", values[2].status)
    -- The polls alternate: neither wait blocked the other while sleeping.
    local order = {}
    for _, r in ipairs(srv:requests()) do
      order[#order + 1] = r.path:find(a.id, 1, true) and "a" or "b"
    end
    assert.equal(8, #order)
    assert.not_equal("aaaabbbb", table.concat(order))
    assert.not_equal("bbbbaaaa", table.concat(order))
  end)
end)
