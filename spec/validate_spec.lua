-- The one validator (instantly.request.validate): nested request bodies, formats,
-- full paths in messages, the strict/warn/off switch, unconfirmed
-- operations, and the mock judging requests exactly as the SDK does.
local H = require "support.client_helper"
local instantly = require "instantly"
local validate = require "instantly.request.validate"
local mock_validate = require "instantly.mock.validate"
local core = require "instantly.core"

local UUID = "0b6f4a8e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"

local function schedule(over)
  local s = { name = "Weekdays", timing = { from = "09:00", to = "17:00" },
              days = { ["1"] = true, ["2"] = true }, timezone = "America/Chicago" }
  for k, v in pairs(over or {}) do s[k] = v end
  return { schedules = { s } }
end

local function misuse(fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error")
  return (tostring(err):gsub("^.-validate_spec%.lua:%d+: ", ""))
end

describe("nested request bodies", function()
  local c, t = H.fake_client()
  before_each(function() for i = #t.log, 1, -1 do t.log[i] = nil end end)

  local cases = {
    { "a timezone outside the documented list",
      { name = "x", campaign_schedule = schedule { timezone = "Mars/Olympus" } },
      'instantly: campaigns:create: campaign_schedule.schedules[1].timezone: "Mars/Olympus" is not one of '
      .. '"Etc/GMT+12", "Etc/GMT+11", "Etc/GMT+10", "America/Anchorage", "America/Dawson", "America/Creston", '
      .. "... (102 values)" },
    { "a time that is not HH:MM",
      { name = "x", campaign_schedule = schedule { timing = { from = "9am", to = "17:00" } } },
      'instantly: campaigns:create: campaign_schedule.schedules[1].timing.from: "9am" is not a time of day '
      .. "(HH:MM, 24-hour)" },
    { "an hour past 23",
      { name = "x", campaign_schedule = schedule { timing = { from = "24:00", to = "17:00" } } },
      'instantly: campaigns:create: campaign_schedule.schedules[1].timing.from: "24:00" is not a time of day '
      .. "(HH:MM, 24-hour)" },
    { "a day key outside 0-6",
      { name = "x", campaign_schedule = schedule { days = { ["7"] = true } } },
      'instantly: campaigns:create: campaign_schedule.schedules[1].days: key "7" is not one of '
      .. '"0", "1", "2", "3", "4", "5", "6"' },
    { "a day value that is not a boolean",
      { name = "x", campaign_schedule = schedule { days = { ["1"] = 1 } } },
      'instantly: campaigns:create: campaign_schedule.schedules[1].days["1"]: must be a boolean, got integer' },
    { "a schedule without its timezone",
      { name = "x", campaign_schedule = { schedules = { { name = "a", timing = { from = "09:00", to = "10:00" },
                                                          days = {} } } } },
      "instantly: campaigns:create: campaign_schedule.schedules[1]: missing required field 'timezone'" },
    { "a step of type sms",
      { name = "x", campaign_schedule = schedule(),
        sequences = { { steps = { { type = "sms", delay = 1, variants = { { subject = "s", body = "b" } } } } } } },
      'instantly: campaigns:create: sequences[1].steps[1].type: "sms" is not one of "email"' },
    { "a delay unit that does not exist",
      { name = "x", campaign_schedule = schedule(),
        sequences = { { steps = { { type = "email", delay = 1, delay_unit = "weeks",
                                    variants = { { subject = "s", body = "b" } } } } } } },
      'instantly: campaigns:create: sequences[1].steps[1].delay_unit: "weeks" is not one of "minutes", "hours", '
      .. '"days"' },
    { "a variant without a body",
      { name = "x", campaign_schedule = schedule(),
        sequences = { { steps = { { type = "email", delay = 1, variants = { { subject = "s" } } } } } } },
      "instantly: campaigns:create: sequences[1].steps[1].variants[1]: missing required field 'body'" },
    { "a start date that is not a date",
      { name = "x", campaign_schedule = { start_date = "2026-02-30", schedules = schedule().schedules } },
      'instantly: campaigns:create: campaign_schedule.start_date: "2026-02-30" is not a date (YYYY-MM-DD)' },
  }
  for _, case in ipairs(cases) do
    it("refuses " .. case[1] .. " before sending, naming its path", function()
      assert.equal(case[3], misuse(function() c.campaigns:create(case[2]) end))
      assert.equal(0, #t.log)
    end)
  end

  it("refuses emails:send_test without body.html", function()
    assert.equal("instantly: emails:send_test: body: missing required field 'html'", misuse(function()
      c.emails:send_test { eaccount = "a@b.co", to_address_email_list = "x@y.co", subject = "s", body = { text = "t" } }
    end))
  end)

  it("checks formats: uuid, email, date-time, uri", function()
    assert.equal('instantly: leads:list: campaign: "c1" is not a uuid',
      misuse(function() c.leads:list { campaign = "c1" } end))
    assert.equal('instantly: leads:create: email: "not-an-address" is not an email address',
      misuse(function() c.leads:create { email = "not-an-address" } end))
    assert.equal('instantly: webhooks:create: target_hook_url: "ftp//x" is not a URI (scheme://host/...)',
      misuse(function() c.webhooks:create { target_hook_url = "ftp//x", event_type = "email_sent" } end))
    assert.equal(0, #t.log)
  end)

  it("accepts what the documented shapes allow and sends it intact", function()
    local body = { name = "Launch", campaign_schedule = schedule { timezone = "Etc/GMT-12" },
                   sequences = { { steps = { { type = "email", delay = 2, delay_unit = "days",
                                               variants = { { subject = "Hi", body = "<p>x</p>" } } } } } } }
    assert(c.campaigns:create(body))
    local sent = t.log[1].json
    assert.equal("Etc/GMT-12", sent.campaign_schedule.schedules[1].timezone)
    assert.equal("<p>x</p>", sent.sequences[1].steps[1].variants[1].body)
    assert.is_true(sent.campaign_schedule.schedules[1].days["1"])
  end)

  it("lets an explicit null through where the field is nullable (clearing it)", function()
    assert(c.campaigns:update(UUID, { daily_limit = instantly.null, campaign_schedule = {
      start_date = instantly.null, schedules = schedule().schedules } }))
    assert.matches('"daily_limit":null', t.log[1].body)
    assert.matches('"start_date":null', t.log[1].body)
  end)

  it("checks the webhook event types the sources list, including lead_no_show", function()
    assert(c.webhooks:list { event_type = "lead_no_show" })
    assert(c.webhooks:list { event_type = "supersearch_enrichment_completed" })
    assert(c.campaigns:list { exclude_status = 2, sort_column = "timestamp_created", sort_order = "desc" })
    assert(c.accounts:list { skip = 10 })
    assert.matches("exclude_status=2", t.log[3].url)
    assert.matches("skip=10", t.log[4].url)
  end)

  it("checks the other nested bodies: warmup settings, lead queries, custom variables, webhook headers", function()
    assert.equal("instantly: accounts:update: warmup.advanced.open_rate: must be a finite number, got string",
      misuse(function() c.accounts:update("a@b.co", { warmup = { advanced = { open_rate = "high" } } }) end))
    assert.equal('instantly: leads:list: queries[1].actionType: "opened" is not one of "reply", "email-open", '
      .. '"last-contacted", "link-click", "lead-status", "lead-status-change"',
      misuse(function() c.leads:list { queries = { { actionType = "opened", values = {} } } } end))
    assert.equal('instantly: leads:list: queries[1].values["occurrence-count"].condition: "about" is not one of '
      .. '"more", "less", "equal"',
      misuse(function() c.leads:list { queries = { { actionType = "reply",
        values = { ["occurrence-count"] = { condition = "about", count = 2 } } } } } end))
    assert.equal("instantly: leads:create: custom_variables.address: must be a string, number or boolean, got table",
      misuse(function() c.leads:create { email = "a@b.co", custom_variables = { address = { city = "x" } } } end))
    assert.equal('instantly: webhooks:create: headers["X-Token"]: must be a string, got integer',
      misuse(function() c.webhooks:create { target_hook_url = "https://h.example/x", event_type = "email_sent",
        headers = { ["X-Token"] = 5 } } end))
    assert.equal('instantly: accounts:enable_warmup: filter.filter: "ACC_FILTER_ALL" is not one of '
      .. '"ACC_FILTER_PAUSED", '
      .. '"ACC_FILTER_ERROR", "ACC_FILTER_NO_CTD", "ACC_FILTER_PW_ACCOUNTS", "ACC_FILTER_DFY", '
      .. '"ACC_FILTER_DFY_SETUP_PENDING", "ACC_FILTER_W_ACTIVE", "ACC_FILTER_W_PAUSED", "ACC_FILTER_W_ERROR"',
      misuse(function() c.accounts:enable_warmup { filter = { filter = "ACC_FILTER_ALL" } } end))
    assert(c.leads:create { email = "a@b.co", custom_variables = { plan = "pro", seats = 3, vip = true,
                                                                   old = instantly.null } })
    assert.equal(1, #t.log)
  end)

  it("takes a value in any of its documented shapes (a tag filter: object or one filter string)", function()
    local function toggle(filter)
      return c.custom_tags:toggle_resource { tag_ids = { "0b6f4a8e-1c2d-4e5f-8a9b-0c1d2e3f4a5c" }, resource_type = 1,
                                             assign = true, filter = filter }
    end
    assert(toggle("ACC_FILTER_PAUSED"))
    assert(toggle { tag_id = "no-tag", search = "acme" })
    assert.equal(2, #t.log)
    assert.equal("ACC_FILTER_PAUSED", t.log[1].json.filter)
    -- neither shape: the object shape's problem is the one reported
    assert.equal("instantly: custom_tags:toggle_resource: filter: must be an object (a table with string keys), "
      .. "got integer", misuse(function() toggle(7) end))
    assert.equal('instantly: custom_tags:toggle_resource: filter.filter: "ACC_FILTER_NOPE" is not one of '
      .. '"ACC_FILTER_PAUSED", "ACC_FILTER_ERROR", "ACC_FILTER_NO_CTD", "ACC_FILTER_PW_ACCOUNTS", "ACC_FILTER_DFY", '
      .. '"ACC_FILTER_DFY_SETUP_PENDING", "ACC_FILTER_W_ACTIVE", "ACC_FILTER_W_PAUSED", "ACC_FILTER_W_ERROR"',
      misuse(function() toggle { filter = "ACC_FILTER_NOPE" } end))
  end)

  it("checks leads:list filter values", function()
    assert(c.leads:list { filter = "FILTER_VAL_REPLIED" })
    assert.matches('^instantly: leads:list: filter: "FILTER_VAL_NOPE" is not one of "FILTER_VAL_CONTACTED"',
      misuse(function() c.leads:list { filter = "FILTER_VAL_NOPE" } end))
  end)
end)

describe("formats", function()
  local rows = {
    { "uuid", UUID, true }, { "uuid", UUID:upper(), true }, { "uuid", UUID .. "0", false },
    { "uuid", (UUID:gsub("%-", "x")), false },
    { "email", "a.b+c@d.example", true }, { "email", "a@b", false }, { "email", "a..b@c.de", false },
    { "email", "a b@c.de", false },
    { "date", "2024-02-29", true }, { "date", "2023-02-29", false }, { "date", "2026-13-01", false },
    { "date", "2026-1-01", false },
    { "date-time", "2026-01-31T09:00:00Z", true }, { "date-time", "2026-01-31T09:00:00.123+02:00", true },
    { "date-time", "2026-01-31", true }, { "date-time", "2026-01-31T25:00:00Z", false },
    { "date-time", "yesterday", false },
    { "uri", "https://hooks.example.com/x?y=1", true }, { "uri", "http://127.0.0.1:9/", true },
    { "uri", "hooks.example.com", false }, { "uri", "https:// space", false },
    { "hh:mm", "00:00", true }, { "hh:mm", "23:59", true }, { "hh:mm", "9:00", false }, { "hh:mm", "12:60", false },
  }
  for _, r in ipairs(rows) do
    it(r[1] .. " " .. r[2] .. " -> " .. tostring(r[3]), function()
      assert.equal(r[3], validate.format_ok(r[1], r[2]))
    end)
  end
end)

describe("the validation switch", function()
  it("warn sends the request and reports each problem once through on_warning", function()
    local said = {}
    local c, t = H.fake_client(nil, { validate = "warn", on_warning = function(s) said[#said + 1] = s end })
    local body = { name = "x", campaign_schedule = schedule { timezone = "America/New_York" } }
    assert(c.campaigns:create(body))
    assert(c.campaigns:create(body))
    assert.equal(2, #t.log)
    assert.equal("America/New_York", t.log[1].json.campaign_schedule.schedules[1].timezone)
    assert.equal(1, #said)
    assert.matches('^campaigns:create: campaign_schedule%.schedules%[1%]%.timezone: "America/New_York" is not one of',
      said[1])
  end)

  it("warn sends unknown parameters as given, in the body or the query", function()
    local said = {}
    local c, t = H.fake_client(nil, { validate = "warn", on_warning = function(s) said[#said + 1] = s end })
    assert(c.campaigns:list { brand_new_filter = "x", limit = 5 })
    assert.matches("limit=5&brand_new_filter=x$", t.log[1].url)
    assert(c.leads:list { brand_new_field = { 1, 2 } })
    assert.same({ 1, 2 }, t.log[2].json.brand_new_field)
    assert.matches("^campaigns:list: unknown parameter 'brand_new_filter' sent as given", said[1])
  end)

  it("warn refuses nothing the API documents and reports a missing required one", function()
    local said = {}
    local c, t = H.fake_client(nil, { validate = "warn", on_warning = function(s) said[#said + 1] = s end })
    assert(c.campaigns:create { name = "only a name" })
    assert.equal(1, #t.log)
    assert.same({ "campaigns:create: missing required parameter 'campaign_schedule'" }, said)
  end)

  it("off checks nothing and says nothing", function()
    local said = {}
    local c, t = H.fake_client(nil, { validate = "off", on_warning = function(s) said[#said + 1] = s end })
    assert(c.campaigns:list { limit = 1000, status = "odd", extra = true })
    assert.matches("limit=1000", t.log[1].url)
    assert.matches("status=odd", t.log[1].url)
    assert.same({}, said)
  end)

  it("a call can switch the mode for itself", function()
    local c, t = H.fake_client()
    assert.has_error(function() c.campaigns:list { limit = 1000 } end)
    assert(c.campaigns:list({ limit = 1000 }, { validate = "off" }))
    assert.equal(1, #t.log)
    local strict = H.fake_client(nil, { validate = "off" })
    assert.has_error(function() strict.campaigns:list({ limit = 1000 }, { validate = "strict" }) end)
    assert.has_error(function() c.campaigns:list({}, { validate = "loose" }) end,
      'instantly: campaigns:list: option \'validate\' must be "strict", "warn" or "off", got "loose"')
    assert.has_error(function() instantly.new { api_key = "k", validate = "loose" } end,
      'instantly.new: option \'validate\' must be "strict", "warn" or "off"')
  end)

  it("iterators follow the mode too", function()
    local c, t = H.fake_client(H.const(200, '{"items":[],"next_starting_after":null}'), { validate = "warn",
      on_warning = function() end })
    for _ in c.campaigns:each { status = 99 } do end
    assert.matches("status=99", t.log[1].url)
  end)

  it("remembers a bounded number of texts: past the bound a new text is still reported", function()
    local said = 0
    local c = H.fake_client(nil, { validate = "warn", on_warning = function() said = said + 1 end })
    for i = 1, 1100 do assert(c.campaigns:list { ["extra_" .. i] = 1 }) end
    assert.equal(1100, said)
    assert(c.campaigns:list { extra_1 = 1 })
    assert.equal(1100, said, "remembered texts are not repeated")
    assert(c.campaigns:list { extra_1050 = 1 })
    assert.equal(1101, said, "texts past the bound are reported again rather than kept")
  end)

  it("sends an integral float as an integer", function()
    local c, t = H.fake_client()
    assert(c.campaigns:list { limit = 5.0 })
    assert.matches("limit=5$", t.log[1].url)
  end)

  it("converts inside a nested body on a copy: the caller's tables are never changed", function()
    local c, t = H.fake_client()
    local lead = { email = "a@b.example", lt_interest_status = 1.0 }
    local other = { email = "c@d.example" }
    local params = { campaign_id = "00000000-0000-4000-8000-0000000000c1", leads = { lead, other } }
    assert(c.leads:add_many(params))
    assert.equal("integer", math.type(t.log[1].json.leads[1].lt_interest_status))
    assert.equal("float", math.type(lead.lt_interest_status), "the caller's value is untouched")
    assert.equal(lead, params.leads[1])
    local sched = { name = "W", timezone = "Etc/GMT+12", timing = { from = "09:00", to = "17:00" },
                    days = { ["1"] = true } }
    local cp = { name = "N", campaign_schedule = { schedules = { sched } },
                 sequences = { { steps = { { type = "email", delay = 2, variants = {} } } } } }
    assert(c.campaigns:create(cp))
    assert.is_nil(getmetatable(cp.sequences[1].steps[1].variants), "the caller's empty array is not marked")
    assert.truthy(t.log[2].body:find('"variants":[]', 1, true), t.log[2].body)
  end)

  it("without a hook, warnings go to Lua's warn()", function()
    local got = {}
    local real = _G.warn
    _G.warn = function(...) got[#got + 1] = table.concat({ ... }) end
    local ok, err = pcall(function()
      local c = H.fake_client(nil, { validate = "warn" })
      assert(c.campaigns:list { status = 99 })
    end)
    _G.warn = real
    assert(ok, err)
    assert.equal(1, #got)
    assert.matches("^instantly: campaigns:list: status: 99 is not one of", got[1])
  end)
end)

describe("unconfirmed operations", function()
  it("stay callable and warn once per client", function()
    local said = {}
    local c, t = H.fake_client(nil, { on_warning = function(s) said[#said + 1] = s end })
    assert(c.sales_flows:list())
    assert(c.sales_flows:list())
    assert.equal(2, #t.log)
    assert.equal(1, #said)
    assert.matches("^sales_flows:list: GET /sales%-flows is unconfirmed: ", said[1])
    assert.matches("singular path /sales%-flow,", said[1])
    assert(c.campaigns:list())
    assert.equal(1, #said, "a confirmed operation says nothing")
  end)

  it("are exactly the 15 template/flow operations and POST /leads/export, with their evidence", function()
    local n = 0
    for _, name in ipairs(require("instantly.entities").entities) do
      for _, op in ipairs(require("instantly.entities." .. name).operations) do
        assert.is_table(op.evidence, op.id .. " has no evidence")
        assert.is_true(#op.evidence > 0, op.id)
        if op.unconfirmed then
          n = n + 1
          assert.is_nil(op.path:find("^/campaigns"))
        else
          local built = false
          for _, e in ipairs(op.evidence) do
            if e == "vendor-kit" or e == "go-instantly" then built = true end
          end
          assert.is_true(built, op.id .. " is confirmed without a source built from the spec")
        end
      end
    end
    assert.equal(16, n)
    local c = H.fake_client()
    assert.matches("%[unconfirmed%]", c.email_templates:help())
    assert.matches("UNCONFIRMED: ", c.leads:help("export"))
    -- and in the type stubs and the reference input
    local gen = dofile("tools/gen-types.lua")
    local stubs = gen.render_types()
    assert.truthy(stubs["types/entities/sales_flows.lua"]:find("UNCONFIRMED: ", 1, true))
    assert.is_nil(stubs["types/entities/campaigns.lua"]:find("UNCONFIRMED", 1, true))
  end)
end)

describe("the mock judges requests with the same validator", function()
  -- The same bodies through the SDK (strict) and the mock's adapter: both
  -- accept or both refuse, and the mock's message names the same place.
  local campaigns = require "instantly.entities.campaigns"
  local create
  for _, op in ipairs(campaigns.operations) do if op.id == "createCampaign" then create = op end end
  local c = H.fake_client()
  local bodies = {
    { name = "x", campaign_schedule = schedule() },
    { name = "x", campaign_schedule = schedule { timezone = "Mars/Olympus" } },
    { name = "x", campaign_schedule = schedule { timing = { from = "9", to = "10:00" } } },
    { name = "x", campaign_schedule = schedule { days = { ["8"] = true } } },
    { name = "x" },
    { name = 5, campaign_schedule = schedule() },
    { name = "x", campaign_schedule = schedule(), daily_limit = 1.5 },
    { name = "x", campaign_schedule = schedule(), daily_limit = core.null },
    { name = "x", campaign_schedule = schedule(), email_list = { "a@b.co", 3 } },
  }
  for i, b in ipairs(bodies) do
    it("body #" .. i, function()
      local sdk_ok = pcall(c.campaigns.create, c.campaigns, b)
      -- what the mock sees is what the SDK would have sent, through JSON
      local wire = core.json_decode(assert(core.json_encode(b)))
      local mock_ok, msg = mock_validate.body(create, wire)
      assert.equal(sdk_ok, mock_ok == true, tostring(msg))
      if not sdk_ok then assert.matches("^body", msg) end
    end)
  end

  it("words problems the way the vendor's server does", function()
    local wire = core.json_decode(assert(core.json_encode { name = "x",
      campaign_schedule = schedule { timezone = "Mars/Olympus" } }))
    local _, msg = mock_validate.body(create, wire)
    assert.equal("body/campaign_schedule/schedules/0/timezone must be equal to one of the allowed values", msg)
  end)
end)

describe("the CLI's --no-validate", function()
  local cli = require "instantly.cli"
  local function run(argv)
    local out, err = {}, {}
    local function sink(t)
      return { write = function(self, ...) for _, s in ipairs({ ... }) do t[#t + 1] = tostring(s) end return self end,
               flush = function() end }
    end
    local env = { INSTANTLY_API_KEY = "dry-run-key-0123456789", INSTANTLY_BASE_URL = "http://127.0.0.1:9" }
    local code = cli.main(argv, { stdout = sink(out), stderr = sink(err) }, function(k) return env[k] end)
    return code, table.concat(out), table.concat(err)
  end

  it("refuses a bad value without it, sends it with a warning on stderr with it", function()
    local code, _, err = run { "webhooks", "list", "--campaign", "not-a-uuid", "--dry-run" }
    assert.are_not.equal(0, code)
    assert.matches('campaign: "not%-a%-uuid" is not a uuid', err)
    code = run { "campaigns", "list", "--status", "9", "--dry-run" }
    assert.are_not.equal(0, code)
    local out
    code, out, err = run { "campaigns", "list", "--status", "9", "--no-validate", "--dry-run" }
    assert.equal(0, code, err)
    assert.matches("status=9", out)
    assert.matches("instantly: warning: campaigns:list: status: 9 is not one of", err)
  end)

  it("marks unconfirmed actions in help and warns when one is called", function()
    local _, out = run { "sales_flows", "--help" }
    assert.matches("%[unconfirmed%]", out)
    local code, _, err = run { "sales_flows", "list", "--dry-run" }
    assert.equal(0, code, err)
    assert.matches("instantly: warning: sales_flows:list: GET /sales%-flows is unconfirmed", err)
  end)
end)
