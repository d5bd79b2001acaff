-- The data-driven kinds added to the mock's generic handlers (tally,
-- static placeholders, list projection, delete_where from the body,
-- job_status), attacked through HTTP: every figure is recomputed here from
-- the plain list endpoints, so a tally that miscounts cannot pass.

local mock_fixture = require "support.mock_fixture"

local ZERO = "00000000-0000-4000-8000-000000000000"

describe("mock tally conditions", function()
  local generic = require "instantly.mock.handlers.generic"
  local state = require "instantly.mock.state"
  local null = require("instantly.mock.json").null

  local function ctx_with(rows)
    local store = state.new(1)
    local coll = store:coll("email_templates")
    for i, r in ipairs(rows) do
      r.id = "t" .. i
      coll:insert(r)
    end
    return { store = store, query = {}, params = {}, body = {}, entity = { lua_name = "email_templates" } }
  end

  local ROWS = {
    { a = true, b = true, n = 1, g = "x" }, { a = true, b = false, n = 2, g = "y" },
    { a = false, b = null, n = -1, g = "x" }, { a = 0, n = 11, g = "x" },
  }

  it("counts by condition: all, set, not set, any of values, and both", function()
    local status, out = generic.tally(ctx_with(ROWS), { count = { all = "*", a = "a", not_a = "!a", b = "b",
      n = "n=1,11", a_not_b = "a&!b", const = 7, nested = { neg = "n=-1" } } })
    assert.are.equal(200, status)
    -- false and null are unset, 0 is set
    assert.are.same({ all = 4, a = 3, not_a = 1, b = 1, n = 2, a_not_b = 2, const = 7, nested = { neg = 1 } }, out)
  end)

  it("groups by fields in key order, or by a request list; percentages of the group", function()
    local ctx = ctx_with(ROWS)
    local _, rows = generic.tally(ctx, { by = { { "group", "g" } }, count = { n = "*" }, percent = { a = "a" },
      wrap = "items" })
    assert.are.same({ items = { { group = "x", n = 3, a = 66.67 }, { group = "y", n = 1, a = 100.0 } } }, rows)
    ctx.body = { gs = { "y", "z" }, flag = true, when = "now" }
    _, rows = generic.tally(ctx, { src = "body", each = { "gs", "g" }, count = { n = "*" }, percent = { a = "a" },
      flags = { flag = { echo = { at = "when", none = "missing" } } } })
    assert.are.same({ { g = "y", n = 1, a = 100.0, at = "now", none = null },
      { g = "z", n = 0, a = 0, at = "now", none = null } }, rows)
  end)
end)

