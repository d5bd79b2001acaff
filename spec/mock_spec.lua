-- instantly.mock: the Lua helper, auth, validation, state that behaves like
-- the service, pagination, async patterns and analytics that add up.

local mock = require "instantly.mock"
local client = require "instantly.mock.client"
local mock_fixture = require "support.mock_fixture"
local json = require "instantly.mock.json"

local null, is_array = json.null, json.is_array

describe("instantly.mock helper", function()
  it("documents a test key shaped like a real one", function()
    assert.is_string(mock.DEFAULT_API_KEY)
    assert.truthy(mock.DEFAULT_API_KEY:match("^inst_[%w_]+$"))
  end)

  it("rejects unknown and mistyped options", function()
    assert.has.error(function() mock.start{ sed = 1 } end, "mock.start: unknown option 'sed'")
    assert.has.error(function() mock.start{ seed = "1" } end, "mock.start: option 'seed' must be a number")
    assert.has.error(function() mock.start{ api_keys = { "" } } end,
      "mock.start: api_keys[1] must be a non-empty string")
  end)

  it("starts, serves, and stops idempotently; the process is gone after stop", function()
    local srv = assert(mock.start{ seed = 3, rate_limits = false })
    assert.truthy(srv.url:match("^http://127%.0%.0%.1:%d+$"))
    assert.are.equal(mock.DEFAULT_API_KEY, srv.api_key)
    assert.is_number(srv.pid)
    local c = client.new(srv.url, { api_key = srv.api_key })
    assert.are.equal(200, (c:request("GET", "/workspaces/current")))
    c:close()
    srv:stop()
    srv:stop()
    assert.is_false(os.execute("kill -0 " .. srv.pid .. " 2>/dev/null") == true)
    assert.has.error(function() srv:requests() end, "mock: server is stopped")
    assert.truthy(tostring(srv):find("stopped", 1, true))
  end)

  it("stops the server when the handle is collected", function()
    local pid
    do
      local srv = assert(mock.start{ rate_limits = false })
      pid = srv.pid
    end
    collectgarbage()
    collectgarbage()
    assert.is_false(os.execute("kill -0 " .. pid .. " 2>/dev/null") == true)
  end)

  it("accepts only the keys it was given", function()
    local srv <close> = assert(mock.start{ api_keys = { "inst_custom_key_1", "inst_custom_key_2" },
      rate_limits = false })
    assert.are.equal("inst_custom_key_1", srv.api_key)
    for key, want in pairs{ inst_custom_key_1 = 200, inst_custom_key_2 = 200, [mock.DEFAULT_API_KEY] = 401 } do
      local c = client.new(srv.url, { api_key = key })
      assert.are.equal(want, (c:request("GET", "/campaigns")), key)
      c:close()
    end
  end)

  it("exits when its parent process dies", function()
    -- a throwaway parent: a shell that starts the server as its child,
    -- then becomes `sleep`; killing it orphans the server
    local bin = debug.getinfo(mock.start, "S").source:sub(2):match("^(.*)/lua/instantly/mock/init.lua$")
      .. "/bin/instantly-mock"
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write("echo $$\n",
      string.format("LUA_PATH='%s' LUA_CPATH='%s' lua5.4 %s --parent-pid $$ --quiet &\n",
        package.path, package.cpath, bin),
      "exec sleep 30\n")
    f:close()
    local p = io.popen("exec sh " .. script, "r")
    local parent = tonumber(p:read("l"))
    local url = p:read("l"):match("^listening on (%S+)$")
    assert.is_number(parent)
    assert.is_string(url)
    local c = client.new(url, { timeout = 2 })
    assert.are.equal(200, (c:request("GET", "/__mock/health")))
    c:close()
    os.execute("kill " .. parent)
    p:close()
    os.remove(script)
    -- the server looks at its parent about once a second: wait (bounded)
    -- until connections are refused
    local gone = false
    for _ = 1, 100 do
      local s = require("socket").tcp()
      s:settimeout(1)
      local okc = s:connect(url:match("//([^:]+)"), tonumber(url:match(":(%d+)$")))
      s:close()
      if not okc then gone = true break end
      require("socket").sleep(0.1)
    end
    assert.is_true(gone)
  end)
end)

