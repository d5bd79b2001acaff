--- Bespoke handlers: leads (list by POST, bulk add with dedupe and the
-- block list, bulk delete/assign, move/export jobs, merge, interest
-- status, subsequences), lead lists, background jobs, custom tags and
-- their mappings, the block list and lead labels.
-- @module instantly.mock.handlers.leads

local json = require "instantly.mock.json"
local util = require "instantly.mock.util"

local array, null = json.array, json.null
local fmt = string.format

return function(H, common)
  local err, fail = common.err, common.fail

  local LEAD_WRITABLE = { "personalization", "website", "last_name", "first_name", "company_name", "job_title",
    "phone", "lt_interest_status", "pl_value_lead", "assigned_to" }

  local function present(v) return v ~= nil and v ~= null end

  -- Leads: filters shared by list, bulk assign, move and export ----------------------------

  local FILTERS = {
    FILTER_VAL_CONTACTED = function(l) return present(l.timestamp_last_contact) end,
    FILTER_VAL_NOT_CONTACTED = function(l) return not present(l.timestamp_last_contact) end,
    FILTER_VAL_COMPLETED = function(l) return l.status == 3 end,
    FILTER_VAL_ACTIVE = function(l) return l.status == 1 end,
    FILTER_VAL_UNSUBSCRIBED = function(l) return l.status == -2 end,
    FILTER_VAL_BOUNCED = function(l) return l.status == -1 end,
    FILTER_VAL_OPENED = function(l) return (l.email_open_count or 0) > 0 end,
    FILTER_VAL_CLICKED = function(l) return (l.email_click_count or 0) > 0 end,
    FILTER_VAL_REPLIED = function(l) return (l.email_reply_count or 0) > 0 end,
    FILTER_LEAD_INTERESTED = function(l) return l.lt_interest_status == 1 end,
    FILTER_LEAD_NOT_INTERESTED = function(l) return l.lt_interest_status == -1 end,
    FILTER_LEAD_MEETING_BOOKED = function(l) return l.lt_interest_status == 2 end,
    FILTER_LEAD_MEETING_COMPLETED = function(l) return l.lt_interest_status == 3 end,
    FILTER_LEAD_CLOSED = function(l) return l.lt_interest_status == 4 end,
  }

  local function set_of(list)
    if list == nil or list == null then return nil end
    local s = {}
    for _, v in ipairs(list) do s[v] = true end
    return s
  end

  local function lead_pred(ctx, b)
    local store = ctx.store
    if b.campaign and b.campaign ~= null and not store:coll("campaigns"):get(b.campaign) then
      return nil, fail(404, "Campaign not found")
    end
    if b.list_id and b.list_id ~= null and not store:coll("lead_lists"):get(b.list_id) then
      return nil, fail(404, "Lead list not found")
    end
    local f = b.filter
    if f ~= nil and f ~= null and not FILTERS[f] then
      return nil, fail(400, "body/filter must be one of the FILTER_* values")
    end
    local ids, excluded, contacts = set_of(b.ids), set_of(b.excluded_ids), set_of(b.contacts)
    -- on list calls organization_user_ids filters by assignee; on bulk
    -- assign it names who receives the leads
    local users = ctx.op.id == "listLeads" and set_of(b.organization_user_ids) or nil
    local preds = {
      b.campaign and b.campaign ~= null and common.eq_pred("campaign", b.campaign) or nil,
      b.list_id and b.list_id ~= null and common.eq_pred("list_id", b.list_id) or nil,
      b.in_campaign == true and function(l) return present(l.campaign) end or nil,
      b.in_campaign == false and function(l) return not present(l.campaign) end or nil,
      b.in_list == true and function(l) return present(l.list_id) end or nil,
      b.in_list == false and function(l) return not present(l.list_id) end or nil,
      ids and function(l) return ids[l.id] end or nil,
      excluded and function(l) return not excluded[l.id] end or nil,
      contacts and function(l) return contacts[l.email] end or nil,
      users and function(l) return users[l.assigned_to] end or nil,
      f and f ~= null and FILTERS[f] or nil,
      type(b.search) == "string" and b.search ~= ""
        and common.search_pred(b.search, { "email", "first_name", "last_name", "company_name" }) or nil,
      b.is_website_visitor ~= nil and common.eq_pred("is_website_visitor", b.is_website_visitor) or nil,
      b.enrichment_status ~= nil and common.eq_pred("enrichment_status", b.enrichment_status) or nil,
      b.assigned_to ~= nil and ctx.op.id == "listLeads" and common.eq_pred("assigned_to", b.assigned_to) or nil,
    }
    return common.all(preds) or function() return true end
  end

  H.listLeads = function(ctx)
    local b = ctx.body or {}
    local pred, e = lead_pred(ctx, b)
    if not pred then return e end
    local coll = ctx.store:coll("leads")
    if b.distinct_contacts then
      -- one row per email; the cursor is the email
      local seen, rows = {}, {}
      for _, l in coll:each() do
        if pred(l) and not seen[l.email] then
          seen[l.email] = true
          rows[#rows + 1] = l
        end
      end
      return common.page_array(ctx, rows, function(l) return l.email end, b)
    end
    return common.page(ctx, coll, pred, b)
  end

  local function find_lead(store, email, where)
    if type(email) ~= "string" then return nil end
    local lower = email:lower()
    for _, l in store:coll("leads"):each() do
      if type(l.email) == "string" and l.email:lower() == lower then
        if where == "workspace" then return l end
        if where and where.campaign and l.campaign == where.campaign then return l end
        if where and where.list_id and l.list_id == where.list_id then return l end
      end
    end
  end

  local function new_lead(ctx, src, campaign_id, list_id, assigned_to, method)
    local payload = {}
    if type(src.custom_variables) == "table" then
      for k, v in pairs(src.custom_variables) do payload[k] = v end
    end
    local email = type(src.email) == "string" and src.email ~= "" and src.email or nil
    local values = {
      email = email, campaign = campaign_id or null, list_id = list_id or null, status = 1,
      company_domain = email and email:match("@(.+)$") or null, payload = payload,
      email_open_count = 0, email_reply_count = 0, email_click_count = 0,
      status_summary = {}, status_summary_subseq = {}, verification_status = 12,
      upload_method = method or "api", uploaded_by_user = ctx.store.user_id, is_website_visitor = false,
      assigned_to = assigned_to or null, lt_interest_status = null,
      pl_value_lead = null,
    }
    for _, k in ipairs(LEAD_WRITABLE) do
      if src[k] ~= nil then values[k] = src[k] end
    end
    return ctx.store:create("leads", values)
  end

  H.createLead = function(ctx)
    local b, store = ctx.body or {}, ctx.store
    if b.email ~= nil and not util.is_email(b.email) then return err(400, 'body/email must match format "email"') end
    if b.email == nil and b.first_name == nil and b.last_name == nil then
      return err(400, "body must have one of email, first_name, last_name")
    end
    if b.campaign and not store:coll("campaigns"):get(b.campaign) then return err(404, "Campaign not found") end
    if b.list_id and not store:coll("lead_lists"):get(b.list_id) then return err(404, "Lead list not found") end
    if b.email then
      local dup = (b.skip_if_in_workspace and find_lead(store, b.email, "workspace"))
        or (b.skip_if_in_campaign and b.campaign and find_lead(store, b.email, { campaign = b.campaign }))
        or (b.skip_if_in_list and b.list_id and find_lead(store, b.email, { list_id = b.list_id }))
      if dup then return 200, dup end
    end
    return 200, new_lead(ctx, b, b.campaign, b.list_id, b.assigned_to, "api")
  end

  H.patchLead = function(ctx)
    local l = ctx.store:coll("leads"):get(ctx.params.id)
    if not l then return err(404, "Lead not found") end
    local b = ctx.body or {}
    for _, k in ipairs(LEAD_WRITABLE) do
      if b[k] ~= nil and k ~= "lt_interest_status" then l[k] = b[k] end
    end
    if b.lt_interest_status ~= nil then ctx.app:set_interest(ctx.store, l, b.lt_interest_status) end
    if type(b.custom_variables) == "table" then
      if l.payload == null then l.payload = {} end
      for k, v in pairs(b.custom_variables) do l.payload[k] = v end
    end
    l.timestamp_updated = ctx.store:now_iso()
    return 200, l
  end

  H.bulkAddLeads = function(ctx)
    local b, store = ctx.body, ctx.store
    local cid, lid = b.campaign_id, b.list_id
    if (cid == nil) == (lid == nil) then return err(400, "body must have exactly one of campaign_id, list_id") end
    if cid and not store:coll("campaigns"):get(cid) then return err(404, "Campaign not found") end
    if lid and not store:coll("lead_lists"):get(lid) then return err(404, "Lead list not found") end
    if #b.leads > 1000 then return err(400, "body/leads must NOT have more than 1000 items") end
    if #b.leads == 0 then return err(400, "body/leads must NOT have fewer than 1 items") end
    local extra_block
    if b.blocklist_id then
      local bl = store:coll("block_list_entries"):get(b.blocklist_id)
      if not bl then return err(404, "Block list entry not found") end
      extra_block = { [bl.bl_value:lower()] = true }
    end
    local r = {
      status = "success", total_sent = #b.leads, leads_uploaded = 0, in_blocklist = 0,
      blocklist_used = b.blocklist_id or null, duplicated_leads = 0, skipped_count = 0, invalid_email_count = 0,
      incomplete_count = 0, duplicate_email_count = 0, remaining_in_plan = 0, created_leads = array{},
      invalid_emails = array{},
    }
    -- one pass over the workspace builds the dedupe sets for this call
    local in_ws, in_target = {}, {}
    for _, l in store:coll("leads"):each() do
      if type(l.email) == "string" then
        local e = l.email:lower()
        in_ws[e] = true
        if (cid and l.campaign == cid) or (lid and l.list_id == lid) then in_target[e] = true end
      end
    end
    local blocked_set = {}
    for _, e in store:coll("block_list_entries"):each() do blocked_set[e.bl_value:lower()] = true end
    for k in pairs(extra_block or {}) do blocked_set[k] = true end
    local seen = {}
    for i, src in ipairs(b.leads) do
      if type(src) ~= "table" then return err(400, fmt("body/leads/%d must be object", i - 1)) end
      local email = src.email
      local lower = type(email) == "string" and email:lower()
      local named = (type(src.first_name) == "string" and src.first_name ~= "")
        or (type(src.last_name) == "string" and src.last_name ~= "")
      if (email == nil or email == null or email == "") and lid and named then
        -- a list keeps contacts without an address (to enrich later); a
        -- campaign cannot send to them
        local l = new_lead(ctx, src, cid, lid, b.assigned_to, "api")
        r.leads_uploaded = r.leads_uploaded + 1
        r.created_leads[#r.created_leads + 1] = { index = i - 1, id = l.id, email = null,
          first_name = l.first_name, last_name = l.last_name, phone = l.phone }
      elseif email == nil or email == null or email == "" then
        r.incomplete_count = r.incomplete_count + 1
      elseif type(email) ~= "string" or not util.is_email(email) then
        r.invalid_email_count = r.invalid_email_count + 1
        r.invalid_emails[#r.invalid_emails + 1] = tostring(email)
      elseif seen[lower] then
        r.duplicate_email_count = r.duplicate_email_count + 1
      elseif blocked_set[lower] or blocked_set[lower:match("@(.+)$")] then
        seen[lower] = true
        r.in_blocklist = r.in_blocklist + 1
      else
        seen[lower] = true
        local skip = (b.skip_if_in_workspace and in_ws[lower])
          or (b.skip_if_in_campaign and cid and in_target[lower])
          or (b.skip_if_in_list and lid and in_target[lower])
        if skip then
          r.skipped_count = r.skipped_count + 1
          r.duplicated_leads = r.duplicated_leads + 1
        else
          local l = new_lead(ctx, src, cid, lid, b.assigned_to, "api")
          if b.verify_leads_on_import then l.verification_status = 11 end
          r.leads_uploaded = r.leads_uploaded + 1
          r.created_leads[#r.created_leads + 1] = { index = i - 1, id = l.id, email = l.email,
            first_name = l.first_name, last_name = l.last_name, phone = l.phone }
        end
      end
    end
    local plan = 25000
    r.remaining_in_plan = math.max(0, plan - store:coll("leads"):count())
    return 200, r
  end

  H.bulkDeleteLeads = function(ctx)
    local b, store = ctx.body or {}, ctx.store
    local cid, lid = b.campaign_id, b.list_id
    if (cid == nil) == (lid == nil) then return err(400, "body must have exactly one of campaign_id, list_id") end
    if cid and not store:coll("campaigns"):get(cid) then return err(404, "Campaign not found") end
    if lid and not store:coll("lead_lists"):get(lid) then return err(404, "Lead list not found") end
    local ids = set_of(b.ids)
    local limit = b.limit
    local n = 0
    local gone = store:coll("leads"):remove_if(function(l)
      if limit and n >= limit then return false end
      if cid and l.campaign ~= cid then return false end
      if lid and l.list_id ~= lid then return false end
      if b.status ~= nil and l.status ~= b.status then return false end
      if ids and not ids[l.id] then return false end
      n = n + 1
      return true
    end)
    return 200, { count = #gone }
  end

  H.bulkAssignLeads = function(ctx)
    local b = ctx.body
    local pred, e = lead_pred(ctx, b)
    if not pred then return e end
    local to = b.assigned_to
    if to == nil then to = b.organization_user_ids[1] end
    local n = 0
    for _, l in ctx.store:coll("leads"):each() do
      if pred(l) and (not b.limit or n < b.limit) then
        l.assigned_to = to or null
        n = n + 1
      end
    end
    return 202, { status = "accepted", message = fmt("Assigning %d leads in the background", n) }
  end

  H.moveLeads = function(ctx)
    local b, store = ctx.body or {}, ctx.store
    local to_c, to_l = b.to_campaign_id, b.to_list_id
    if (to_c == nil) == (to_l == nil) then
      return err(400, "body must have exactly one of to_campaign_id, to_list_id")
    end
    if to_c and not store:coll("campaigns"):get(to_c) then return err(404, "Destination campaign not found") end
    if to_l and not store:coll("lead_lists"):get(to_l) then return err(404, "Destination list not found") end
    local pred, e = lead_pred(ctx, b)
    if not pred then return e end
    local picked = {}
    for _, l in store:coll("leads"):each() do
      if pred(l) and (not b.limit or #picked < b.limit) then picked[#picked + 1] = l.id end
    end
    local job = common.job(ctx, "move-leads", to_c and "campaign" or "list", to_c or to_l,
      { total = #picked, copy = b.copy_leads == true }, function(_, st)
        local moved, skipped = 0, 0
        for _, id in ipairs(picked) do
          local l = st:coll("leads"):get(id)
          if l then
            local dup = (b.check_duplicates or b.check_duplicates_in_campaigns)
              and find_lead(st, l.email, to_c and { campaign = to_c } or { list_id = to_l })
            if dup and dup ~= l then
              skipped = skipped + 1
            else
              local target = l
              if b.copy_leads then
                local values = util.deep_copy(l)
                values.id, values.timestamp_created = nil, nil
                target = st:create("leads", values)
              end
              target.campaign = to_c or null
              target.list_id = to_l or null
              if b.reset_interest_status then target.lt_interest_status = null end
              moved = moved + 1
            end
          end
        end
        return { moved = moved, skipped = skipped }
      end)
    return 200, job
  end

  H.exportLeads = function(ctx)
    local b = ctx.body or {}
    local pred, e = lead_pred(ctx, b)
    if not pred then return e end
    local n = 0
    for _, l in ctx.store:coll("leads"):each() do
      if pred(l) and (not b.limit or n < b.limit) then n = n + 1 end
    end
    local job = common.job(ctx, "export-leads", "workspace", ctx.store.workspace_id, { total = n },
      function(job)
        return { exported = n, file_url = "https://exports.mock.invalid/" .. job.id .. ".csv" }
      end)
    return 200, job
  end

  H.mergeLeads = function(ctx)
    local store = ctx.store
    local src = store:coll("leads"):get(ctx.body.lead_id)
    local dst = store:coll("leads"):get(ctx.body.destination_lead_id)
    if not src then return err(404, "Lead " .. ctx.body.lead_id .. " not found") end
    if not dst then return err(404, "Lead " .. ctx.body.destination_lead_id .. " not found") end
    if src == dst then return err(400, "lead_id and destination_lead_id are the same lead") end
    for k, v in pairs(src) do
      if (dst[k] == nil or dst[k] == null) and k ~= "id" then dst[k] = v end
    end
    dst.email_open_count = (dst.email_open_count or 0) + (src.email_open_count or 0)
    dst.email_reply_count = (dst.email_reply_count or 0) + (src.email_reply_count or 0)
    dst.email_click_count = (dst.email_click_count or 0) + (src.email_click_count or 0)
    store:coll("leads"):remove(src.id)
    dst.timestamp_updated = store:now_iso()
    return 200, dst
  end

  H.updateLeadInterestStatus = function(ctx)
    local b, store = ctx.body, ctx.store
    if not util.is_email(b.lead_email) then return 400, { error = "lead_email must be an email address" } end
    for _, l in store:coll("leads"):each() do
      if type(l.email) == "string" and l.email:lower() == b.lead_email:lower()
         and (not b.campaign_id or l.campaign == b.campaign_id)
         and (not b.list_id or l.list_id == b.list_id) then
        ctx.app:set_interest(store, l, b.interest_value)
      end
    end
    return 202, { message = "Lead interest status update background job submitted" }
  end

  H.moveLeadToSubsequence = function(ctx)
    local store = ctx.store
    local l = store:coll("leads"):get(ctx.body.id)
    if not l then return err(404, "Lead not found") end
    local s = store:coll("subsequences"):get(ctx.body.subsequence_id)
    if not s then return err(404, "Subsequence not found") end
    l.subsequence_id = s.id
    l.timestamp_added_subsequence = store:now_iso()
    return 200, l
  end

  H.removeLeadFromSubsequence = function(ctx)
    local l = ctx.store:coll("leads"):get(ctx.body.id)
    if not l then return err(404, "Lead not found") end
    l.subsequence_id = null
    l.timestamp_added_subsequence = null
    return 200, l
  end

  -- Lead lists -------------------------------------------------------------------------

  H.getVerificationStats = function(ctx)
    local list = ctx.store:coll("lead_lists"):get(ctx.params.id)
    if not list then return err(404, "Lead list not found") end
    local s = { verified = 0, invalid = 0, risky = 0, catch_all = 0, job_change = 0,
      verification_job_pending_leadfinder = 0, verification_job_pending_user = 0 }
    local total = 0
    for _, l in ctx.store:coll("leads"):each() do
      if l.list_id == list.id then
        total = total + 1
        local v = l.verification_status
        if v == 1 then s.verified = s.verified + 1
        elseif v == -1 then s.invalid = s.invalid + 1
        elseif v == -3 then s.catch_all = s.catch_all + 1
        elseif v == 11 then s.verification_job_pending_user = s.verification_job_pending_user + 1
        elseif v == -2 or v == -4 then s.risky = s.risky + 1 end
      end
    end
    return 200, { stats = s, total_leads = total }
  end

  H.deleteLeadList = function(ctx)
    local list = ctx.store:coll("lead_lists"):remove(ctx.params.id)
    if not list then return err(404, "Lead list not found") end
    ctx.store:coll("leads"):remove_if(function(l) return l.list_id == list.id end)
    return 200, list
  end

  -- Background jobs ----------------------------------------------------------------------

  H.getBackgroundJob = function(ctx)
    local job = ctx.store:coll("background_jobs"):get(ctx.params.id)
    if not job then return err(404, "Background job not found") end
    common.advance_job(ctx, job)
    if ctx.query.data_fields then
      local want = set_of(type(ctx.query.data_fields) == "table" and ctx.query.data_fields
        or { ctx.query.data_fields })
      local copy = util.shallow_copy(job)
      local data = {}
      for k, v in pairs(job.data or {}) do if want[k] then data[k] = v end end
      copy.data = data
      return 200, copy
    end
    return 200, job
  end

  H.listBackgroundJob = function(ctx)
    local q = ctx.query
    local function list(v)
      if v == nil then return nil end
      local s = {}
      for _, x in ipairs(type(v) == "table" and v or { v }) do
        for id in tostring(x):gmatch("[^,]+") do s[#s + 1] = id end
      end
      return s
    end
    local ids, inc, exc = set_of(list(q.ids)), set_of(list(q.included_ids)), set_of(list(q.excluded_ids))
    local pred = common.all{
      ids and function(j) return ids[j.id] end or nil,
      inc and function(j) return inc[j.id] end or nil,
      exc and function(j) return not exc[j.id] end or nil,
      common.eq_pred("type", q.type), common.eq_pred("entity_type", q.entity_type),
      common.eq_pred("entity_id", q.entity_id), common.eq_pred("status", q.status),
    }
    return common.page(ctx, ctx.store:coll("background_jobs"), pred)
  end

  -- Custom tags -----------------------------------------------------------------------------

  H.listCustomTag = function(ctx)
    local q, store = ctx.query, ctx.store
    local res = q.resource_ids and set_of(type(q.resource_ids) == "table" and q.resource_ids or { q.resource_ids })
    local tag_ids = q.tag_ids and set_of(type(q.tag_ids) == "table" and q.tag_ids or { q.tag_ids })
    local on_res
    if res then
      on_res = {}
      for _, m in store:coll("custom_tag_mappings"):each() do
        if res[m.resource_id] then on_res[m.tag_id] = true end
      end
    end
    return common.page(ctx, store:coll("custom_tags"), common.all{
      common.search_pred(q.search, { "label", "description" }),
      tag_ids and function(t) return tag_ids[t.id] end or nil,
      on_res and function(t) return on_res[t.id] end or nil,
    })
  end

  H.deleteCustomTag = function(ctx)
    local t = ctx.store:coll("custom_tags"):remove(ctx.params.id)
    if not t then return err(404, "Custom tag not found") end
    ctx.store:coll("custom_tag_mappings"):remove_if(function(m) return m.tag_id == t.id end)
    return 200, t
  end

  H.toggleTagResource = function(ctx)
    local b, store = ctx.body, ctx.store
    local maps = store:coll("custom_tag_mappings")
    for _, tid in ipairs(b.tag_ids) do
      if not store:coll("custom_tags"):get(tid) then return err(404, "Custom tag " .. tid .. " not found") end
    end
    local resources = {}
    if b.selected_all then
      local excluded = set_of(b.excluded_resource_ids) or {}
      if b.resource_type == 1 then
        for _, a in store:coll("accounts"):each() do
          if not excluded[a.email] then resources[#resources + 1] = a.email end
        end
      else
        for _, c in store:coll("campaigns"):each() do
          if not excluded[c.id] then resources[#resources + 1] = c.id end
        end
      end
    else
      resources = b.resource_ids or {}
    end
    for _, tid in ipairs(b.tag_ids) do
      for _, rid in ipairs(resources) do
        local existing
        for _, m in maps:each() do
          if m.tag_id == tid and m.resource_id == rid then existing = m break end
        end
        if b.assign and not existing then
          store:create("custom_tag_mappings", { tag_id = tid, resource_id = rid, resource_type = b.resource_type })
        elseif not b.assign and existing then
          maps:remove(existing.id)
        end
      end
    end
    return 200, { success = true }
  end

  H.listCustomTagMapping = function(ctx)
    local q = ctx.query
    local res = q.resource_ids and set_of(type(q.resource_ids) == "table" and q.resource_ids or { q.resource_ids })
    return common.page(ctx, ctx.store:coll("custom_tag_mappings"),
      res and function(m) return res[m.resource_id] end or nil)
  end

  -- Block list ---------------------------------------------------------------------------------

  local function bl_valid(v)
    if type(v) ~= "string" or v == "" then return false end
    if v:find("@", 1, true) then return util.is_email(v) end
    return v:match("^[%w-]+%.[%w.-]*%w$") ~= nil
  end

  local function bl_create(store, v)
    for _, e in store:coll("block_list_entries"):each() do
      if e.bl_value:lower() == v:lower() then return e, true end
    end
    return store:create("block_list_entries", { bl_value = v, is_domain = not v:find("@", 1, true) })
  end

  H.createBlockListEntry = function(ctx)
    local v = ctx.body.bl_value
    if not bl_valid(v) then return err(400, "body/bl_value must be an email address or a domain") end
    local e, existed = bl_create(ctx.store, v)
    if existed then return err(400, "Block list entry " .. v .. " already exists") end
    return 200, e
  end

  H.patchBlockListEntry = function(ctx)
    local e = ctx.store:coll("block_list_entries"):get(ctx.params.id)
    if not e then return err(404, "Block list entry not found") end
    local v = (ctx.body or {}).bl_value
    if v ~= nil then
      if not bl_valid(v) then return err(400, "body/bl_value must be an email address or a domain") end
      e.bl_value = v
      e.is_domain = not v:find("@", 1, true)
    end
    return 200, e
  end

  H.createblukBlockListEntry = function(ctx)
    local items, valid, invalid = array{}, 0, 0
    for _, v in ipairs(ctx.body.bl_values) do
      if bl_valid(v) then
        valid = valid + 1
        items[#items + 1] = (bl_create(ctx.store, v))
      else
        invalid = invalid + 1
      end
    end
    return 200, { items = items, valid_count = valid, invalid_count = invalid }
  end

  H.deletebulkBlockListEntry = function(ctx)
    local gone = array{}
    for _, id in ipairs(ctx.body.ids) do
      local e = ctx.store:coll("block_list_entries"):remove(id)
      if e then gone[#gone + 1] = e end
    end
    return 200, gone
  end

  local function bl_pred(q)
    return common.all{
      q.domains_only and function(e) return e.is_domain end or nil,
      common.search_pred(q.search, { "bl_value" }),
    }
  end

  H.listBlockListEntry = function(ctx)
    return common.page(ctx, ctx.store:coll("block_list_entries"), bl_pred(ctx.query))
  end

  H.deleteallBlockListEntry = function(ctx)
    local pred = bl_pred(ctx.query) or function() return true end
    return 200, array(ctx.store:coll("block_list_entries"):remove_if(pred))
  end

  H.downloadBlockListEntry = function(ctx)
    local pred = bl_pred(ctx.query)
    local lines = { "bl_value,is_domain,timestamp_created" }
    for _, e in ctx.store:coll("block_list_entries"):each() do
      if not pred or pred(e) then
        local v = e.bl_value
        if v:find('[,"\n]') then v = '"' .. v:gsub('"', '""') .. '"' end
        lines[#lines + 1] = fmt("%s,%s,%s", v, tostring(e.is_domain), e.timestamp_created)
      end
    end
    return { status = 200, body = table.concat(lines, "\r\n") .. "\r\n",
      headers = { ["Content-Type"] = "text/csv; charset=utf-8",
                  ["Content-Disposition"] = 'attachment; filename="blocklist.csv"' } }
  end

  -- Lead labels ------------------------------------------------------------------------------------

  H.createLeadLabel = function(ctx)
    local b, store = ctx.body, ctx.store
    for _, l in store:coll("lead_labels"):each() do
      if l.label:lower() == b.label:lower() then return err(400, "A label named " .. b.label .. " already exists") end
    end
    local max = 100
    for _, l in store:coll("lead_labels"):each() do
      if type(l.interest_status) == "number" and l.interest_status > max then max = l.interest_status end
    end
    return 200, (store:create("lead_labels", {
      label = b.label, interest_status_label = b.interest_status_label, description = b.description or null,
      use_with_ai = b.use_with_ai or false, interest_status = max + 1,
    }))
  end

  H.deleteLeadLabel = function(ctx)
    local store = ctx.store
    local l = store:coll("lead_labels"):remove(ctx.params.id)
    if not l then return err(404, "Lead label not found") end
    local to = ctx.body and ctx.body.reassigned_status
    for _, lead in store:coll("leads"):each() do
      if lead.lt_interest_status == l.interest_status then lead.lt_interest_status = to or null end
    end
    return 200, l
  end

  H.testAiReplyLabelLeadLabels = function(ctx)
    local text = ctx.body.reply_text:lower()
    local considered = array{}
    for _, l in ctx.store:coll("lead_labels"):each() do
      if l.use_with_ai then considered[#considered + 1] = l.label end
    end
    local result
    if text:find("not interested", 1, true) or text:find("unsubscribe", 1, true) then result = "Not Interested"
    elseif text:find("out of office", 1, true) then result = "Out of Office"
    elseif text:find("meeting", 1, true) or text:find("call", 1, true) then result = "Meeting Booked"
    elseif text:find("interested", 1, true) or text:find("pricing", 1, true) then result = "Interested"
    else result = "Neutral" end
    return 200, { result = result, custom_labels_considered = considered }
  end
end
