--- Bespoke handlers: campaigns (draft -> active -> paused, duplicate,
-- export, share, sending status) and subsequences.
-- @module instantly.mock.handlers.campaigns

local json = require "instantly.mock.json"
local util = require "instantly.mock.util"

local array, null = json.array, json.null

return function(H, common)
  local err = common.err

  local function campaign(ctx, id)
    local c = ctx.store:coll("campaigns"):get(id or ctx.params.id)
    if not c then return nil, common.fail(404, "Campaign not found") end
    return c
  end

  local CAMPAIGN_FIELDS = { "name", "campaign_schedule", "pl_value", "is_evergreen", "sequences", "email_gap",
    "random_wait_max", "text_only", "first_email_text_only", "email_list", "daily_limit", "stop_on_reply",
    "email_tag_list", "link_tracking", "open_tracking", "stop_on_auto_reply", "daily_max_leads",
    "prioritize_new_leads", "auto_variant_select", "match_lead_esp", "stop_for_company",
    "insert_unsubscribe_header", "allow_risky_contacts", "disable_bounce_protect",
    "limit_emails_per_company_override", "cc_list", "bcc_list", "owned_by", "ai_sdr_id", "provider_routing_rules" }

  local function check_senders(ctx, list)
    for _, e in ipairs(list or {}) do
      if not ctx.store:coll("accounts"):get(e) then
        return "body/email_list contains " .. tostring(e) .. ", which is not an account of this workspace"
      end
    end
  end

  local function check_schedule(s)
    if s == nil then return nil end
    local list = s.schedules
    if list ~= nil and type(list) ~= "table" then return "body/campaign_schedule/schedules must be array" end
    for i, sch in ipairs(list or {}) do
      if type(sch) ~= "table" then return "body/campaign_schedule/schedules/" .. (i - 1) .. " must be object" end
      local t = sch.timing
      if t ~= nil and (type(t) ~= "table" or not tostring(t.from):match("^%d%d:%d%d$")
          or not tostring(t.to):match("^%d%d:%d%d$")) then
        return "body/campaign_schedule/schedules/" .. (i - 1) .. "/timing must have from and to as HH:MM"
      end
    end
  end

  H.listCampaign = function(ctx)
    local q, store = ctx.query, ctx.store
    local tagged
    if q.tag_ids then
      local want = {}
      for _, v in ipairs(type(q.tag_ids) == "table" and q.tag_ids or { q.tag_ids }) do
        for id in tostring(v):gmatch("[^,]+") do want[id] = true end
      end
      tagged = {}
      for _, m in store:coll("custom_tag_mappings"):each() do
        if want[m.tag_id] then tagged[m.resource_id] = true end
      end
    end
    return common.page(ctx, store:coll("campaigns"), common.all{
      common.eq_pred("status", q.status),
      common.search_pred(q.search, { "name" }),
      tagged and function(c) return tagged[c.id] == true end or nil,
      q.ai_sales_agent_id and common.eq_pred("ai_sdr_id", q.ai_sales_agent_id) or nil,
    })
  end

  H.createCampaign = function(ctx)
    local b = ctx.body
    local e = check_senders(ctx, b.email_list) or check_schedule(b.campaign_schedule)
    if e then return err(400, e) end
    local values = { status = 0, not_sending_status = null, custom_variables = {}, core_variables = {} }
    for _, k in ipairs(CAMPAIGN_FIELDS) do
      if b[k] ~= nil then values[k] = b[k] end
    end
    if values.open_tracking == nil then values.open_tracking = true end
    return 200, (ctx.store:create("campaigns", values))
  end

  H.patchCampaign = function(ctx)
    local c, e = campaign(ctx)
    if not c then return e end
    local b = ctx.body or {}
    local msg = check_senders(ctx, b.email_list) or check_schedule(b.campaign_schedule)
    if msg then return err(400, msg) end
    for _, k in ipairs(CAMPAIGN_FIELDS) do
      if b[k] ~= nil and k ~= "ai_sdr_id" then c[k] = b[k] end
    end
    c.timestamp_updated = ctx.store:now_iso()
    return 200, c
  end

  H.activateCampaign = function(ctx)
    local c, e = campaign(ctx)
    if not c then return e end
    local steps = c.sequences and c.sequences[1] and c.sequences[1].steps
    if not steps or #steps == 0 then
      return err(400, "Campaign has no sequence steps; add at least one email before activating")
    end
    c.status = 1
    c.not_sending_status = null
    c.timestamp_updated = ctx.store:now_iso()
    return 200, c
  end

  H.pauseCampaign = function(ctx)
    local c, e = campaign(ctx)
    if not c then return e end
    c.status = 2
    c.timestamp_updated = ctx.store:now_iso()
    return 200, c
  end

  local function copy_campaign(ctx, src, name)
    local values = {}
    for _, k in ipairs(CAMPAIGN_FIELDS) do
      if src[k] ~= nil then values[k] = util.deep_copy(src[k]) end
    end
    values.name = name
    values.status = 0
    values.not_sending_status = null
    values.custom_variables = util.deep_copy(src.custom_variables)
    values.core_variables = util.deep_copy(src.core_variables)
    return ctx.store:create("campaigns", values)
  end

  H.duplicate = function(ctx)
    local c, e = campaign(ctx)
    if not c then return e end
    local name = ctx.body and ctx.body.name or (c.name .. " (copy)")
    return 200, copy_campaign(ctx, c, name)
  end

  H.exportCampaign = function(ctx)
    local c, e = campaign(ctx)
    if not c then return e end
    return 200, c
  end

  H.createFromExport = function(ctx)
    local c, e = campaign(ctx)
    if not c then return e end
    return 200, copy_campaign(ctx, c, c.name .. " (imported)")
  end

  H.shareCampaign = function(ctx)
    local c, e = campaign(ctx)
    if not c then return e end
    ctx.store.shared = ctx.store.shared or {}
    ctx.store.shared[c.id] = require("socket").gettime() + 7 * 86400
    return 204, nil
  end

  H.addVariables = function(ctx)
    local c, e = campaign(ctx)
    if not c then return e end
    local vars = ctx.body and ctx.body.variables or {}
    if c.custom_variables == null then c.custom_variables = {} end
    for i, v in ipairs(vars) do
      if type(v) ~= "string" or v == "" then
        return err(400, "body/variables/" .. (i - 1) .. " must be a non-empty string")
      end
      if c.custom_variables[v] == nil then c.custom_variables[v] = "" end
    end
    c.timestamp_updated = ctx.store:now_iso()
    return 200, c
  end

  local STATUS_REASON = { [0] = "campaign_draft", [2] = "campaign_paused", [3] = "campaign_completed",
    [4] = "campaign_running_subsequences", [-99] = "campaign_account_suspended",
    [-1] = "campaign_accounts_unhealthy", [-2] = "campaign_bounce_protect" }

  local function sending_status(ctx, c, subsequence_id)
    local store = ctx.store
    local reason = STATUS_REASON[c.status]
    local summary
    if ctx.query.with_ai_summary then
      summary = { text = "Mock summary: status " .. tostring(c.status) }
    end
    if c.status ~= 1 then
      return 200, { diagnostics = null, summary = { status = reason or "campaign_paused", summary = summary } }
    end
    local healthy, total = 0, 0
    for _, e in ipairs(c.email_list or {}) do
      total = total + 1
      local a = store:coll("accounts"):get(e)
      if a and a.status == 1 then healthy = healthy + 1 end
    end
    local cid = c.parent_campaign or c.id
    local waiting = store:coll("leads"):count(function(l) return l.campaign == cid and l.status == 1 end)
    local status
    if total == 0 then status = "no_accounts_available"
    elseif healthy == 0 then status = "all_accounts_unhealthy"
    elseif waiting == 0 then status = "waiting_for_leads"
    else status = "healthy" end
    return 200, {
      diagnostics = {
        campaign_id = cid, subsequence_id = subsequence_id or null, last_updated = store:now_iso(),
        status = status, issue_tracking = array{},
        accounts_summary = { total = total, healthy = healthy, unhealthy = total - healthy },
        leads_status = { active = waiting },
      },
      summary = summary,
    }
  end

  H.getCampaignSendingStatus = function(ctx)
    local c, e = campaign(ctx)
    if not c then return e end
    return sending_status(ctx, c)
  end

  H.countLaunched = function(ctx)
    return 200, { count = ctx.store:coll("campaigns"):count(function(c) return c.status ~= 0 end) }
  end

  H.searchByContact = function(ctx)
    local q = ctx.query
    local store = ctx.store
    local needle = q.search and q.search:lower()
    local ids = {}
    if needle and needle ~= "" then
      for _, l in store:coll("leads"):each() do
        if l.campaign ~= null and type(l.email) == "string" and l.email:lower() == needle then
          ids[l.campaign] = true
        end
      end
    end
    local items = {}
    for _, c in store:coll("campaigns"):each() do
      if ids[c.id] then items[#items + 1] = c end
    end
    local col = q.sort_column or "timestamp_created"
    local desc = q.sort_order == "desc"
    table.sort(items, function(a, b)
      local x, y = tostring(a[col]), tostring(b[col])
      if desc then return x > y end
      return x < y
    end)
    return 200, { items = array(items) }
  end

  -- Subsequences ----------------------------------------------------------------------

  local function subsequence(ctx)
    local s = ctx.store:coll("subsequences"):get(ctx.params.id)
    if not s then return nil, common.fail(404, "Subsequence not found") end
    return s
  end

  H.listCampaignSubsequence = function(ctx)
    local q = ctx.query
    if not ctx.store:coll("campaigns"):get(q.parent_campaign) then return err(404, "Campaign not found") end
    return common.page(ctx, ctx.store:coll("subsequences"), common.all{
      common.eq_pred("parent_campaign", q.parent_campaign), common.search_pred(q.search, { "name" }) })
  end

  H.createCampaignSubsequence = function(ctx)
    local b = ctx.body
    local parent = ctx.store:coll("campaigns"):get(b.parent_campaign)
    if not parent then return err(404, "Parent campaign not found") end
    return 200, (ctx.store:create("subsequences", {
      parent_campaign = b.parent_campaign, workspace = ctx.store.workspace_id, name = b.name, status = 0,
      conditions = b.conditions, subsequence_schedule = b.subsequence_schedule, sequences = b.sequences,
      daily_limit_mode = b.daily_limit_mode or null, daily_limit = b.daily_limit or null,
      ignore_account_daily_limit = b.ignore_account_daily_limit or false,
      timestamp_leads_updated = null,
    }))
  end

  H.duplicateSubsequence = function(ctx)
    local s, e = subsequence(ctx)
    if not s then return e end
    local b = ctx.body
    if not ctx.store:coll("campaigns"):get(b.parent_campaign) then return err(404, "Parent campaign not found") end
    local values = util.deep_copy(s)
    values.id, values.timestamp_created = nil, nil
    values.parent_campaign, values.name, values.status = b.parent_campaign, b.name, 0
    return 200, (ctx.store:create("subsequences", values))
  end

  local function sub_status(v)
    return function(ctx)
      local s, e = subsequence(ctx)
      if not s then return e end
      s.status = v
      return 200, s
    end
  end
  H.pauseSubsequence = sub_status(2)
  H.resumeSubsequence = sub_status(1)

  H.getSubsequenceSendingStatus = function(ctx)
    local s, e = subsequence(ctx)
    if not s then return e end
    local parent = ctx.store:coll("campaigns"):get(s.parent_campaign)
    local view = { status = s.status, email_list = parent and parent.email_list or {},
      parent_campaign = s.parent_campaign }
    return sending_status(ctx, view, s.id)
  end

  H.deleteCampaign = function(ctx)
    local c = ctx.store:coll("campaigns"):remove(ctx.params.id)
    if not c then return err(404, "Campaign not found") end
    -- its subsequences go with it
    ctx.store:coll("subsequences"):remove_if(function(s) return s.parent_campaign == c.id end)
    return 200, c
  end
end
