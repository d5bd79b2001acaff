-- Campaign preflight and launch. A good campaign is built through the API;
-- each case then serves a changed copy of it (a body fault on GET
-- /campaigns/{id}) while accounts and leads come from the mock's state.
local instantly = require "instantly"
local mock = require "instantly.mock"
local core = require "instantly.core"

local HEALTHY = { "jane@getmock.io", "mark@getmock.io" }

local function copy(v)
  return core.json_decode(core.json_encode(v))
end

local function codes(report, severity)
  local out = {}
  for _, p in ipairs(report.problems) do
    if severity == nil or p.severity == severity then out[#out + 1] = p.code end
  end
  table.sort(out)
  return out
end

local function activations(log)
  local n = 0
  for _, r in ipairs(log) do
    if r.method == "POST" and r.path:match("/activate$") then n = n + 1 end
  end
  return n
end

describe("campaign preflight", function()
  local srv, client, good

  local function schedule()
    return { schedules = { {
      name = "Weekdays", timing = { from = "09:00", to = "17:00" },
      days = { ["0"] = false, ["1"] = true, ["2"] = true, ["3"] = true, ["4"] = true, ["5"] = true, ["6"] = false },
      timezone = "Europe/Belgrade",
    } } }
  end

  local function sequence()
    return { { steps = {
      { type = "email", delay = 0, variants = {
        { subject = "Hello {{firstName}}", body = "<p>Hi {{firstName}}, a short note.</p>" },
        { subject = "Quick one", body = "Hi there", v_disabled = false } } },
      { type = "email", delay = 3, variants = { { subject = "", body = "Following up." } } },
    } } }
  end

  local function make_campaign(name, with_leads)
    local c = assert(client.campaigns:create {
      name = name, campaign_schedule = schedule(), sequences = sequence(), email_list = HEALTHY,
      open_tracking = false, link_tracking = false, daily_limit = 40,
    })
    if with_leads then
      assert(client.leads:import { campaign_id = c.id, leads = {
        { email = "p1@preflight.test" }, { email = "p2@preflight.test" } } })
    end
    return c
  end

  setup(function()
    srv = assert(mock.start { seed = 1, rate_limits = false })
    client = instantly.new { api_key = srv.api_key, base_url = srv.url, rate_limit = false,
                             retry = { base = 0.01, cap = 0.02 } }
    good = make_campaign("Preflight baseline", true)
  end)

  teardown(function()
    srv:stop()
  end)

  before_each(function()
    srv:clear_faults()
    srv:clear_requests()
  end)

  it("passes a healthy campaign with nothing to report", function()
    local report = assert(client.campaigns:preflight(good.id))
    assert.is_true(report.ok)
    assert.same({}, codes(report))
    assert.equal(0, report.errors)
    assert.equal(0, report.warnings)
    assert.is_true(report.has_leads)
    assert.equal(2, #report.accounts)
    assert.is_true(report.accounts[1].usable)
    assert.matches('preflight of campaign "Preflight baseline": passes %(0 errors, 0 warnings%)', tostring(report))
    -- the accounts and the lead check went out concurrently with the rest
    local gets = 0
    for _, r in ipairs(srv:requests()) do if r.path:find("/accounts/", 1, true) then gets = gets + 1 end end
    assert.equal(2, gets)
  end)

  local now = os.time()
  local function day(offset) return os.date("!%Y-%m-%d", now + offset * 86400) end

  -- name, change to the campaign, expected error codes, expected warning codes
  local CASES = {
    { "no sending accounts", function(c) c.email_list = {} end, { "no_accounts" }, {} },
    { "accounts chosen by tag", function(c) c.email_list = {}; c.email_tag_list = { "tag-1" } end,
      {}, { "accounts_by_tag" } },
    { "an account that does not exist", function(c) c.email_list = { "nobody@nowhere.test" } end,
      { "account_missing", "no_usable_accounts" }, {} },
    { "an account with a connection error", function(c) c.email_list = { "ops@trymock.net", HEALTHY[1] } end,
      { "account_unhealthy" }, { "low_warmup_score" } },
    { "only a paused account", function(c) c.email_list = { "tom@mockmail.co" } end,
      { "no_usable_accounts" }, { "account_paused" } },
    { "an account with warmup trouble", function(c) c.email_list = { "eva@trymock.net" } end,
      {}, { "account_warmup_problem", "low_warmup_score" } },
    { "no schedule", function(c) c.campaign_schedule = { schedules = {} } end, { "no_schedule" }, {} },
    { "a schedule without days", function(c)
        for k in pairs(c.campaign_schedule.schedules[1].days) do c.campaign_schedule.schedules[1].days[k] = false end
      end, { "schedule_no_days" }, {} },
    { "an empty sending window",
      function(c) c.campaign_schedule.schedules[1].timing = { from = "17:00", to = "09:00" } end,
      { "schedule_empty_window" }, {} },
    { "a schedule without timezone", function(c) c.campaign_schedule.schedules[1].timezone = core.null end,
      { "schedule_no_timezone" }, {} },
    { "a schedule that ended", function(c) c.campaign_schedule.end_date = day(-3) end, { "schedule_ended" }, {} },
    { "a schedule that starts later", function(c) c.campaign_schedule.start_date = day(5) end,
      {}, { "schedule_not_started" } },
    { "no sequence", function(c) c.sequences = {} end, { "empty_sequence" }, {} },
    { "a sequence without steps", function(c) c.sequences = { { steps = {} } } end, { "empty_sequence" }, {} },
    { "a step with every variant disabled", function(c)
        for _, v in ipairs(c.sequences[1].steps[2].variants) do v.v_disabled = true end
      end, { "step_without_variants" }, {} },
    { "an empty body (HTML only)", function(c) c.sequences[1].steps[2].variants[1].body = "<p> &nbsp;</p>" end,
      { "empty_body" }, {} },
    { "a first email without subject", function(c) c.sequences[1].steps[1].variants[2].subject = "  " end,
      { "empty_subject" }, {} },
    { "broken variable braces", function(c) c.sequences[1].steps[1].variants[1].body = "Hi {{firstName," end,
      {}, { "template_syntax" } },
    { "a daily limit of 0", function(c) c.daily_limit = 0 end, { "daily_limit_zero" }, {} },
    { "tracking without a custom domain", function(c) c.open_tracking = true end,
      {}, { "tracking_without_custom_domain" } },
    { "a suspended campaign", function(c) c.status = -99 end, { "campaign_suspended" }, {} },
    { "bounce protection", function(c) c.status = -2 end, {}, { "campaign_bounce_protect" } },
  }

  for _, case in ipairs(CASES) do
    it("reports " .. case[1], function()
      local c = copy(good)
      case[2](c)
      srv:fault { method = "GET", path = "/campaigns/" .. good.id, status = 200, body = c }
      local report = assert(client.campaigns:preflight(good.id))
      table.sort(case[3])
      table.sort(case[4])
      assert.same(case[3], codes(report, "error"))
      assert.same(case[4], codes(report, "warning"))
      assert.equal(#case[3] == 0, report.ok)
      for _, p in ipairs(report.problems) do assert.is_string(p.message) end
    end)
  end

  it("reports accounts still warming up or not set up", function()
    local acc = copy(assert(client.accounts:get(HEALTHY[1])))
    acc.warmup_status = 1
    acc.timestamp_warmup_start = os.date("!%Y-%m-%dT%H:%M:%S.000Z", now - 3 * 86400)
    acc.stat_warmup_score = 95
    srv:fault { method = "GET", path = "/accounts/" .. HEALTHY[1], status = 200, body = acc }
    local acc2 = copy(assert(client.accounts:get(HEALTHY[2])))
    acc2.setup_pending = true
    srv:fault { method = "GET", path = "/accounts/" .. HEALTHY[2], status = 200, body = acc2 }
    local report = assert(client.campaigns:preflight(good.id, { min_warmup_days = 7 }))
    assert.same({ "account_setup_pending", "account_warming" }, codes(report, "warning"))
    assert.is_true(report.ok)
    local warming = report:has("account_warming")
    assert.equal(HEALTHY[1], warming.account)
    assert.matches("started warming up 3 days ago %(less than 7%)", warming.message)
    assert.is_false(report.accounts[2].usable)
  end)

  it("reports a campaign without leads", function()
    local empty = make_campaign("Preflight without leads", false)
    local report = assert(empty:preflight())
    assert.same({ "no_leads" }, codes(report, "error"))
    assert.is_false(report.has_leads)
    assert.is_false(report.ok)
  end)

  it("returns nil, err when the campaign cannot be read", function()
    local none, err = client.campaigns:preflight("00000000-0000-4000-8000-000000000000")
    assert.is_nil(none)
    assert.equal(404, err.status)
    srv:fault { method = "GET", path = "/accounts/" .. HEALTHY[2], status = 500, count = 5 }
    none, err = client.campaigns:preflight(good.id)
    assert.is_nil(none)
    assert.equal(500, err.status)
  end)

  describe("launch", function()
    it("activates a campaign that passes", function()
      local c = make_campaign("Launch me", true)
      local launched, report = assert(c:launch { preflight = true })
      assert.equal(1, launched.status)
      assert.is_true(report.ok)
      assert.equal(1, activations(srv:requests()))
    end)

    it("does not activate a campaign that fails, and says why", function()
      local c = make_campaign("Do not launch", false)
      local none, err = client.campaigns:launch(c.id)
      assert.is_nil(none)
      assert.equal("preflight", err.kind)
      assert.same({ "no_leads" }, err.codes)
      assert.is_false(err.report.ok)
      assert.matches("was not launched: preflight found no_leads", tostring(err))
      assert.equal(0, activations(srv:requests()))
      -- ignoring a code, or skipping the preflight, launches it
      assert(client.campaigns:launch(c.id, { ignore = { "no_leads" } }))
      assert.equal(1, activations(srv:requests()))
      local again, report = assert(client.campaigns:launch(c.id, { preflight = false }))
      assert.is_nil(report)
      assert.equal(1, again.status)
    end)

    it("refuses warnings in strict mode", function()
      local c = make_campaign("Strict", true)
      assert(client.campaigns:update(c.id, { open_tracking = true }))
      local none, err = c:launch { strict = true }
      assert.is_nil(none)
      assert.same({ "tracking_without_custom_domain" }, err.codes)
      assert.equal(0, activations(srv:requests()))
      assert(c:launch {})
    end)

    it("raises on misuse", function()
      assert.has_error(function() client.campaigns:preflight() end,
        "instantly: campaigns:preflight: expected a campaign id, a campaign record or create parameters, got nothing")
      assert.has_error(function() client.campaigns:preflight(good.id, { min_warmup = 3 }) end,
        "instantly: campaigns:preflight: unknown option 'min_warmup'")
      assert.has_error(function() client.campaigns:launch(good.id, { preflight = "yes" }) end,
        "instantly: campaigns:launch: option 'preflight' must be a boolean, got string")
      assert.has_error(function() client.campaigns:launch(good.id, { ignore = { 1 } }) end,
        "instantly: campaigns:launch: ignore lists problem codes (strings)")
    end)
  end)
end)
