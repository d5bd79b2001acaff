--- Lead operations that are more than a row of data: the list call with
-- its filter vocabulary (shared by assign, move and export), bulk add with
-- its dedupe and block-list rules and per-row report, interest changes
-- (which emit events), merges, and the jobs that move and export leads.
-- @module instantly.mock.handlers.leads

local common = require "instantly.mock.handlers.common"
local generic = require "instantly.mock.handlers.generic"
local json = require "instantly.mock.json"
local util = require "instantly.mock.util"

local array, null, err, fail = json.array, json.null, common.err, common.fail
local present = generic.present
local fmt = string.format

local M = {}

local LEAD_WRITABLE = { "personalization", "website", "last_name", "first_name", "company_name", "job_title",
  "phone", "pl_value_lead", "assigned_to" }

local INTEREST = { FILTER_LEAD_INTERESTED = 1, FILTER_LEAD_NOT_INTERESTED = -1, FILTER_LEAD_MEETING_BOOKED = 2,
  FILTER_LEAD_MEETING_COMPLETED = 3, FILTER_LEAD_CLOSED = 4 }
local STATUS = { FILTER_VAL_COMPLETED = 3, FILTER_VAL_ACTIVE = 1, FILTER_VAL_UNSUBSCRIBED = -2,
  FILTER_VAL_BOUNCED = -1 }
local COUNTER = { FILTER_VAL_OPENED = "email_open_count", FILTER_VAL_CLICKED = "email_click_count",
  FILTER_VAL_REPLIED = "email_reply_count" }

-- The predicate of one FILTER_* value; nil when it is not one.
local function named_filter(f)
  if INTEREST[f] then return function(l) return l.lt_interest_status == INTEREST[f] end end
  if STATUS[f] then return function(l) return l.status == STATUS[f] end end
  if COUNTER[f] then return function(l) return (l[COUNTER[f]] or 0) > 0 end end
  if f == "FILTER_VAL_CONTACTED" then return function(l) return present(l.timestamp_last_contact) end end
  if f == "FILTER_VAL_NOT_CONTACTED" then return function(l) return not present(l.timestamp_last_contact) end end
end

local BODY_FILTERS = { { "campaign" }, { "list_id" }, { "in_campaign", present = "campaign" },
  { "in_list", present = "list_id" }, { "ids", csv = "id" }, { "excluded_ids", csv = "id", negate = true },
  { "contacts", csv = "email" }, { "search", search = { "email", "first_name", "last_name", "company_name" } },
  { "is_website_visitor" }, { "enrichment_status" } }
-- on list calls organization_user_ids and assigned_to filter by assignee;
-- on bulk assign they name who receives the leads
local LIST_ONLY = { { "organization_user_ids", csv = "assigned_to" }, { "assigned_to" } }

-- Which leads a list, assign, move or export call selects; nil, refusal.
local function lead_pred(ctx, b)
  local refs = { { "campaign", "campaigns", "Campaign" }, { "list_id", "lead_lists", "Lead list" } }
  for _, r in ipairs(refs) do
    if present(b[r[1]]) and not ctx.store:coll(r[2]):get(b[r[1]]) then return nil, fail(404, r[3] .. " not found") end
  end
  local named
  if present(b.filter) then
    named = named_filter(b.filter)
    if not named then return nil, fail(400, "body/filter must be one of the FILTER_* values") end
  end
  local base = generic.filter(ctx, BODY_FILTERS, b) or nil
  local only = ctx.op.id == "listLeads" and generic.filter(ctx, LIST_ONLY, b) or nil
  return common.all{ base, only, named } or function() return true end
end

function M.listLeads(ctx)
  local b = ctx.body or {}
  local pred, e = lead_pred(ctx, b)
  if not pred then return e end
  local coll = ctx.store:coll("leads")
  if not b.distinct_contacts then return common.page(ctx, coll, pred, b) end
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

-- A lead's address in lower case (the key of its "email" index), or nil.
local function address_of(l)
  return type(l.email) == "string" and l.email:lower() or nil
