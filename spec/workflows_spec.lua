-- Builders and checks before create (instantly.workflows.schedule, campaigns:preflight
-- of create parameters), find / find_or_create, analytics rows
-- (instantly.workflows.stats), and where misuse of the workflow functions is reported.
local instantly = require "instantly"
local mock = require "instantly.mock"
local schedule = require "instantly.workflows.schedule"
local stats = require "instantly.workflows.stats"
local enums = require "instantly.enums"

local HEALTHY = { "jane@getmock.io", "mark@getmock.io" }

local function codes(report, severity)
  local out = {}
  for _, p in ipairs(report.problems) do
    if severity == nil or p.severity == severity then out[#out + 1] = p.code end
  end
  table.sort(out)
  return out
end

describe("instantly.workflows.schedule", function()
  it("builds the API's shape from day names, times and a listed timezone", function()
    local s = schedule.new { days = "weekdays", from = "9:00", to = "17:30", timezone = "America/Chicago",
                             name = "Office hours", start_date = "2026-12-01" }
    assert.same({
      start_date = "2026-12-01",
      schedules = { {
        name = "Office hours", timing = { from = "09:00", to = "17:30" }, timezone = "America/Chicago",
        days = { ["0"] = false, ["1"] = true, ["2"] = true, ["3"] = true, ["4"] = true, ["5"] = true, ["6"] = false },
      } },
    }, s)
  end)

  it("knows day names, abbreviations, groups and keys", function()
    local CASES = {
      { { "Monday", "wed", " FRI " }, { "1", "3", "5" } },
      { "weekend", { "0", "6" } },
      { "every day", { "0", "1", "2", "3", "4", "5", "6" } },
      { { 0, "6" }, { "0", "6" } },
      { "sunday", { "0" } },
    }
    for _, c in ipairs(CASES) do
      local days = schedule.entry { days = c[1], from = "08:00", to = "09:00", timezone = "Etc/GMT+12" }.days
      local on = {}
      for k, v in pairs(days) do if v then on[#on + 1] = k end end
      table.sort(on)
      assert.same(c[2], on)
    end
    assert.equal(enums.campaign.days.tuesday, schedule.day_key("Tue"))
    assert.is_nil(schedule.day_key("7"))
    assert.is_nil(schedule.day_key(7))
  end)

  it("raises on a wrong day name, a bad time or a timezone outside the list", function()
    local base = function(o)
      local t = { days = "weekdays", from = "09:00", to = "17:00", timezone = "America/Chicago" }
      for k, v in pairs(o) do t[k] = v end
      return t
    end
    local CASES = {
      { { days = { "monday", "tuesdy" } },
        'instantly.schedule: days[2]: unknown day "tuesdy" (monday..sunday, mon..sun, or 0..6 with 0 = Sunday)' },
      { { days = { 7 } }, 'instantly.schedule: days[1]: unknown day "7" (monday..sunday, mon..sun, or 0..6 with ' ..
        '0 = Sunday)' },
      { { days = {} },
        'instantly.schedule: days must be a day name, "weekdays", "weekend", "every day" or a list of days' },
      { { from = "25:00" }, 'instantly.schedule: from must be a time like "09:00", got 25:00' },
      { { from = "9am" }, 'instantly.schedule: from must be a time like "09:00", got 9am' },
      { { to = "17:60" }, 'instantly.schedule: to must be a time like "17:00", got 17:60' },
      { { from = "17:00", to = "09:00" }, "instantly.schedule: from (17:00) must be before to (09:00)" },
      { { timezone = "Europe/Berlin" }, 'instantly.schedule: timezone "Europe/Berlin" is not in the API\'s list ' ..
        "(in that region: Europe/Isle_of_Man, Europe/Belgrade, Europe/Sarajevo, Europe/Bucharest, Europe/Helsinki, " ..
        "Europe/Istanbul, Europe/Kaliningrad, Europe/Kirov, Europe/Astrakhan)" },
      { { timezone = "Mars/Olympus" }, 'instantly.schedule: timezone "Mars/Olympus" is not in the API\'s list ' ..
        '(see instantly.enums.values("campaign.timezone"))' },
      { { timezone = false }, "instantly.schedule: timezone is required" },
      { { hours = 8 }, "instantly.schedule: unknown option 'hours'" },
    }
    for _, c in ipairs(CASES) do
      local o = base(c[1])
      if c[1].timezone == false then o.timezone = nil end
      assert.has_error(function() schedule.new(o) end, c[2])
    end
    assert.has_error(function()
      schedule.new { schedules = { schedule.entry(base {}), { from = "10:00", to = "11:00", timezone = "UTC" } } }
    end, 'instantly.schedule: schedules[2]: timezone "UTC" is not in the API\'s list ' ..
      '(see instantly.enums.values("campaign.timezone"))')
    assert.has_error(function() schedule.new(base { start_date = "1/12/2026" }) end,
      'instantly.schedule: start_date must be a date like "2026-12-01", got 1/12/2026')
    assert.has_error(function() schedule.new { schedules = {}, from = "09:00" } end,
      "instantly.schedule: give schedules or one window (days, from, to, timezone), not both")
    -- every zone of the list is accepted
    for _, tz in ipairs(enums.values("campaign.timezone")) do assert.is_true(schedule.is_timezone(tz), tz) end
  end)
end)

describe("workflows against the mock", function()
  local srv, client

  setup(function()
    srv = assert(mock.start { seed = 1, rate_limits = false })
    client = instantly.new { api_key = srv.api_key, base_url = srv.url, rate_limit = false,
                             max_retries = 0 }
  end)

  teardown(function()
    srv:stop()
  end)

  before_each(function()
    srv:reset()
    srv:clear_faults()
  end)

  local function params(name)
    return {
      name = name,
      campaign_schedule = schedule.new { days = "weekdays", from = "09:00", to = "17:00",
                                         timezone = "Europe/Belgrade" },
      sequences = { { steps = { { type = "email", delay = 0, variants = {
        { subject = "Hi {{firstName}}", body = "<p>A short note.</p>" } } } } } },
      email_list = HEALTHY, daily_limit = 30,
    }
  end

  local function campaign_count()
    local n = 0
    for _ in client.campaigns:each {} do n = n + 1 end
    return n
  end

  describe("campaigns:preflight of create parameters", function()
    it("passes good parameters without creating anything; the schedule helper's output is accepted", function()
      local before = campaign_count()
      local report = assert(client.campaigns:preflight(params("Fresh launch")))
      assert.is_true(report.ok, tostring(report))
      assert.same({}, codes(report))
      assert.equal(2, #report.accounts)
      assert.is_nil(report.campaign_id)
      assert.matches('^preflight of new campaign "Fresh launch": passes %(0 errors, 0 warnings%)', tostring(report))
      assert.equal(before, campaign_count())
      assert(client.campaigns:create(params("Fresh launch")))
      assert.equal(before + 1, campaign_count())
    end)

    it("reports bad parameters with the codes of the campaign preflight", function()
      local p = params("")
      p.campaign_schedule = { schedules = { {
        name = "x", timing = { from = "9:00", to = "17:00" }, days = { mon = true }, timezone = "Europe/Berlin" } } }
      p.sequences = { { steps = {} } }
      p.email_list = { "nobody@nowhere.test" }
      p.daily_limit = 0
      local report = assert(client.campaigns:preflight(p))
      assert.is_false(report.ok)
      assert.same({ "account_missing", "daily_limit_zero", "empty_sequence", "no_name", "no_usable_accounts",
                    "schedule_bad_days", "schedule_bad_time", "schedule_bad_timezone", "schedule_no_days" },
        codes(report, "error"))
      assert.matches('schedule 1 %("x"%) has timezone "Europe/Berlin", which is not in the API\'s list',
        report:has("schedule_bad_timezone").message)
    end)

    it("warns that the name is taken (a failed launch left a draft behind)", function()
      local first = assert(client.campaigns:create(params("Rerun me")))
      local report = assert(client.campaigns:preflight(params("Rerun me")))
      local p = report:has("name_taken")
      assert.equal("warning", p.severity)
      assert.equal(first.id, p.campaign_id)
      assert.is_true(report.ok)
      -- and a substring is not a match
      report = assert(client.campaigns:preflight(params("Rerun")))
      assert.is_nil(report:has("name_taken"))
    end)

    it("returns nil, err when an account read fails (other than 404)", function()
      srv:fault { method = "GET", path = "/accounts/" .. HEALTHY[1], status = 500, count = 1 }
      local none, err = client.campaigns:preflight(params("Faulty"))
      assert.is_nil(none)
      assert.equal(500, err.status)
    end)

    it("launch refuses create parameters", function()
      assert.has_error(function() client.campaigns:launch(params("x")) end,
        "instantly: campaigns:launch: expected a campaign id or a campaign record, got create parameters " ..
        "(create the campaign first)")
    end)
  end)

  describe("find and find_or_create", function()
    it("finds campaigns, lists and tags by exact name", function()
      local c = assert(client.campaigns:create(params("Find me exactly")))
      assert(client.campaigns:create(params("Find me exactly, not this one")))
      local found, n = client.campaigns:find { name = "Find me exactly" }
      assert.equal(c.id, found.id)
      assert.equal(1, n)
      local none, zero = client.campaigns:find { name = "Find me" }
      assert.is_nil(none)
      assert.equal(0, zero)
      local list = assert(client.lead_lists:create { name = "Sync target" })
      assert.equal(list.id, (client.lead_lists:find { name = "Sync target" }).id)
      local tag = assert(client.custom_tags:create { label = "Hot" })
      assert.equal(tag.id, (client.custom_tags:find { label = "Hot" }).id)
    end)

    it("returns the oldest of duplicates and how many there are", function()
      local a = assert(client.lead_lists:create { name = "Twice" })
      local b = assert(client.lead_lists:create { name = "Twice" })
      local found, n = client.lead_lists:find { name = "Twice" }
      assert.equal(2, n)
      local oldest = tostring(a.timestamp_created) <= tostring(b.timestamp_created) and a or b
      assert.equal(oldest.id, found.id)
    end)

    it("find_or_create creates once, then finds", function()
      local p = params("Idempotent launch")
      local c1, created1 = assert(client.campaigns:find_or_create(p))
      local c2, created2 = assert(client.campaigns:find_or_create(p))
      assert.is_true(created1)
      assert.is_false(created2)
      assert.equal(c1.id, c2.id)
      local t1, tc = assert(client.custom_tags:find_or_create { label = "Fresh tag", description = "x" })
      assert.is_true(tc)
      assert.equal(t1.id, (client.custom_tags:find_or_create { label = "Fresh tag" }).id)
    end)

    it("is not atomic: two at once can both create, and the next find shows the duplicate", function()
      -- Both lookups are held by the mock, so the second one is read before
      -- the first task's create can arrive. The mock answers a held request
      -- after its delay, so the first create is held too: the second lookup
      -- is answered well before the first list exists (the race, made
      -- certain; without it a fast client's create could land between the
      -- two answers).
      srv:fault { method = "GET", path = "/lead-lists", delay = 0.5, count = 2 }
      srv:fault { method = "POST", path = "/lead-lists", delay = 0.3, count = 1 }
      local values = client:gather {
        function() return client.lead_lists:find_or_create { name = "Raced" } end,
        function() return client.lead_lists:find_or_create { name = "Raced" } end,
      }
      assert.is_table(values[1])
      assert.is_table(values[2])
      local _, n = client.lead_lists:find { name = "Raced" }
      assert.equal(2, n)       -- the documented race: both lists exist
    end)

    it("returns nil, err when listing fails", function()
      srv:fault { method = "GET", path = "/lead-lists", status = 500, count = 1 }
      local none, err = client.lead_lists:find { name = "x" }
      assert.is_nil(none)
      assert.equal(500, err.status)
      srv:fault { method = "GET", path = "/lead-lists", status = 503, count = 1 }
      none, err = client.lead_lists:find_or_create { name = "x" }
      assert.is_nil(none)
      assert.equal(503, err.status)
      assert.is_nil(client.lead_lists:find { name = "x" })   -- nothing was created
    end)

    it("raises on misuse", function()
      assert.has_error(function() client.campaigns:find() end,
        "instantly: campaigns:find: expects a table like {name = ...}, got nil")
      assert.has_error(function() client.campaigns:find { name = "" } end,
        "instantly: campaigns:find: 'name' must be a non-empty string")
      assert.has_error(function() client.custom_tags:find { name = "Hot" } end,
        "instantly: custom_tags:find: 'label' must be a non-empty string")
      assert.has_error(function() client.campaigns:find { name = "x", status = 1 } end,
        "instantly: campaigns:find: unknown option 'status'")
    end)
  end)

  describe("analytics rows", function()
    it("by_campaign: a row per campaign with rates from the documented counters", function()
      local raw = assert(client.analytics:campaign())
      local rows = assert(client.analytics:by_campaign())
      assert.equal(#raw, #rows)
      for i = 2, #rows do assert.is_true(rows[i - 1].sent >= rows[i].sent) end
      for _, r in ipairs(rows) do
        assert.equal(r.raw.campaign_id, r.campaign_id)
        assert.equal(enums.label("campaign.status", r.raw.campaign_status), r.status_label)
        for name, f in pairs(stats.RATES) do
          local den = r.raw[f[2]] or 0
          if den == 0 then
            assert.is_nil(r[name], name)
          else
            assert.equal((r.raw[f[1]] or 0) / den, r[name], name)
          end
        end
        assert.equal(r.raw.emails_sent_count, r.sent)
        assert.equal(r.raw.reply_count_unique, r.replied)
      end
      local draft
      for _, r in ipairs(rows) do if r.sent == 0 then draft = r end end
      assert.is_nil(draft.open_rate)
      assert.equal("-", stats.percent(draft.open_rate))
    end)

    it("by_campaign survives counters that are missing or strings", function()
      srv:fault { method = "GET", path = "/campaigns/analytics", status = 200, body = {
        { campaign_id = "c1", campaign_name = "Odd", campaign_status = 1, emails_sent_count = "200",
          contacted_count = 100, bounced_count = "20" } } }
      local rows = assert(client.analytics:by_campaign())
      assert.equal(200, rows[1].sent)
      assert.equal(0.1, rows[1].bounce_rate)
      assert.equal(0, rows[1].opened)
      assert.equal(0, rows[1].open_rate)
      assert.same({ rows[1] }, stats.over_bounce_limit(rows, { max_bounce_rate = 0.05 }))
      assert.same({}, stats.over_bounce_limit(rows, { max_bounce_rate = 0.05, min_sent = 201 }))
      assert.has_error(function() stats.over_bounce_limit(rows, { max = 1 }) end,
        "instantly: over_bounce_limit: unknown option 'max'")
    end)

    it("over_bounce_limit keeps the campaigns over the limit, worst first", function()
      local rows = assert(client.analytics:over_bounce_limit { max_bounce_rate = 0.025, min_sent = 1 })
      assert.is_true(#rows >= 1)
      for i, r in ipairs(rows) do
        assert.is_true(r.bounce_rate > 0.025)
        if i > 1 then assert.is_true(rows[i - 1].bounce_rate >= r.bounce_rate) end
      end
    end)

    it("by_step joins the steps to the sequence: 1-based step, variant letter, subject, campaign id", function()
      local c = assert(client.analytics:by_campaign())[1]
      local camp = assert(client.campaigns:get(c.campaign_id))
      local rows = assert(camp:step_analytics())
      local raw = assert(client.analytics:campaign_steps { campaign_id = camp.id })
      assert.equal(#raw, #rows)
      assert.is_true(#rows > 0)
      for i, r in ipairs(rows) do
        assert.equal(camp.id, r.campaign_id)
        assert.equal(math.tointeger(tonumber(raw[i].step)) + 1, r.step)
        local v = math.tointeger(tonumber(raw[i].variant))
        assert.equal(string.char(65 + v), r.variant)
        assert.equal(camp.sequences[1].steps[r.step].variants[v + 1].subject, r.subject)
        assert.equal(stats.rate(raw[i].unique_opened, raw[i].sent), r.open_rate)
      end
      assert.equal(1, rows[1].step)
      assert.equal("A", rows[1].variant)
    end)

    it("by_step: a step the sequence does not have has no subject; a failed read is nil, err", function()
      local camp = assert(client.analytics:by_campaign())[1]
      srv:fault { method = "GET", path = "/campaigns/analytics/steps", status = 200, body = {
        { step = "7", variant = "30", sent = 0 } } }
      local rows = assert(client.analytics:by_step(camp.campaign_id))
      assert.equal(8, rows[1].step)
      assert.equal("30", rows[1].variant)
      assert.is_nil(rows[1].subject)
      assert.is_nil(rows[1].open_rate)
      srv:fault { method = "GET", path = "/campaigns/" .. camp.campaign_id, status = 404, count = 1 }
      local none, err = client.analytics:by_step(camp.campaign_id)
      assert.is_nil(none)
      assert.equal(404, err.status)
      assert.has_error(function() client.analytics:by_step() end,
        "instantly: analytics:by_step: expected a campaign id or record, got nil")
    end)
  end)

  it("reports misuse of the workflow functions at the caller's line", function()
    -- (not tail calls: a tail call leaves no frame to name)
    local here = "workflows_spec%.lua:%d+: "
    local CALLS = {
      function() local r = client.leads:import { campaign_id = "x" }; return r end,
      function() local r = client.leads:import { campaign_id = "x", leads = {}, nope = 1 }; return r end,
      function() local r = client.leads:export_file {}; return r end,
      function() local r = client.campaigns:preflight(42); return r end,
      function() local r = client.campaigns:launch("x", { strict = 1 }); return r end,
      function() local r = client.background_jobs:wait("j", { timeout = -1 }); return r end,
      function() local r = client.email_verification:verify(""); return r end,
      function() local r = client.oauth:wait(nil); return r end,
      function() local r = client.supersearch_enrichment:wait({}); return r end,
      function() local r = client.campaigns:find { name = 1 }; return r end,
      function() local r = schedule.new { timezone = "Nowhere" }; return r end,
    }
    for i, f in ipairs(CALLS) do
      local ok, msg = pcall(f)
      assert.is_false(ok, "call " .. i)
      assert.matches("^spec/" .. here .. "instantly", msg, 1, false)
    end
  end)
end)