describe("mock generic kinds", function()
  local srv, c

  mock_fixture({ seed = 1, rate_limits = false }, function(s, cl) srv, c = s, cl end)

  local function call(method, path, opts)
    local status, body, _, raw = c:request(method, path, opts)
    assert(status, body)
    return status, body, raw
  end

  local function ok(method, path, opts)
    local status, body, raw = call(method, path, opts)
    assert.are.equal(200, status, raw)
    return body
  end

  -- every item of a cursor-paged GET or POST list
  local function all(method, path, opts)
    local out, cursor = {}, nil
    for _ = 1, 100 do
      local o = { query = {}, body = opts and opts.body and {} or nil }
      for k, v in pairs(opts and opts.query or {}) do o.query[k] = v end
      for k, v in pairs(opts and opts.body or {}) do o.body[k] = v end
      if o.body then o.body.limit, o.body.starting_after = 100, cursor
      else o.query.limit, o.query.starting_after = 100, cursor end
      local page = ok(method, path, o)
      for _, x in ipairs(page.items) do out[#out + 1] = x end
      cursor = page.next_starting_after
      if not cursor or #page.items == 0 then return out end
    end
    error("more than 100 pages")
  end

  describe("tally", function()
    it("webhook summaries add up to the event log, overall and per date", function()
      local events = all("GET", "/webhook-events")
      assert.is_true(#events > 0)
      local okn, by = 0, {}
      for _, e in ipairs(events) do
        if e.success then okn = okn + 1 end
        by[e.timestamp_created_date] = (by[e.timestamp_created_date] or 0) + 1
      end
      local s = ok("GET", "/webhook-events/summary")
      assert.are.equal(#events, s.total_events)
      assert.are.equal(okn, s.successful_events)
      assert.are.equal(#events - okn, s.failed_events)
      assert.are.equal(math.floor(10000 * okn / #events + 0.5) / 100, s.success_rate)
      local days = ok("GET", "/webhook-events/summary-by-date").items
      local prev, sum = "", 0
      for _, d in ipairs(days) do
        assert.is_true(d.date > prev, "dates in order")
        prev = d.date
        assert.are.equal(by[d.date], d.total_events)
        assert.is_nil(d.failure_rate)
        sum = sum + d.total_events
      end
      assert.are.equal(#events, sum)
      -- a range that holds nothing counts nothing (and divides by nothing)
      s = ok("GET", "/webhook-events/summary", { query = { from = "1999-01-01", to = "1999-01-02" } })
      assert.are.same({ total_events = 0, successful_events = 0, failed_events = 0, success_rate = 0,
        failure_rate = 0 }, s)
    end)

    it("inbox placement stats classify each row once: spam, else category, else inbox", function()
      local test = ok("GET", "/inbox-placement-tests", { query = { limit = 1 } }).items[1]
      local rows = all("GET", "/inbox-placement-analytics", { query = { test_id = test.id } })
      assert.is_true(#rows > 0)
      local spam, cat = 0, 0
      for _, r in ipairs(rows) do
        if r.is_spam then spam = spam + 1 elseif r.has_category then cat = cat + 1 end
      end
      local got = ok("POST", "/inbox-placement-analytics/stats-by-test-id",
        { body = { test_ids = { test.id, ZERO } } })
      assert.are.equal(2, #got)
      assert.are.same({ test_id = test.id, count = #rows, spam_count = spam, category_count = cat,
        inbox_count = #rows - spam - cat, spam_percent = math.floor(10000 * spam / #rows + 0.5) / 100,
        category_percent = math.floor(10000 * cat / #rows + 0.5) / 100,
        inbox_percent = math.floor(10000 * (#rows - spam - cat) / #rows + 0.5) / 100 }, got[1])
      assert.are.equal(0, got[2].count)
      assert.are.equal(0, got[2].spam_percent)
      local by_date, sent = ok("POST", "/inbox-placement-analytics/stats-by-date", { body = { test_id = test.id } }), 0
      for _, d in ipairs(by_date) do
        assert.are.equal(d.sent_count, d.spam_count + d.category_count + d.inbox_count)
        sent = sent + d.sent_count
      end
      assert.are.equal(#rows, sent)
      local status, body = call("POST", "/inbox-placement-analytics/stats-by-date", { body = { test_id = ZERO } })
      assert.are.equal(404, status)
      assert.are.equal("Inbox placement test not found", body.message)
    end)

    it("deliverability insights echo the window and add the previous one only when asked", function()
      local test = ok("GET", "/inbox-placement-tests", { query = { limit = 1 } }).items[1]
      local rows = ok("POST", "/inbox-placement-analytics/deliverability-insights",
        { body = { test_id = test.id, date_from = "2020-01-01" } })
      assert.is_true(#rows > 0)
      for _, r in ipairs(rows) do
        assert.are.equal("2020-01-01", r.from)
        assert.are.equal(require("instantly.mock.json").null, r.to)
        assert.is_nil(r.previous_from)
        assert.is_nil(r.prev_spam_percentage)
      end
      rows = ok("POST", "/inbox-placement-analytics/deliverability-insights",
        { body = { test_id = test.id, show_previous = true, previous_date_from = "2019-01-01" } })
      assert.are.equal("2019-01-01", rows[1].previous_from)
      assert.are.equal(0, rows[1].prev_spam_percentage)
    end)

    it("verification stats count the list's leads by status, and 404 for an unknown list", function()
      local list = ok("GET", "/lead-lists", { query = { limit = 1 } }).items[1]
      local leads = all("POST", "/leads/list", { body = { list_id = list.id } })
      local verified, risky = 0, 0
      for _, l in ipairs(leads) do
        if l.verification_status == 1 then verified = verified + 1 end
        if l.verification_status == -2 or l.verification_status == -4 then risky = risky + 1 end
      end
      local s = ok("GET", "/lead-lists/" .. list.id .. "/verification-stats")
      assert.are.equal(#leads, s.total_leads)
      assert.are.equal(verified, s.stats.verified)
      assert.are.equal(risky, s.stats.risky)
      assert.are.equal(0, s.stats.job_change)
      local status, body = call("GET", "/lead-lists/" .. ZERO .. "/verification-stats")
      assert.are.equal(404, status)
      assert.are.equal("Lead list not found", body.message)
    end)
  end)

  it("static answers are filled per request from the store", function()
    local before = ok("GET", "/workspace-billing/plan-details")
    assert.are.equal(ok("GET", "/workspaces/current").name, before.organization_name)
    ok("POST", "/email-verification", { body = { email = "someone@example.com" } })
    local after = ok("GET", "/workspace-billing/plan-details")
    assert.are.equal(before.subscriptions.credits.available_credits - 1, after.subscriptions.credits.available_credits)
    local subs = ok("GET", "/workspace-billing/subscription-details").subscriptions
    assert.are.equal(after.organization_id, subs[1].workspace_id)
  end)

  it("account campaign mappings list the campaigns sending from the account, projected", function()
    local acct = ok("GET", "/accounts", { query = { limit = 1 } }).items[1]
    local want = {}
    for _, camp in ipairs(all("GET", "/campaigns")) do
      for _, e in ipairs(camp.email_list or {}) do if e == acct.email then want[camp.id] = camp.name end end
    end
    local got = all("GET", "/account-campaign-mappings/" .. acct.email)
    local n = 0
    for _, m in ipairs(got) do
      assert.are.equal(want[m.campaign_id], m.campaign_name)
      assert.is_nil(m.email_list)
      n = n + 1
    end
    assert.are.equal(#got, n)
    for _ in pairs(want) do n = n - 1 end
    assert.are.equal(0, n)
    local status = call("GET", "/account-campaign-mappings/nobody@nowhere.example")
    assert.are.equal(404, status)
  end)

  describe("bulk lead delete (delete_where from the body)", function()
    local function leads_of(cid) return all("POST", "/leads/list", { body = { campaign = cid } }) end

    it("needs exactly one of campaign_id and list_id", function()
      local camp = ok("GET", "/campaigns", { query = { limit = 1 } }).items[1]
      local list = ok("GET", "/lead-lists", { query = { limit = 1 } }).items[1]
      for _, b in ipairs{ {}, { campaign_id = camp.id, list_id = list.id } } do
        local status, body = call("DELETE", "/leads", { body = b })
        assert.are.equal(400, status)
        assert.are.equal("body must have exactly one of campaign_id, list_id", body.message)
      end
      assert.are.equal(404, (call("DELETE", "/leads", { body = { campaign_id = ZERO } })))
    end)

    it("keeps to the limit, to the ids, and deletes nothing for an empty id list", function()
      local camp = ok("GET", "/campaigns", { query = { limit = 1 } }).items[1]
      local n = #leads_of(camp.id)
      assert.is_true(n > 5)
      assert.are.same({ count = 0 }, ok("DELETE", "/leads", { body = { campaign_id = camp.id, ids = {} } }))
      assert.are.same({ count = 3 }, ok("DELETE", "/leads", { body = { campaign_id = camp.id, limit = 3 } }))
      local left = leads_of(camp.id)
      assert.are.equal(n - 3, #left)
      assert.are.same({ count = 1 }, ok("DELETE", "/leads",
        { body = { campaign_id = camp.id, ids = { left[1].id, ZERO } } }))
      assert.are.equal(n - 4, #leads_of(camp.id))
    end)
  end)

  it("body checks: non-empty values and lists whose values must name accounts", function()
    local acct = ok("GET", "/accounts", { query = { limit = 1 } }).items[1]
    local base = { name = "t", type = 1, sending_method = 1, email_subject = "s", email_body = "b" }
    local function test_with(extra)
      local b = {}
      for k, v in pairs(base) do b[k] = v end
      for k, v in pairs(extra) do b[k] = v end
      return call("POST", "/inbox-placement-tests", { body = b })
    end
    local status, body = test_with{ emails = {} }
    assert.are.equal(400, status)
    assert.are.equal("body/emails must NOT have fewer than 1 items", body.message)
    status, body = test_with{ emails = { acct.email, "nobody@nowhere.example" } }
    assert.are.equal(400, status)
    assert.are.equal("body/emails/1 (nobody@nowhere.example) is not an account of this workspace", body.message)
    status = test_with{ emails = { acct.email }, campaign_id = ZERO }
    assert.are.equal(404, status)
    local made = ok("POST", "/inbox-placement-tests", { body = (function()
      local b = { emails = { acct.email }, run_immediately = true, status = 2 }
      for k, v in pairs(base) do b[k] = v end
      return b
    end)() })
    assert.are.equal(2, made.status)
    assert.is_nil(made.run_immediately)
    status, body = call("PATCH", "/campaigns/" .. ok("GET", "/campaigns", { query = { limit = 1 } }).items[1].id,
      { body = { email_list = { "nobody@nowhere.example" } } })
    assert.are.equal(400, status)
    assert.are.equal("body/email_list/0 (nobody@nowhere.example) is not an account of this workspace", body.message)
    status, body = call("PATCH", "/workspaces/current", { body = { name = "" } })
    assert.are.equal(400, status)
    assert.are.equal("body/name must NOT have fewer than 1 characters", body.message)
  end)

  it("unique refuses a duplicate create; a %s label names the key in a 404", function()
    local acct = ok("GET", "/accounts", { query = { limit = 1 } }).items[1]
    local b = { email = acct.email, first_name = "A", last_name = "B", provider_code = 1, imap_username = "u",
      imap_password = "p", imap_host = "h", imap_port = 1, smtp_username = "u", smtp_password = "p",
      smtp_host = "h", smtp_port = 1 }
    local status, body = call("POST", "/accounts", { body = b })
    assert.are.equal(400, status)
    assert.are.equal("Account " .. acct.email .. " already exists", body.message)
    b.email = "fresh@mockmail.example"
    ok("POST", "/accounts", { body = b })
    assert.are.equal(400, (call("POST", "/accounts", { body = b })))
    status, body = call("GET", "/email-verification/nobody@nowhere.example")
    assert.are.equal(404, status)
    assert.are.equal("No verification found for nobody@nowhere.example", body.message)
  end)

  it("number gives a new lead label the next interest status; unique refuses a name in any case", function()
    local top = 100
    for _, l in ipairs(all("GET", "/lead-labels")) do
      if type(l.interest_status) == "number" and l.interest_status > top then top = l.interest_status end
    end
    local a = ok("POST", "/lead-labels", { body = { label = "Numbered", interest_status_label = "positive" } })
    assert.are.equal(top + 1, a.interest_status)
    assert.are.equal(false, a.use_with_ai)
    local b = ok("POST", "/lead-labels", { body = { label = "Numbered 2", interest_status_label = "neutral" } })
    assert.are.equal(top + 2, b.interest_status)
    ok("DELETE", "/lead-labels/" .. b.id)
    -- the number follows what the collection holds now, not a counter
    assert.are.equal(top + 2, ok("POST", "/lead-labels",
      { body = { label = "Numbered 3", interest_status_label = "neutral" } }).interest_status)
    local status, body = call("POST", "/lead-labels",
      { body = { label = "NUMBERED", interest_status_label = "positive" } })
    assert.are.equal(400, status)
    assert.are.equal("A label named NUMBERED already exists", body.message)
  end)

  it("matches derives is_domain from bl_value on create and patch; bad values are refused", function()
    local d = ok("POST", "/block-lists-entries", { body = { bl_value = "blocked.example" } })
    assert.is_true(d.is_domain)
    local e = ok("PATCH", "/block-lists-entries/" .. d.id, { body = { bl_value = "who@blocked.example" } })
    assert.is_false(e.is_domain)
    assert.is_false(ok("PATCH", "/block-lists-entries/" .. d.id, { body = {} }).is_domain)
    local status, body = call("PATCH", "/block-lists-entries/" .. d.id, { body = { bl_value = "not a value" } })
    assert.are.equal(400, status)
    assert.are.equal("body/bl_value must be an email address or a domain", body.message)
    assert.are.equal("who@blocked.example", ok("GET", "/block-lists-entries/" .. d.id).bl_value)
    -- a missing entry is a 404 even when the value is bad too
    status = call("PATCH", "/block-lists-entries/00000000-0000-4000-8000-000000000000",
      { body = { bl_value = "not a value" } })
    assert.are.equal(404, status)
    status, body = call("POST", "/block-lists-entries", { body = { bl_value = "WHO@blocked.example" } })
    assert.are.equal(400, status)
    assert.are.equal("Block list entry WHO@blocked.example already exists", body.message)
    assert.are.equal(400, (call("POST", "/block-lists-entries", { body = { bl_value = "a@" } })))
  end)

  it("a verification stays pending until read verification_polls times", function()
    srv:set{ verification_polls = 3 }
    assert.are.equal("pending", ok("POST", "/email-verification", { body = { email = "a@b.example" } })
      .verification_status)
    assert.are.equal("pending", ok("GET", "/email-verification/a@b.example").verification_status)
    assert.are.equal("pending", ok("GET", "/email-verification/a@b.example").verification_status)
    assert.are.equal("verified", ok("GET", "/email-verification/a@b.example").verification_status)
  end)

  it("tag filters: tag_ids keeps accounts with any of the tags, tag_ids_all those with every one", function()
    local accts = ok("GET", "/accounts", { query = { limit = 3 } }).items
    local t1 = ok("POST", "/custom-tags", { body = { label = "kinds-one" } }).id
    local t2 = ok("POST", "/custom-tags", { body = { label = "kinds-two" } }).id
    local function tag(id, emails)
      ok("POST", "/custom-tags/toggle-resource", { body = { tag_ids = { id }, resource_ids = emails,
        resource_type = 1, assign = true } })
    end
    tag(t1, { accts[1].email, accts[2].email })
    tag(t2, { accts[2].email, accts[3].email })
    local function emails(query)
      local out = {}
      for _, a in ipairs(all("GET", "/accounts", { query = query })) do out[#out + 1] = a.email end
      table.sort(out)
      return out
    end
    local any = { accts[1].email, accts[2].email, accts[3].email }
    table.sort(any)
    assert.are.same(any, emails{ tag_ids = t1 .. "," .. t2 })
    assert.are.same({ accts[2].email }, emails{ tag_ids_all = t1 .. "," .. t2 })
    assert.are.same({}, emails{ tag_ids_all = t1 .. "," .. ZERO })
    local page = ok("GET", "/accounts", { query = { tag_ids_all = t1 .. "," .. t2, include_tags = true } })
    assert.are.equal(2, #page.items[1].tags)
  end)

  it("a job read through job_status advances to success, data_fields picking its data", function()
    local job = ok("POST", "/leads/export", { body = {} })
    assert.are.equal("pending", job.status)
    local seen
    for _ = 1, 20 do
      seen = ok("GET", "/background-jobs/" .. job.id, { query = { data_fields = "exported" } })
      if seen.status == "success" then break end
    end
    assert.are.equal("success", seen.status)
    assert.is_number(seen.data.exported)
    assert.is_nil(seen.data.total)
    assert.are.equal(404, (call("GET", "/background-jobs/" .. ZERO)))
  end)
end)
