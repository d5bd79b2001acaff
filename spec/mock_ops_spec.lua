-- Every catalog operation, called over HTTP against the mock, answers with
-- the documented status and a response of the documented shape.

local mock = require "instantly.mock"
local client = require "instantly.mock.client"
local json = require "instantly.mock.json"

local null, is_array = json.null, json.is_array

local E = require "instantly.entities"
local ops, entity_of = {}, {}
for _, name in ipairs(E.entities) do
  local e = require("instantly.entities." .. name)
  for _, op in ipairs(e.operations) do
    ops[#ops + 1] = op
    entity_of[op.id] = e
  end
end

local by_name = {}
for _, name in ipairs(E.entities) do
  local e = require("instantly.entities." .. name)
  by_name[e.name] = e
end

describe("instantly-mock: every catalog operation", function()
  local srv, c, refs

  local function get(path, query)
    local status, body = c:request("GET", path, { query = query })
    assert.are.equal(200, status, path)
    return body
  end

  setup(function()
    srv = assert(mock.start{ seed = 7, rate_limits = false })
    srv:set{ job_steps = 1 }
    c = client.new(srv.url, { api_key = srv.api_key })
    refs = {}
    local camps = get("/campaigns").items
    refs.campaign, refs.campaign2, refs.campaign_del = camps[1].id, camps[2].id, camps[4].id
    local accounts = get("/accounts").items
    refs.account, refs.account_del, refs.account_move = accounts[1].email, accounts[5].email, accounts[6].email
    local lists = get("/lead-lists").items
    refs.list, refs.list_del = lists[1].id, lists[3].id
    local leads = select(2, c:request("POST", "/leads/list", { body = { campaign = refs.campaign, limit = 5 } })).items
    refs.lead, refs.lead2, refs.lead3, refs.lead_del = leads[1].id, leads[2].id, leads[3].id, leads[4].id
    local emails = get("/emails", { limit = 3 }).items
    refs.email, refs.thread, refs.email_del = emails[1].id, emails[1].thread_id, emails[3].id
    refs.tag, refs.tag_del = get("/custom-tags").items[1].id, get("/custom-tags").items[3].id
    local bl = get("/block-lists-entries").items
    refs.bl, refs.bl2, refs.bl_del = bl[1].id, bl[2].id, bl[3].id
    local labels = get("/lead-labels").items
    refs.label, refs.label_del = labels[1].id, labels[2].id
    local hooks = get("/webhooks").items
    refs.webhook, refs.webhook_del = hooks[1].id, hooks[2].id
    refs.webhook_event = get("/webhook-events").items[1].id
    refs.subsequence = get("/subsequences", { parent_campaign = refs.campaign }).items[1].id
    local members = get("/workspace-members").items
    refs.member, refs.member_email, refs.member_del = members[2].id, members[1].email, members[3].id
    refs.group_member = get("/workspace-group-members").items[1].id
    refs.api_key = get("/api-keys").items[1].id
    refs.job = get("/background-jobs").items[1].id
    refs.ipt = get("/inbox-placement-tests").items[1].id
    refs.ipa = get("/inbox-placement-analytics", { test_id = refs.ipt }).items[1].id
    refs.ipr = get("/inbox-placement-reports", { test_id = refs.ipt }).items[1].id
    refs.email_template = get("/email-templates").items[1].id
    refs.prompt_template = get("/custom-prompt-templates").items[1].id
    refs.sales_flow = get("/sales-flows").items[1].id
    refs.phone = get("/crm-actions/phone-numbers")[1].id
    refs.workspace = get("/workspaces/current").id
    refs.verify_email = "check.me@verify.example"
    refs.child = srv:state().sub_workspaces[1].id
  end)

  teardown(function()
    if c then c:close() end
    if srv then srv:stop() end
  end)

  -- path parameter values per operation
  local function path_for(op)
    local e = entity_of[op.id]
    return (op.path:gsub("{([^}]+)}", function(name)
      local v
      if name == "email" then
        if e.lua_name == "email_verification" then v = refs.verify_email
        elseif op.id == "deleteAccount" then v = refs.account_del
        else v = refs.account end
      elseif name == "thread_id" then v = refs.thread
      elseif name == "resource_id" then v = refs.list
      elseif name == "sessionId" then v = refs.session
      else
        local map = {
          campaigns = op.method == "DELETE" and refs.campaign_del or refs.campaign,
          emails = op.method == "DELETE" and refs.email_del or refs.email,
          lead_lists = op.method == "DELETE" and refs.list_del or refs.list,
          leads = op.method == "DELETE" and refs.lead_del or refs.lead,
          custom_tags = op.method == "DELETE" and refs.tag_del or refs.tag,
          block_list_entries = op.method == "DELETE" and refs.bl_del or refs.bl,
          lead_labels = op.method == "DELETE" and refs.label_del or refs.label,
          webhooks = op.method == "DELETE" and refs.webhook_del or refs.webhook,
          webhook_events = refs.webhook_event, subsequences = refs.subsequence,
          workspace_members = op.method == "DELETE" and refs.member_del or refs.member,
          workspace_group_members = refs.group_member, api_keys = refs.api_key, background_jobs = refs.job,
          inbox_placement_tests = refs.ipt, inbox_placement_analytics = refs.ipa,
          inbox_placement_reports = refs.ipr, email_templates = refs.email_template,
          custom_prompt_templates = refs.prompt_template, sales_flows = refs.sales_flow, crm_actions = refs.phone,
        }
        v = map[e.lua_name]
      end
      assert(v, "no value for {" .. name .. "} in " .. op.id)
      return client.escape(v)
    end))
  end

  -- a valid value for a required field, by name then by type
  local function value_for(f)
    local n = f.name
    if f.enum then return f.type == "array" and { f.enum[1] } or f.enum[1] end
    if n == "campaign_id" or n == "campaign" or n == "parent_campaign" then return refs.campaign end
    if n == "list_id" or n == "resource_id" then return refs.list end
    if n == "test_id" then return refs.ipt end
    if n == "test_ids" then return { refs.ipt } end
    if n == "eaccount" then return refs.account end
    if n == "emails" then return { refs.account } end
    if n == "accounts" then return { refs.account } end
    if n == "reply_to_uuid" then return refs.email end
    if n == "lead_id" then return refs.lead2 end
    if n == "destination_lead_id" then return refs.lead3 end
    if n == "subsequence_id" then return refs.subsequence end
    if n == "id" then return refs.lead end
    if n == "tag_ids" then return { refs.tag } end
    if n == "lead_email" then return "someone@example.com" end
    if n == "to_address_email_list" then return "someone@example.com" end
    if f.format == "email" or n == "email" then return "new.person@example.com" end
    if f.format == "uri" or n:find("url") then return "https://hooks.example/x" end
    if f.format == "uuid" then return "6f1c2d4e-1111-4222-8333-444455556666" end
    if f.type == "string" then return n == "domain" and "brandnew-domain.com" or ("value of " .. n) end
    if f.type == "integer" then return 1 end
    if f.type == "number" then return 1 end
    if f.type == "boolean" then return true end
    if f.type == "array" and n:match("_ids$") then return { "6f1c2d4e-1111-4222-8333-444455556666" } end
    if f.type == "array" then return f.items == "string" and { "x" } or {} end
    if f.type == "object" then return {} end
  end

  local OVERRIDES = {
    enableWarmupForAccounts = function(b) b.emails = { refs.account } end,
    disableWarmupForAccounts = function(b) b.emails = { refs.account } end,
    createAccount = function(b)
      b.email = "fresh.sender@getmock.io"; b.provider_code = 1; b.imap_port = 993; b.smtp_port = 587
    end,
    createCampaign = function(b)
      b.campaign_schedule = { schedules = { { name = "Hours", timing = { from = "09:00", to = "17:00" },
        days = { ["1"] = true }, timezone = "America/Detroit" } } }
    end,
    bulkAddLeads = function(b)
      b.campaign_id = refs.campaign; b.leads = { { email = "added.one@example.com" }, { email = "nope" } }
    end,
    bulkDeleteLeads = function(b) b.list_id = refs.list; b.limit = 2 end,
    moveLeads = function(b) b.ids = { refs.lead }; b.to_list_id = refs.list end,
    exportLeads = function(b) b.campaign = refs.campaign end,
    moveAccounts = function(b)
      b.emails = { refs.account_move }; b.source_workspace_id = refs.workspace
      b.destination_workspace_id = refs.child
    end,
    changeWorkspaceOwner = function(b) b.email = refs.member_email end,
    createblukBlockListEntry = function(b) b.bl_values = { "blocked.example", "bad value" } end,
    deletebulkBlockListEntry = function(b) b.ids = { refs.bl2 } end,
    createBlockListEntry = function(b) b.bl_value = "newblock.example" end,
    toggleTagResource = function(b) b.resource_type = 2; b.resource_ids = { refs.campaign }; b.assign = true end,
    createInboxPlacementTest = function(b) b.emails = { refs.account }; b.type = 1; b.sending_method = 1 end,
    createWorkspaceMember = function(b) b.email = "invitee@example.com"; b.role = "editor" end,
    createWorkspaceGroupMember = function(b) b.sub_workspace_id = "6f1c2d4e-1111-4222-8333-444455556666" end,
    createCampaignSubsequence = function(b)
      b.conditions = { reply_contains = "yes" }; b.subsequence_schedule = { schedules = {} }
      b.sequences = { { steps = {} } }
    end,
    createAIEnrichment = function(b) b.resource_type = 2 end,
    createSuperSearchEnrichment = function(b) b.type = nil end,
    enrichLeadsFromSupersearch = function(b) b.limit = 3; b.search_filters = { title = { "CTO" } } end,
    createDFYEmailAccountOrder = function(b)
      b.items = { { domain = "brandnew-domain.com" } }; b.order_type = "pre_warmed_up"; b.simulation = true
    end,
    checkDomainsAvailability = function(b) b.domains = { "brandnew-domain.com" } end,
    cancelDFYEmailAccounts = function(b) b.accounts = { "olivia@getmock-mail.com" } end,
    createAPIKey = function(b) b.scopes = { "campaigns:read" } end,
    sendTestEmail = function(b) b.body = { html = "<p>hello</p>", text = "hello" } end,
    replyToEmail = function(b) b.body = { html = "<p>thanks</p>", text = "thanks" } end,
    forwardEmail = function(b) b.body = { html = "<p>fyi</p>", text = "fyi" } end,
    createLead = function(b) b.email = "single.lead@example.com"; b.campaign = refs.campaign end,
    createSalesFlow = function(b) b.queries = { { field = "status", value = 1 } } end,
    createEmailVerification = function(b) b.email = refs.verify_email end,
    addWorkspaceAgencyDomain = function(b) b.domain = "agency-mock.example" end,
    createWebhook = function(b) b.campaign = nil end,
  }

  local QUERY = {
    getCtdStatus = { host = "track.getmock.io" },
    listCampaignSubsequence = function() return { parent_campaign = refs.campaign } end,
    listInboxPlacementAnalytics = function() return { test_id = refs.ipt } end,
    listInboxPlacementBlacklistAndSpamAssassinReport = function() return { test_id = refs.ipt } end,
  }

  local function request_for(op)
    local body
    if op.body then
      body = {}
      for _, f in ipairs(op.body.fields) do
        if f.required then body[f.name] = value_for(f) end
      end
      if OVERRIDES[op.id] then OVERRIDES[op.id](body) end
      if next(body) == nil and op.method == "DELETE" then body = nil end
    end
    local q = QUERY[op.id]
    if type(q) == "function" then q = q() end
    if not q then
      q = {}
      for _, p in ipairs(op.query or {}) do
        if p.required then q[p.name] = value_for(p) end
      end
    end
    return { query = q, body = body }
  end

  local schema_check = require "support.schema_check"

  -- every field valid for its schema, nullable ones present (an optional,
  -- non-nullable field with no value is left out, as the API does)
  local function check_object_fields(obj, item, where)
    local e = item and by_name[item]
    if not e then return end
    local problems = schema_check.check(e, obj, where)
    assert(#problems == 0, table.concat(problems, "\n"))
  end

  -- the keys of the operation's entity schema that are optional (not nullable)
  local function optional_keys(op)
    local e, out = entity_of[op.id], {}
    for _, f in ipairs(e.fields) do if not f.nullable then out[f.name] = true end end
    return out
  end

  -- Top-level keys a bespoke response documents in its notes, e.g.
  -- "{paused_emails[], failed_emails[]}" or "{diagnostics: null | {...}, summary?}";
  -- keys marked with '?' are optional.
  local function documented_keys(notes)
    local inner = notes and notes:match("^%s*(%b{})")
    if not inner then return {} end
    inner = inner:sub(2, -2)
    local keys, depth, part = {}, 0, {}
    local function flush()
      local p = table.concat(part):match("^%s*(.-)%s*$")
      local name, opt = p:match("^([%a_][%w_]*)(%??)")
      if name and opt == "" then keys[#keys + 1] = name end
      part = {}
    end
    for ch in inner:gmatch(".") do
      if ch == "{" or ch == "[" or ch == "(" then depth = depth + 1
      elseif ch == "}" or ch == "]" or ch == ")" then depth = depth - 1 end
      if ch == "," and depth == 0 then flush() else part[#part + 1] = ch end
    end
    flush()
    return keys
  end

  local function check_shape(op, status, body, headers, raw)
    local where = op.id
    assert.are.equal(op.response.status, status, where .. ": " .. tostring(raw))
    local kind = op.response.kind
    if kind == "empty" then
      assert.are.equal("", raw, where)
      return
    end
    if kind == "text" then
      assert.truthy((headers["content-type"] or ""):find("text/csv", 1, true), where)
      assert.truthy(raw:find("bl_value", 1, true), where)
      return
    end
    assert.is_table(body, where .. ": body is not JSON: " .. tostring(raw))
    if kind == "list" then
      assert.is_false(is_array(body), where)
      assert.is_true(is_array(body.items), where .. ": items is not an array")
      local cur = body.next_starting_after
      assert.is_true(cur == nil or cur == null or type(cur) == "string", where)
      for _, it in ipairs(body.items) do check_object_fields(it, op.response.item, where) end
    elseif kind == "array" then
      assert.is_true(is_array(body), where .. ": not an array")
      for _, it in ipairs(body) do
        assert.is_table(it, where)
        check_object_fields(it, op.response.item, where)
      end
    elseif kind == "job" then
      assert.is_false(is_array(body), where)
      assert.is_string(body.id, where)
      assert.is_string(body.type, where)
      assert.truthy(({ pending = 1, ["in-progress"] = 1, success = 1, failed = 1 })[body.status], where)
      check_object_fields(body, "Background Job", where)
    elseif kind == "object" then
      assert.is_false(is_array(body), where .. ": object expected, got an array")
      check_object_fields(body, op.response.item, where)
      if not op.response.item then
        local optional = optional_keys(op)
        for _, k in ipairs(documented_keys(op.response.notes)) do
          if not optional[k] then assert.is_not_nil(body[k], where .. ": documented key " .. k .. " missing") end
        end
      end
    elseif kind == "other" then
      assert.is_false(is_array(body), where)
      assert.is_true(is_array(body.items), where)
    end
  end

  -- destructive operations run after the others, DELETEs last
  local LATE = { moveAccounts = 2, mergeLeads = 2, pauseAccountsBulk = 2, deletebulkBlockListEntry = 2,
    scheduleWorkspaceRemoval = 2, cancelWorkspaceRemoval = 3, deleteWorkspaceDomain = 3,
    getOAuthSessionStatus = 1, checkVerificationStatus = 1, getEnrichmentForResource = 1,
    getAiEnrichmentForResource = 1, runEnrichment = 1, getEnrichmentHistory = 1,
    updateEnrichmentSettingsForResource = 1, getBackgroundJob = 1, deleteAPIKey = 4 }
  local ordered = {}
  for i, op in ipairs(ops) do
    local rank = LATE[op.id] or (op.method == "DELETE" and 3 or 0)
    ordered[#ordered + 1] = { op = op, rank = rank, i = i }
  end
  table.sort(ordered, function(a, b)
    if a.rank ~= b.rank then return a.rank < b.rank end
    return a.i < b.i
  end)

  it("covers all 187 operations", function()
    assert.are.equal(187, #ops)
  end)

  it("answers each operation with its documented status and shape", function()
    local called, failures = {}, {}
    for _, o in ipairs(ordered) do
      local op = o.op
      if op.id == "getOAuthSessionStatus" and not refs.session then
        local _, s = c:request("POST", "/oauth/google/init")
        refs.session = s.session_id
      end
      local ok, e = pcall(function()
        local r = request_for(op)
        local status, body, headers, raw = c:request(op.method, path_for(op), r)
        assert(status, op.id .. ": transport error " .. tostring(body))
        check_shape(op, status, body, headers, raw)
      end)
      if ok then called[op.id] = true else failures[#failures + 1] = tostring(e) end
    end
    assert.are.same({}, failures)
    local n = 0
    for _ in pairs(called) do n = n + 1 end
    assert.are.equal(#ops, n)
    -- every call reached the server and was logged with its catalog path
    local log = srv:requests()
    assert.is_true(#log >= #ops)
  end)
end)