describe("instantly-mock API behaviour", function()
  local srv, c

  mock_fixture({ seed = 1, rate_limits = false }, function(s, cl) srv, c = s, cl end)

  local function req(method, path, opts)
    local status, body, headers, raw = c:request(method, path, opts)
    assert(status, body)
    return status, body, headers, raw
  end

  local function ok(method, path, opts)
    local status, body, _, raw = req(method, path, opts)
    assert.are.equal(200, status, raw)
    return body
  end

  describe("auth and errors", function()
    it("answers 401 with the vendor envelope without a key or with a wrong one", function()
      local anon = client.new(srv.url)
      local status, body = anon:request("GET", "/campaigns")
      assert.are.equal(401, status)
      assert.are.same({ statusCode = 401, error = "Unauthorized", message = "Missing Authorization header" }, body)
      status, body = anon:request("GET", "/campaigns", { headers = { Authorization = "Bearer nope" } })
      assert.are.equal(401, status)
      assert.are.equal("Invalid API key", body.message)
      status = anon:request("GET", "/campaigns", { headers = { Authorization = "Basic " .. srv.api_key } })
      assert.are.equal(401, status)
      anon:close()
    end)

    it("answers unknown routes and unknown ids with 404", function()
      local status, body = req("GET", "/no-such-thing")
      assert.are.equal(404, status)
      assert.are.same({ statusCode = 404, error = "Not Found", message = "Route GET:/api/v2/no-such-thing not found" },
        body)
      status = req("PUT", "/campaigns")
      assert.are.equal(404, status)
      status, body = req("GET", "/campaigns/6f1c2d4e-1111-4222-8333-444455556666")
      assert.are.equal(404, status)
      assert.are.equal("Campaign not found", body.message)
      assert.are.equal(404, (req("GET", "/accounts/nobody%40nowhere.example")))
    end)

    it("redacts the key in the request log", function()
      srv:clear_requests()
      req("GET", "/campaigns", { query = { limit = 2 }, headers = { ["X-Trace"] = "t1" } })
      local log = srv:requests()
      assert.are.equal(1, #log)
      assert.are.equal("Bearer [REDACTED]", log[1].headers.authorization)
      assert.are.equal("t1", log[1].headers["x-trace"])
      assert.is_nil(json.encode(log):find(srv.api_key, 1, true))
    end)

    it("lets API keys created through the API authenticate within their scopes", function()
      local key = ok("POST", "/api-keys", { body = { name = "ci", scopes = { "campaigns:read" } } })
      assert.truthy(key.key:match("^inst_"))
      local listed = ok("GET", "/api-keys").items
      for _, k in ipairs(listed) do assert.is_nil(k.key:find(key.key, 1, true)) end
      local scoped = client.new(srv.url, { api_key = key.key })
      assert.are.equal(200, (scoped:request("GET", "/campaigns")))
      local status, body = scoped:request("POST", "/lead-lists", { body = { name = "x" } })
      assert.are.equal(403, status)
      assert.truthy(body.message:find("lead_lists:create", 1, true))
      ok("DELETE", "/api-keys/" .. key.id)
      assert.are.equal(401, (scoped:request("GET", "/campaigns")))
      scoped:close()
    end)
  end)

  describe("validation", function()
    local cases = {
      { "POST", "/campaigns", { body = { campaign_schedule = { schedules = {} } } },
        "body must have required property 'name'" },
      { "POST", "/campaigns", { body = { name = 5, campaign_schedule = { schedules = {} } } },
        "body/name must be string" },
      { "POST", "/lead-lists", { body = { name = "x", has_enrichment_task = "yes" } },
        "body/has_enrichment_task must be boolean" },
      { "GET", "/campaigns", { query = { limit = 0 } }, "querystring/limit must be >= 1" },
      { "GET", "/campaigns", { query = { limit = 101 } }, "querystring/limit must be <= 100" },
      { "GET", "/campaigns", { query = { limit = "ten" } }, "querystring/limit must be integer" },
      { "GET", "/accounts", { query = { status = 9 } },
        "querystring/status must be equal to one of the allowed values" },
      { "GET", "/subsequences", {}, "querystring must have required property 'parent_campaign'" },
      { "GET", "/campaigns/not-a-uuid", {}, 'params/id must match format "uuid"' },
      { "POST", "/leads/list", { body = { limit = 500 } }, "body/limit must be <= 100" },
      { "GET", "/campaigns", { query = { starting_after = "bogus" } },
        "querystring/starting_after is not a valid cursor" },
      { "POST", "/leads/add", { body = { leads = {} } }, "body must have exactly one of campaign_id, list_id" },
    }
    for _, case in ipairs(cases) do
      it(case[1] .. " " .. case[2] .. " -> " .. case[4], function()
        local status, body = req(case[1], case[2], case[3])
        assert.are.equal(400, status)
        assert.are.equal(400, body.statusCode)
        assert.are.equal("Bad Request", body.error)
        assert.are.equal(case[4], body.message)
      end)
    end

    it("rejects a body that is not JSON", function()
      local status, body = req("POST", "/lead-lists", { raw_body = "{name:" })
      assert.are.equal(400, status)
      assert.truthy(body.message:find("^Body is not valid JSON"))
    end)
  end)

  describe("state", function()
    it("persists creates, reflects them in get and list, applies PATCH and DELETE", function()
      local list = ok("POST", "/lead-lists", { body = { name = "Trade show" } })
      assert.truthy(list.id:match("^%x+%-%x+%-4%x+%-%x+%-%x+$"))
      assert.truthy(list.timestamp_created:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"))
      assert.are.same(list, ok("GET", "/lead-lists/" .. list.id))
      local found = false
      for _, l in ipairs(ok("GET", "/lead-lists", { query = { search = "trade" } }).items) do
        if l.id == list.id then found = true end
      end
      assert.is_true(found)
      local patched = ok("PATCH", "/lead-lists/" .. list.id, { body = { name = "Trade show 2026" } })
      assert.are.equal("Trade show 2026", patched.name)
      assert.are.equal("Trade show 2026", ok("GET", "/lead-lists/" .. list.id).name)
      local deleted = ok("DELETE", "/lead-lists/" .. list.id)
      assert.are.equal(list.id, deleted.id)
      assert.are.equal(404, (req("GET", "/lead-lists/" .. list.id)))
      assert.are.equal(404, (req("DELETE", "/lead-lists/" .. list.id)))
    end)

    it("moves campaigns draft -> active -> paused", function()
      local camp = ok("POST", "/campaigns", { body = { name = "Launch", campaign_schedule = { schedules = {} },
        sequences = { { steps = { { type = "email", delay = 0,
          variants = { { subject = "Hi", body = "Hello" } } } } } } } })
      assert.are.equal(0, camp.status)
      local st = ok("GET", "/campaigns/" .. camp.id .. "/sending-status")
      assert.are.equal(null, st.diagnostics)
      assert.are.equal("campaign_draft", st.summary.status)
      assert.are.equal(1, ok("POST", "/campaigns/" .. camp.id .. "/activate").status)
      assert.are.equal(1, ok("GET", "/campaigns/" .. camp.id).status)
      assert.are.equal(2, ok("POST", "/campaigns/" .. camp.id .. "/pause").status)
      local status, _, _, raw = req("POST", "/campaigns/" .. camp.id .. "/share")
      assert.are.equal(204, status)
      assert.are.equal("", raw)
      local copy = ok("POST", "/campaigns/" .. camp.id .. "/duplicate", { body = { name = "Launch II" } })
      assert.are.equal(0, copy.status)
      assert.are.not_equal(camp.id, copy.id)
    end)

    it("filters campaign lists by status, search and tag", function()
      local all = ok("GET", "/campaigns").items
      local active = ok("GET", "/campaigns", { query = { status = 1 } }).items
      assert.is_true(#active > 0 and #active < #all)
      for _, camp in ipairs(active) do assert.are.equal(1, camp.status) end
      local found = ok("GET", "/campaigns", { query = { search = all[2].name:sub(1, 6):upper() } }).items
      assert.are.equal(all[2].id, found[1].id)
      local tag = ok("POST", "/custom-tags", { body = { label = "Spec tag" } })
      ok("POST", "/custom-tags/toggle-resource", { body = { tag_ids = { tag.id }, resource_type = 2,
        resource_ids = { all[3].id }, assign = true } })
      local tagged = ok("GET", "/campaigns", { query = { tag_ids = tag.id } }).items
      assert.are.equal(1, #tagged)
      assert.are.equal(all[3].id, tagged[1].id)
      local mappings = ok("GET", "/custom-tag-mappings", { query = { resource_ids = all[3].id } }).items
      assert.are.equal(tag.id, mappings[#mappings].tag_id)
      ok("DELETE", "/custom-tags/" .. tag.id)
      assert.are.equal(0, #ok("GET", "/campaigns", { query = { tag_ids = tag.id } }).items)
    end)

    it("refuses to activate a campaign without sequence steps", function()
      local camp = ok("POST", "/campaigns", { body = { name = "Empty", campaign_schedule = { schedules = {} } } })
      local status, body = req("POST", "/campaigns/" .. camp.id .. "/activate")
      assert.are.equal(400, status)
      assert.truthy(body.message:find("sequence", 1, true))
    end)

    it("adds leads with dedupe, the block list and invalid emails counted", function()
      local camp = ok("GET", "/campaigns").items[1]
      local existing = ok("POST", "/leads/list", { body = { campaign = camp.id, limit = 1 } }).items[1]
      ok("POST", "/block-lists-entries", { body = { bl_value = "blocked-corp.example" } })
      local r = ok("POST", "/leads/add", { body = {
        campaign_id = camp.id, skip_if_in_campaign = true,
        leads = {
          { email = "new.one@example.com", first_name = "New" },
          { email = existing.email },
          { email = "sales@blocked-corp.example" },
          { email = "not-an-email" },
          { email = "new.one@example.com" },
          { first_name = "No email" },
        },
      } })
      assert.are.equal(6, r.total_sent)
      assert.are.equal(1, r.leads_uploaded)
      assert.are.equal(1, r.skipped_count)
      assert.are.equal(1, r.in_blocklist)
      assert.are.equal(1, r.invalid_email_count)
      assert.are.equal(1, r.duplicate_email_count)
      assert.are.equal(1, r.incomplete_count)
      assert.is_nil(r.invalid_emails) -- not in the documented response
      assert.are.equal(1, #r.created_leads)
      assert.are.equal(0, r.created_leads[1].index)
      local lead = ok("GET", "/leads/" .. r.created_leads[1].id)
      assert.are.equal(camp.id, lead.campaign)
      assert.are.equal("New", lead.first_name)
      -- without the skip flag the same email is added again to another campaign
      local other = ok("GET", "/campaigns").items[2]
      r = ok("POST", "/leads/add", { body = { campaign_id = other.id, leads = { { email = existing.email } } } })
      assert.are.equal(1, r.leads_uploaded)
      r = ok("POST", "/leads/add", { body = { campaign_id = other.id, skip_if_in_workspace = true,
        leads = { { email = "new.one@example.com" } } } })
      assert.are.equal(0, r.leads_uploaded)
      assert.are.equal(1, r.skipped_count)
    end)

    it("finds earlier leads by address however they came, moved and went", function()
      -- the address lookup reads only the leads added since its last look:
      -- each step below changes the leads another way and checks the next
      -- lookup sees it (a stale or bulk-only index fails one of them)
      srv:set{ job_steps = 1 }
      local l1 = ok("POST", "/lead-lists", { body = { name = "Index one" } }).id
      local l2 = ok("POST", "/lead-lists", { body = { name = "Index two" } }).id
      local function add(list, flag, email)
        local r = ok("POST", "/leads/add", { body = { list_id = list, [flag] = true, leads = { { email = email } } } })
        assert.are.equal(1, r.leads_uploaded + r.skipped_count)
        return r.leads_uploaded == 1 and "added" or "skipped"
      end
      local r = ok("POST", "/leads/add", { body = { list_id = l1,
        leads = { { email = "Idx.A@example.com" }, { email = "idx.b@example.com" } } } })
      local a_id, b_id = r.created_leads[1].id, r.created_leads[2].id
      assert.are.equal("skipped", (add(l2, "skip_if_in_workspace", "idx.a@EXAMPLE.com")))
      assert.are.equal("added", (add(l2, "skip_if_in_workspace", "idx.new@example.com")))
      -- created one at a time: seen by the next batch
      ok("POST", "/leads", { body = { email = "idx.c@example.com", list_id = l1 } })
      assert.are.equal("skipped", (add(l2, "skip_if_in_workspace", "idx.c@example.com")))
      -- and by the one-at-a-time create's own check
      local dup = ok("POST", "/leads", { body = { email = "IDX.C@example.com", list_id = l2,
        skip_if_in_workspace = true } })
      assert.are.equal("idx.c@example.com", dup.email)
      -- deleted: the address is free again
      ok("DELETE", "/leads/" .. a_id)
      assert.are.equal("added", (add(l2, "skip_if_in_workspace", "idx.a@example.com")))
      -- moved: list membership is read from the lead as it is now
      assert.are.equal("skipped", (add(l1, "skip_if_in_list", "idx.b@example.com")))
      local job = ok("POST", "/leads/move", { body = { ids = { b_id }, to_list_id = l2 } })
      assert.are.equal("success", ok("GET", "/background-jobs/" .. job.id).status)
      assert.are.equal("added", (add(l1, "skip_if_in_list", "idx.b@example.com")))
      assert.are.equal("skipped", (add(l2, "skip_if_in_list", "idx.b@example.com")))
      -- merged into a lead without an address: it carries the address on
      local bare = ok("POST", "/leads", { body = { first_name = "Bare", list_id = l1 } })
      local e = ok("POST", "/leads", { body = { email = "idx.e@example.com", list_id = l1 } })
      assert.are.equal("added", (add(l2, "skip_if_in_workspace", "idx.f@example.com"))) -- a look: both indexed
      ok("POST", "/leads/merge", { body = { lead_id = e.id, destination_lead_id = bare.id } })
      assert.are.equal("skipped", (add(l2, "skip_if_in_workspace", "idx.e@example.com")))
      dup = ok("POST", "/leads", { body = { email = "idx.e@example.com", list_id = l2, skip_if_in_workspace = true } })
      assert.are.equal(bare.id, dup.id)
      -- a reset forgets every address
      srv:reset()
      local l3 = ok("POST", "/lead-lists", { body = { name = "Index three" } }).id
      assert.are.equal("added", (add(l3, "skip_if_in_workspace", "idx.b@example.com")))
    end)

    it("keeps named contacts without an email in lists, not in campaigns", function()
      local list = ok("GET", "/lead-lists").items[1]
      local camp = ok("GET", "/campaigns").items[1]
      local r = ok("POST", "/leads/add", { body = { list_id = list.id, leads = { { first_name = "Only" }, {} } } })
      assert.are.equal(1, r.leads_uploaded)
      assert.are.equal(1, r.incomplete_count)
      assert.are.equal(null, ok("GET", "/leads/" .. r.created_leads[1].id).email)
      r = ok("POST", "/leads/add", { body = { campaign_id = camp.id, leads = { { first_name = "Only" } } } })
      assert.are.equal(0, r.leads_uploaded)
      assert.are.equal(1, r.incomplete_count)
      -- leads without an address do not trip email lookups
      local lone = ok("POST", "/leads", { body = { first_name = "Lone", list_id = list.id } })
      assert.are.equal(null, lone.email)
      assert.are.equal(202, (req("POST", "/leads/update-interest-status",
        { body = { lead_email = "x@example.com", interest_value = 1 } })))
      local job = ok("POST", "/leads/move", { body = { ids = { lone.id }, to_campaign_id = camp.id,
        check_duplicates = true } })
      srv:set{ job_steps = 1 }
      assert.are.equal("success", ok("GET", "/background-jobs/" .. job.id).status)
      assert.are.equal(200, (req("GET", "/campaigns/search-by-contact", { query = { search = "x@example.com" } })))
    end)

    it("bulk deletes return the deleted objects or counts", function()
      local a = ok("POST", "/block-lists-entries", { body = { bl_value = "one.example" } })
      local b = ok("POST", "/block-lists-entries", { body = { bl_value = "two.example" } })
      local gone = ok("POST", "/block-lists-entries/bulk-delete", { body = { ids = { a.id, b.id } } })
      assert.is_true(is_array(gone))
      assert.are.equal(2, #gone)
      local list = ok("GET", "/lead-lists").items[1]
      local before = ok("GET", "/lead-lists/" .. list.id .. "/verification-stats").total_leads
      local r = ok("DELETE", "/leads", { body = { list_id = list.id, limit = 5 } })
      assert.are.equal(5, r.count)
      assert.are.equal(before - 5, ok("GET", "/lead-lists/" .. list.id .. "/verification-stats").total_leads)
    end)

    it("routes email addresses in paths, percent-decoded", function()
      local acc = ok("POST", "/accounts", { body = {
        email = "first+tag@send.example", first_name = "F", last_name = "L", provider_code = 1,
        imap_username = "u", imap_password = "p", imap_host = "imap.send.example", imap_port = 993,
        smtp_username = "u", smtp_password = "p", smtp_host = "smtp.send.example", smtp_port = 587 } })
      assert.are.equal(1, acc.status)
      assert.is_nil(acc.imap_password)
      assert.are.equal("first+tag@send.example", ok("GET", "/accounts/first%2Btag%40send.example").email)
      assert.are.equal("first+tag@send.example", ok("GET", "/accounts/first+tag@send.example").email)
      assert.are.equal(2, ok("POST", "/accounts/first%2Btag%40send.example/pause").status)
      assert.are.equal(1, ok("POST", "/accounts/first%2Btag%40send.example/resume").status)
      ok("DELETE", "/accounts/first%2Btag%40send.example")
      assert.are.equal(404, (req("GET", "/accounts/first%2Btag%40send.example")))
    end)

    it("keeps the trailing slash of POST /supersearch-enrichment/", function()
      local list = ok("GET", "/lead-lists").items[1]
      local r = ok("POST", "/supersearch-enrichment/", { body = { resource_id = list.id } })
      assert.are.equal(list.id, r.resource_id)
      assert.are.equal(404, (req("POST", "/supersearch-enrichment", { body = { resource_id = list.id } })))
    end)

    it("reads repeated query keys as arrays", function()
      local r = ok("GET", "/accounts", { query = { status = { 1 } } })
      assert.is_true(#r.items > 0)
      for _, a in ipairs(r.items) do assert.are.equal(1, a.status) end
      srv:clear_requests()
      req("GET", "/background-jobs", { query = { ids = { "a", "b" } } })
      local log = srv:requests()
      assert.are.same({ "a", "b" }, log[1].query.ids)
      assert.are.equal("ids=a&ids=b", log[1].raw_query)
    end)

    it("answers 202 for interest status updates and applies them", function()
      local lead = ok("POST", "/leads/list", { body = { limit = 1 } }).items[1]
      local status, body = req("POST", "/leads/update-interest-status",
        { body = { lead_email = lead.email, interest_value = 1 } })
      assert.are.equal(202, status)
      assert.is_string(body.message)
      assert.are.equal(1, ok("GET", "/leads/" .. lead.id).lt_interest_status)
      status = req("POST", "/leads/bulk-assign", { body = {
        organization_user_ids = { "6f1c2d4e-1111-4222-8333-444455556666" }, ids = { lead.id } } })
      assert.are.equal(202, status)
      assert.are.equal("6f1c2d4e-1111-4222-8333-444455556666", ok("GET", "/leads/" .. lead.id).assigned_to)
    end)

    it("can answer a test email with an error inside a 200", function()
      local acc = ok("GET", "/accounts").items[1]
      local body = { eaccount = acc.email, to_address_email_list = "me@example.com", subject = "t",
        body = { html = "<p>t</p>" } }
      local r = ok("POST", "/emails/test", { body = body })
      assert.is_nil(r.error)
      srv:set{ send_test_error = true }
      assert.are.equal("ACC_AUTH_ERROR", ok("POST", "/emails/test", { body = body }).error)
      srv:set{ send_test_error = "ACC_UNKNOWN_ERROR" }
      assert.are.equal("ACC_UNKNOWN_ERROR", ok("POST", "/emails/test", { body = body }).error)
      srv:set{ send_test_error = false }
      body.eaccount = "ghost@nowhere.example"
      assert.are.equal("ACC_NOT_FOUND", ok("POST", "/emails/test", { body = body }).error)
    end)

    it("reset brings the seed back", function()
      local n = #ok("GET", "/campaigns").items
      ok("POST", "/campaigns", { body = { name = "Temp", campaign_schedule = { schedules = {} } } })
      assert.are.equal(n + 1, #ok("GET", "/campaigns").items)
      srv:reset()
      assert.are.equal(n, #ok("GET", "/campaigns").items)
      assert.are.equal(0, #srv:requests() - 1)
    end)
  end)

  describe("pagination", function()
    local function walk(fetch)
      local seen, pages, cursor, count, empty_pages = {}, 0, nil, 0, 0
      for _ = 1, 1000 do
        local page = fetch(cursor)
        pages = pages + 1
        if #page.items == 0 then
          empty_pages = empty_pages + 1
          assert.is_nil(page.next_starting_after)
          break
        end
        for _, it in ipairs(page.items) do
          local key = it.id or it.email
          assert.is_nil(seen[key], "item seen twice: " .. key)
          seen[key] = true
          count = count + 1
        end
        cursor = page.next_starting_after
        assert.is_string(cursor)
      end
      return count, pages, empty_pages
    end

    it("walks all 2,000 leads with POST /leads/list, each exactly once, ending on one empty page", function()
      local count, pages, empty = walk(function(cursor)
        return ok("POST", "/leads/list", { body = { limit = 100, starting_after = cursor } })
      end)
      assert.are.equal(2000, count)
      assert.are.equal(21, pages)
      assert.are.equal(1, empty)
    end)

    it("walks the Unibox newest first by default and oldest first on request", function()
      local total = ok("GET", "/emails/unread/count").count
      assert.is_true(total > 0)
      local last
      local count = walk(function(cursor)
        local page = ok("GET", "/emails", { query = { limit = 30, starting_after = cursor } })
        for _, e in ipairs(page.items) do
          if last then assert.is_true(e.timestamp_created < last) end
          last = e.timestamp_created
        end
        return page
      end)
      last = nil
      local asc = walk(function(cursor)
        local page = ok("GET", "/emails", { query = { limit = 30, sort_order = "asc", starting_after = cursor } })
        for _, e in ipairs(page.items) do
          if last then assert.is_true(e.timestamp_created > last) end
          last = e.timestamp_created
        end
        return page
      end)
      assert.are.equal(count, asc)
      local unread = walk(function(cursor)
        return ok("GET", "/emails", { query = { limit = 30, is_unread = true, starting_after = cursor } })
      end)
      assert.are.equal(total, unread)
    end)

    it("walks a filtered GET list with small pages", function()
      local total = #ok("GET", "/audit-logs", { query = { limit = 100 } }).items
      assert.is_true(total > 7 and total < 100, "one short page holds every entry")
      local count, pages = walk(function(cursor)
        return ok("GET", "/audit-logs", { query = { limit = 7, starting_after = cursor } })
      end)
      assert.are.equal(total, count)
      -- the last page with data still carries a cursor: one empty page follows
      assert.are.equal(math.ceil(total / 7) + 1, pages)
    end)

    it("uses composite cursors for accounts and timestamps for lead lists", function()
      local page = ok("GET", "/accounts", { query = { limit = 2 } })
      assert.are.equal(page.items[2].timestamp_created .. "&" .. page.items[2].email, page.next_starting_after)
      local lists = ok("GET", "/lead-lists", { query = { limit = 1 } })
      assert.are.equal(lists.items[1].timestamp_created, lists.next_starting_after)
      -- the legacy ISO cursor is accepted for accounts
      local legacy = ok("GET", "/accounts", { query = { starting_after = page.items[2].timestamp_created } })
      assert.are.equal(ok("GET", "/accounts", { query = { starting_after = page.next_starting_after } }).items[1].email,
        legacy.items[1].email)
    end)

    it("stays consistent when the last item of a page is deleted", function()
      local first = ok("GET", "/webhook-events", { query = { limit = 5 } })
      local id = first.items[5].id
      local second = ok("GET", "/webhook-events", { query = { limit = 5, starting_after = first.next_starting_after } })
      local list = ok("GET", "/lead-labels", { query = { limit = 1 } })
      ok("DELETE", "/lead-labels/" .. list.items[1].id)
      assert.are.equal(200, (req("GET", "/lead-labels", { query = { starting_after = list.next_starting_after } })))
      assert.are.not_equal(id, second.items[1].id)
    end)

    it("can drop the cursor on the last page with data", function()
      srv:set{ exact_last_page = true }
      local p1 = ok("GET", "/campaigns", { query = { limit = 2 } })
      assert.are.equal(2, #p1.items)
      local p2 = ok("GET", "/campaigns", { query = { limit = 2, starting_after = p1.next_starting_after } })
      assert.are.equal(2, #p2.items)
      assert.is_nil(p2.next_starting_after)
    end)
  end)

  describe("async patterns", function()
    it("moves leads through a background job that progresses over polls", function()
      srv:set{ job_steps = 3 }
      local list = ok("GET", "/lead-lists").items[2]
      local camp = ok("GET", "/campaigns").items[1]
      local lead = ok("POST", "/leads/list", { body = { campaign = camp.id, limit = 1 } }).items[1]
      local job = ok("POST", "/leads/move", { body = { ids = { lead.id }, to_list_id = list.id } })
      assert.are.equal("pending", job.status)
      assert.are.equal("move-leads", job.type)
      local seen = {}
      for _ = 1, 3 do
        local j = ok("GET", "/background-jobs/" .. job.id)
        seen[#seen + 1] = j.status
      end
      assert.are.same({ "in-progress", "in-progress", "success" }, seen)
      assert.are.equal(100, ok("GET", "/background-jobs/" .. job.id).progress)
      assert.are.equal(list.id, ok("GET", "/leads/" .. lead.id).list_id)
    end)

    it("can make jobs fail", function()
      srv:set{ job_steps = 1, fail_jobs = true }
      local acc = ok("GET", "/accounts").items[4]
      local job = ok("POST", "/accounts/warmup/enable", { body = { emails = { acc.email } } })
      local j = ok("GET", "/background-jobs/" .. job.id)
      assert.are.equal("failed", j.status)
      assert.are.equal(0, ok("GET", "/accounts/" .. client.escape(acc.email)).warmup_status)
    end)

    it("enables warmup when the job succeeds", function()
      srv:set{ job_steps = 2 }
      local acc = ok("GET", "/accounts").items[4]
      assert.are.equal(0, acc.warmup_status)
      local job = ok("POST", "/accounts/warmup/enable", { body = { emails = { acc.email } } })
      ok("GET", "/background-jobs/" .. job.id)
      assert.are.equal(0, ok("GET", "/accounts/" .. client.escape(acc.email)).warmup_status)
      assert.are.equal("success", ok("GET", "/background-jobs/" .. job.id).status)
      assert.are.equal(1, ok("GET", "/accounts/" .. client.escape(acc.email)).warmup_status)
    end)

    it("settles an email verification after pending polls", function()
      srv:set{ verification_polls = 2 }
      local v = ok("POST", "/email-verification", { body = { email = "bounce@invalid-domain.example" } })
      assert.are.equal("pending", v.verification_status)
      assert.are.equal("pending", ok("GET", "/email-verification/bounce%40invalid-domain.example").verification_status)
      assert.are.equal("invalid", ok("GET", "/email-verification/bounce%40invalid-domain.example").verification_status)
      assert.are.equal(404, (req("GET", "/email-verification/never%40asked.example")))
    end)

    it("runs OAuth sessions pending -> success, once, and expires them", function()
      srv:set{ oauth_polls = 1 }
      local s = ok("POST", "/oauth/google/init")
      assert.truthy(s.auth_url:match("^https://"))
      assert.truthy(s.expires_at:match("Z$"))
      assert.are.equal("pending", ok("GET", "/oauth/session/status/" .. s.session_id).status)
      local done = ok("GET", "/oauth/session/status/" .. s.session_id)
      assert.are.equal("success", done.status)
      assert.truthy(ok("GET", "/accounts/" .. client.escape(done.email)))
      assert.are.equal(404, (req("GET", "/oauth/session/status/" .. s.session_id)))
      srv:set{ oauth_lifetime = 0 }
      local s2 = ok("POST", "/oauth/microsoft/init")
      assert.are.equal("expired", ok("GET", "/oauth/session/status/" .. s2.session_id).status)
      assert.are.equal(404, (req("GET", "/oauth/session/status/" .. s2.session_id)))
      srv:set{ oauth_lifetime = 600, oauth_result = "error", oauth_polls = 0 }
      local s3 = ok("POST", "/oauth/google/init")
      assert.are.equal("error", ok("GET", "/oauth/session/status/" .. s3.session_id).status)
    end)
  end)

  describe("analytics", function()
    it("adds up: overview = sum of campaign rows = sum of daily rows = sum of step rows", function()
      local rows = ok("GET", "/campaigns/analytics")
      local overview = ok("GET", "/campaigns/analytics/overview")
      local daily = ok("GET", "/campaigns/analytics/daily")
      local steps = ok("GET", "/campaigns/analytics/steps")
      local sent, opens, replies, clicks = 0, 0, 0, 0
      for _, r in ipairs(rows) do
        sent, opens, replies = sent + r.emails_sent_count, opens + r.open_count, replies + r.reply_count
        clicks = clicks + r.link_click_count
      end
      assert.is_true(sent > 1000)
      assert.are.equal(overview.emails_sent_count, sent)
      assert.are.equal(overview.open_count, opens)
      assert.are.equal(overview.reply_count, replies)
      assert.are.equal(overview.link_click_count, clicks)
      local dsent, dopen = 0, 0
      for _, d in ipairs(daily) do dsent, dopen = dsent + d.sent, dopen + d.opened end
      assert.are.equal(sent, dsent)
      assert.are.equal(opens, dopen)
      local ssent = 0
      for _, s in ipairs(steps) do ssent = ssent + s.sent end
      assert.are.equal(sent, ssent)
      -- per account daily rows cover the same sends
      local asent = 0
      for _, r in ipairs(ok("GET", "/accounts/analytics/daily")) do asent = asent + r.sent end
      assert.are.equal(sent, asent)
      -- replies in the Unibox match the replies counted
      local unread = ok("GET", "/emails/unread/count").count
      assert.is_true(unread > 0)
    end)

    it("is deterministic for a seed", function()
      local a = ok("GET", "/campaigns/analytics/overview")
      srv:reset()
      assert.are.same(a, ok("GET", "/campaigns/analytics/overview"))
    end)
  end)
end)