end

-- The leads of the workspace with address `lower` (lower case), in
-- creation order, or nil (see Coll:find_by). Addresses cannot be written
-- through the API; the one place that gives a lead an address in place
-- (a merge into a lead without one) drops the index.
local function leads_at(coll, lower)
  return coll:find_by("email", address_of, lower)
end

-- The first of `leads` in a campaign or list (where = { campaign = id } /
-- { list_id = id }), or the first at all (where = "workspace").
local function first_in(leads, where)
  if not leads then return nil end
  if where == "workspace" then return leads[1] end
  for _, l in ipairs(leads) do
    if (where.campaign and l.campaign == where.campaign) or (where.list_id and l.list_id == where.list_id) then
      return l
    end
  end
end

-- A lead with this address (any case) in the workspace, or in a campaign
-- or list (where = { campaign = id } / { list_id = id }).
local function find_lead(store, email, where)
  if type(email) ~= "string" then return nil end
  return first_in(leads_at(store:coll("leads"), email:lower()), where)
end

local function new_lead(ctx, src, campaign_id, list_id, assigned_to)
  local payload = {}
  for k, v in pairs(type(src.custom_variables) == "table" and src.custom_variables or {}) do payload[k] = v end
  local email = type(src.email) == "string" and src.email ~= "" and src.email or nil
  local values = {
    email = email, campaign = campaign_id or null, list_id = list_id or null, status = 1,
    company_domain = email and email:match("@(.+)$") or nil, payload = payload,
    email_open_count = 0, email_reply_count = 0, email_click_count = 0,
    status_summary = {}, status_summary_subseq = {}, verification_status = 12,
    upload_method = "api", uploaded_by_user = ctx.store.user_id, is_website_visitor = false,
    assigned_to = assigned_to or null, pl_value_lead = null,
  }
  for _, k in ipairs(LEAD_WRITABLE) do
    if src[k] ~= nil then values[k] = src[k] end
  end
  if src.lt_interest_status ~= nil then values.lt_interest_status = src.lt_interest_status end
  return ctx.store:create("leads", values)
end

function M.createLead(ctx)
  local b, store = ctx.body or {}, ctx.store
  if b.email == nil and b.first_name == nil and b.last_name == nil then
    return err(400, "body must have one of email, first_name, last_name")
  end
  if b.campaign and not store:coll("campaigns"):get(b.campaign) then return err(404, "Campaign not found") end
  if b.list_id and not store:coll("lead_lists"):get(b.list_id) then return err(404, "Lead list not found") end
  local dup = b.email and ((b.skip_if_in_workspace and find_lead(store, b.email, "workspace"))
    or (b.skip_if_in_campaign and b.campaign and find_lead(store, b.email, { campaign = b.campaign }))
    or (b.skip_if_in_list and b.list_id and find_lead(store, b.email, { list_id = b.list_id })))
  if dup then return 200, dup end
  return 200, new_lead(ctx, b, b.campaign, b.list_id, b.assigned_to)
end

-- An interest change goes through the app, which emits the event.
function M.patchLead(ctx)
  local l = ctx.store:coll("leads"):get(ctx.params.id)
  if not l then return err(404, "Lead not found") end
  local b = ctx.body or {}
  for _, k in ipairs(LEAD_WRITABLE) do
    if b[k] ~= nil then l[k] = b[k] end
  end
  if b.lt_interest_status ~= nil then ctx.app:set_interest(ctx.store, l, b.lt_interest_status) end
  if type(b.custom_variables) == "table" then
    if l.payload == null then l.payload = {} end
    for k, v in pairs(b.custom_variables) do l.payload[k] = v end
  end
  l.timestamp_updated = ctx.store:now_iso()
  return 200, l
end

function M.updateLeadInterestStatus(ctx)
  local b, store = ctx.body, ctx.store
  if not util.is_email(b.lead_email) then return 400, { error = "lead_email must be an email address" } end
  local want = b.lead_email:lower()
  for _, l in store:coll("leads"):each() do
    if type(l.email) == "string" and l.email:lower() == want
       and (not b.campaign_id or l.campaign == b.campaign_id) and (not b.list_id or l.list_id == b.list_id) then
      ctx.app:set_interest(store, l, b.interest_value)
    end
  end
  return 202, { message = "Lead interest status update background job submitted" }
