-- The mock's answers follow the catalog's schemas: every object of the
-- most used operations, on every page, in the agency and its
-- sub-workspaces (fields, types, enums, formats, nullability), plus the
-- specific drifts that were found once and must not come back.

local mock = require "instantly.mock"
local client = require "instantly.mock.client"
local schema_check = require "support.schema_check"

local E = require "instantly.entities"
local by_name = {}
for _, name in ipairs(E.entities) do
  local e = require("instantly.entities." .. name)
  by_name[e.lua_name] = e
end

describe("instantly-mock responses against the catalog schemas", function()
  local srv, c, workspaces

  local function call(method, path, opts)
    local status, body = c:request(method, path, opts)
    assert.are.equal(200, status, method .. " " .. path)
    return body
  end

  setup(function()
    srv = assert(mock.start{ seed = 11, rate_limits = false })
    c = client.new(srv.url, { api_key = srv.api_key })
    workspaces = { false }
    for _, s in ipairs(srv:state().sub_workspaces) do workspaces[#workspaces + 1] = s.id end
  end)

  teardown(function()
    c:close()
    srv:stop()
  end)

  -- Every page of a list, as the SDK would walk it.
  local function walk(method, path, ws, query, in_body)
    local items, cursor, pages = {}, nil, 0
    repeat
      local q = {}
      for k, v in pairs(query or {}) do q[k] = v end
      q.limit, q.starting_after = 100, cursor
      local opts = { headers = ws and { ["x-as-workspace"] = ws } or nil }
      if in_body then opts.body = q else opts.query = q end
      local page = call(method, path, opts)
      for _, it in ipairs(page.items) do items[#items + 1] = it end
      cursor = #page.items > 0 and page.next_starting_after or nil
      pages = pages + 1
    until not cursor or cursor == require("instantly.mock.json").null or pages > 100
    return items
  end

  local LISTS = {
    { "campaigns", "GET", "/campaigns" }, { "leads", "POST", "/leads/list", nil, true },
    { "accounts", "GET", "/accounts" }, { "accounts", "GET", "/accounts", { include_tags = true } },
    { "lead_lists", "GET", "/lead-lists" }, { "emails", "GET", "/emails" },
    { "webhooks", "GET", "/webhooks" }, { "webhook_events", "GET", "/webhook-events" },
    { "custom_tags", "GET", "/custom-tags" }, { "block_list_entries", "GET", "/block-lists-entries" },
    { "lead_labels", "GET", "/lead-labels" }, { "background_jobs", "GET", "/background-jobs" },
    { "workspace_members", "GET", "/workspace-members" },
    { "workspace_group_members", "GET", "/workspace-group-members" },
    { "api_keys", "GET", "/api-keys" }, { "audit_logs", "GET", "/audit-logs" },
    { "custom_tag_mappings", "GET", "/custom-tag-mappings" },
  }

  for _, row in ipairs(LISTS) do
    local lua_name, method, path, query, in_body = table.unpack(row)
    it(method .. " " .. path .. " matches the " .. lua_name .. " schema on every page and workspace", function()
      local e = assert(by_name[lua_name], lua_name)
      local n = 0
      for _, ws in ipairs(workspaces) do
        for i, item in ipairs(walk(method, path, ws, query, in_body)) do
          local problems = schema_check.check(e, item, path .. "[" .. i .. "]")
          assert(#problems == 0, table.concat(problems, "\n"))
          n = n + 1
        end
      end
      assert.is_true(n > 0)
    end)
  end

  it("GET /workspaces/current and each campaign's subsequences match their schemas", function()
    for _, ws in ipairs(workspaces) do
      local h = { headers = ws and { ["x-as-workspace"] = ws } or nil }
      local w = call("GET", "/workspaces/current", h)
      assert.are.same({}, schema_check.check(by_name.workspaces, w))
      for _, camp in ipairs(call("GET", "/campaigns", h).items) do
        h.query = { parent_campaign = camp.id }
        for _, s in ipairs(call("GET", "/subsequences", h).items) do
          assert.are.same({}, schema_check.check(by_name.subsequences, s))
        end
      end
    end
  end)

  it("leaves optional, non-nullable fields out instead of null", function()
    local leads = walk("POST", "/leads/list", false, nil, true)
    local with, without = 0, 0
    for _, l in ipairs(leads) do
      if l.lt_interest_status == nil then without = without + 1 else with = with + 1 end
      assert.is_nil(l.esg_code)
      assert.is_true(l.upload_method == "api" or l.upload_method == "manual", l.upload_method)
    end
    assert.is_true(with > 0 and without > 0)
    for _, a in ipairs(walk("GET", "/accounts", false)) do
      assert.is_nil(a.tags) -- only with include_tags
      if a.warmup then assert.is_nil(a.warmup.advanced) end
      assert.is_true(a.status_message == nil or a.status == -1)
    end
    local s = call("POST", "/oauth/google/init")
    local st = call("GET", "/oauth/session/status/" .. s.session_id)
    assert.are.same({ status = "pending" }, st)
  end)

  it("fills status_summary for contacted leads", function()
    local n = 0
    for _, l in ipairs(walk("POST", "/leads/list", false, nil, true)) do
      if l.last_step_id ~= nil and l.last_step_id ~= require("instantly.mock.json").null then
        assert.are.equal(l.last_step_id, l.status_summary.lastStep.stepID)
        assert.is_string(l.status_summary.lastStep.from)
        n = n + 1
      end
    end
    assert.is_true(n > 0)
  end)

  it("uses only documented-style timezones in seeded schedules", function()
    for _, camp in ipairs(call("GET", "/campaigns").items) do
      for _, sch in ipairs(camp.campaign_schedule.schedules) do
        assert.is_nil(({ ["America/New_York"] = 1, ["Europe/London"] = 1, ["Europe/Berlin"] = 1 })[sch.timezone],
          sch.timezone)
      end
    end
  end)

  it("applies the id filter of /campaigns/analytics and /campaigns/analytics/overview", function()
    local camps = call("GET", "/campaigns").items
    local all = call("GET", "/campaigns/analytics")
    assert.are.equal(#camps, #all)
    local one = call("GET", "/campaigns/analytics", { query = { id = camps[2].id } })
    assert.are.equal(1, #one)
    assert.are.equal(camps[2].id, one[1].campaign_id)
    assert.is_number(one[1].reply_count_automatic_unique_by_step)
    local total = call("GET", "/campaigns/analytics/overview")
    local ov = call("GET", "/campaigns/analytics/overview", { query = { id = camps[2].id } })
    assert.are.equal(one[1].emails_sent_count, ov.emails_sent_count)
    assert.is_true(ov.emails_sent_count < total.emails_sent_count)
    local status = c:request("GET", "/campaigns/analytics", { query = { id = "6f1c2d4e-1111-4222-8333-444455556666" } })
    assert.are.equal(404, status)
    local fields = {}
    for _, f in ipairs(by_name.analytics.fields) do fields[f.name] = f end
    for _, r in ipairs(all) do
      -- the Analytics schema is the union of several row kinds: check the
      -- fields it names, not the absence of others
      for k, v in pairs(r) do
        if fields[k] then assert.are.same({}, schema_check.check({ name = "Analytics", fields = { fields[k] } },
          { [k] = v })) end
      end
    end
  end)
end)