end

-- Bulk add ---------------------------------------------------------------------

local function target_check(store, cid, lid)
  if (cid == nil) == (lid == nil) then return 400, "body must have exactly one of campaign_id, list_id" end
  if cid and not store:coll("campaigns"):get(cid) then return 404, "Campaign not found" end
  if lid and not store:coll("lead_lists"):get(lid) then return 404, "Lead list not found" end
end

-- What one bulk add checks each row against: the leads' addresses (see
-- address_index) and the block list (values and domains).
local function bulk_context(store, b)
  local blocked = {}
  for _, e in store:coll("block_list_entries"):each() do blocked[e.bl_value:lower()] = true end
  return { leads = store:coll("leads"), target = { campaign = b.campaign_id, list_id = b.list_id },
    blocked = blocked, seen = {} }
end

-- The outcome of one row: a counter to bump, or "create".
local function classify(b, src, bc)
  local email = src.email
  local blank = email == nil or email == null or email == ""
  local named = (type(src.first_name) == "string" and src.first_name ~= "")
    or (type(src.last_name) == "string" and src.last_name ~= "")
  -- a list keeps contacts without an address (to enrich later); a campaign cannot send to them
  if blank then return (b.list_id and named) and "create" or "incomplete_count" end
  if type(email) ~= "string" or not util.is_email(email) then return "invalid_email_count" end
  local lower = email:lower()
  if bc.seen[lower] then return "duplicate_email_count" end
  bc.seen[lower] = true
  if bc.blocked[lower] or bc.blocked[lower:match("@(.+)$")] then return "in_blocklist" end
  if b.skip_if_in_workspace or (b.skip_if_in_campaign and b.campaign_id or b.skip_if_in_list and b.list_id) then
    local have = leads_at(bc.leads, lower)
    if have and (b.skip_if_in_workspace or first_in(have, bc.target)) then return "skipped_count" end
  end
  return "create"
end

function M.bulkAddLeads(ctx)
  local b, store = ctx.body, ctx.store
  local status, msg = target_check(store, b.campaign_id, b.list_id)
  if status then return err(status, msg) end
  if #b.leads > 1000 then return err(400, "body/leads must NOT have more than 1000 items") end
  if #b.leads == 0 then return err(400, "body/leads must NOT have fewer than 1 items") end
  local bc = bulk_context(store, b)
  if b.blocklist_id then
    local bl = store:coll("block_list_entries"):get(b.blocklist_id)
    if not bl then return err(404, "Block list entry not found") end
    bc.blocked[bl.bl_value:lower()] = true
  end
  local r = { status = "success", total_sent = #b.leads, leads_uploaded = 0, in_blocklist = 0,
    blocklist_used = b.blocklist_id or null, duplicated_leads = 0, skipped_count = 0, invalid_email_count = 0,
    incomplete_count = 0, duplicate_email_count = 0, remaining_in_plan = 0, created_leads = array{} }
  for i, src in ipairs(b.leads) do
    if type(src) ~= "table" then return err(400, fmt("body/leads/%d must be object", i - 1)) end
    local outcome = classify(b, src, bc)
    if outcome == "create" then
      local l = new_lead(ctx, src, b.campaign_id, b.list_id, b.assigned_to)
      if b.verify_leads_on_import then l.verification_status = 11 end
      r.leads_uploaded = r.leads_uploaded + 1
      r.created_leads[#r.created_leads + 1] = { index = i - 1, id = l.id, email = l.email or null,
        first_name = l.first_name, last_name = l.last_name, phone = l.phone }
    else
      r[outcome] = r[outcome] + 1
      if outcome == "skipped_count" then r.duplicated_leads = r.duplicated_leads + 1 end
    end
  end
  r.remaining_in_plan = math.max(0, 25000 - store:coll("leads"):count())
  return 200, r
end

-- The ids of the leads a call selects, up to its limit.
local function pick(ctx, b)
  local pred, e = lead_pred(ctx, b)
  if not pred then return nil, e end
  local picked = {}
  for _, l in ctx.store:coll("leads"):each() do
    if pred(l) and (not b.limit or #picked < b.limit) then picked[#picked + 1] = l end
  end
  return picked
end

function M.bulkAssignLeads(ctx)
  local b = ctx.body
  local picked, e = pick(ctx, b)
  if not picked then return e end
  local to = b.assigned_to
  if to == nil then to = b.organization_user_ids[1] end
  for _, l in ipairs(picked) do l.assigned_to = to or null end
  return 202, { status = "accepted", message = fmt("Assigning %d leads in the background", #picked) }
end

-- Move (or copy) one lead into the destination; false when it was a duplicate.
local function move_one(st, l, b)
  local to_c, to_l = b.to_campaign_id, b.to_list_id
  local dup = (b.check_duplicates or b.check_duplicates_in_campaigns)
    and find_lead(st, l.email, to_c and { campaign = to_c } or { list_id = to_l })
  if dup and dup ~= l then return false end
  if b.copy_leads then
    local values = util.deep_copy(l)
    values.id, values.timestamp_created = nil, nil
    l = st:create("leads", values)
  end
  l.campaign, l.list_id = to_c or null, to_l or null
  if b.reset_interest_status then l.lt_interest_status = nil end
  return true
end

function M.moveLeads(ctx)
  local b, store = ctx.body or {}, ctx.store
  local to_c, to_l = b.to_campaign_id, b.to_list_id
  if (to_c == nil) == (to_l == nil) then return err(400, "body must have exactly one of to_campaign_id, to_list_id") end
  if to_c and not store:coll("campaigns"):get(to_c) then return err(404, "Destination campaign not found") end
  if to_l and not store:coll("lead_lists"):get(to_l) then return err(404, "Destination list not found") end
  local picked, e = pick(ctx, b)
  if not picked then return e end
  for i, l in ipairs(picked) do picked[i] = l.id end
  return 200, generic.job(ctx, "move-leads", to_c and "campaign" or "list", to_c or to_l,
    { total = #picked, copy = b.copy_leads == true }, function(_, st)
      local moved = 0
      for _, id in ipairs(picked) do
        local l = st:coll("leads"):get(id)
        if l and move_one(st, l, b) then moved = moved + 1 end
      end
      return { moved = moved, skipped = #picked - moved }
    end)
end

function M.exportLeads(ctx)
  local picked, e = pick(ctx, ctx.body or {})
  if not picked then return e end
  local n = #picked
  return 200, generic.job(ctx, "export-leads", "workspace", ctx.store.workspace_id, { total = n }, function(job)
    return { exported = n, file_url = "https://exports.mock.invalid/" .. job.id .. ".csv" }
  end)
end

-- The destination keeps its values, takes the source's where it has none,
-- and adds up the counters; the source goes.
function M.mergeLeads(ctx)
  local store, b = ctx.store, ctx.body
  local src, dst = store:coll("leads"):get(b.lead_id), store:coll("leads"):get(b.destination_lead_id)
  if not src then return err(404, "Lead " .. b.lead_id .. " not found") end
  if not dst then return err(404, "Lead " .. b.destination_lead_id .. " not found") end
  if src == dst then return err(400, "lead_id and destination_lead_id are the same lead") end
  local had = dst.email
  for k, v in pairs(src) do
    if (dst[k] == nil or dst[k] == null) and k ~= "id" then dst[k] = v end
  end
  if dst.email ~= had then store:coll("leads"):drop_index("email") end
  for _, k in ipairs{ "email_open_count", "email_reply_count", "email_click_count" } do
    dst[k] = (dst[k] or 0) + (src[k] or 0)
  end
  store:coll("leads"):remove(src.id)
  dst.timestamp_updated = store:now_iso()
  return 200, dst
end

return M
