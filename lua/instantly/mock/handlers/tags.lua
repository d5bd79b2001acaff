--- Custom tag assignment, the block list and lead labels: the parts with
-- rules beyond a row of data (toggling mappings over a selection, value
-- validation and dedupe, CSV download, label reassignment,
-- the reply classifier).
-- @module instantly.mock.handlers.tags

local common = require "instantly.mock.handlers.common"
local generic = require "instantly.mock.handlers.generic"
local json = require "instantly.mock.json"
local util = require "instantly.mock.util"

local array, null, err = json.array, json.null, common.err
local fmt = string.format

local M, checks = {}, {}
M.checks = checks

-- Resources a toggle applies to: the listed ones, or all but the excluded.
local function toggle_targets(store, b)
  if not b.selected_all then return b.resource_ids or {} end
  local excluded, out = generic.set_of(b.excluded_resource_ids or {}), {}
  local coll, key = "campaigns", "id"
  if b.resource_type == 1 then coll, key = "accounts", "email" end
  for _, o in store:coll(coll):each() do
    if not excluded[o[key]] then out[#out + 1] = o[key] end
  end
  return out
end

function M.toggleTagResource(ctx)
  local b, store = ctx.body, ctx.store
  local maps = store:coll("custom_tag_mappings")
  for _, tid in ipairs(b.tag_ids) do
    if not store:coll("custom_tags"):get(tid) then return err(404, "Custom tag " .. tid .. " not found") end
  end
  local existing = {}
  for _, m in maps:each() do existing[m.tag_id .. "\0" .. m.resource_id] = m end
  for _, tid in ipairs(b.tag_ids) do
    for _, rid in ipairs(toggle_targets(store, b)) do
      local m = existing[tid .. "\0" .. rid]
      if b.assign and not m then
        existing[tid .. "\0" .. rid] = store:create("custom_tag_mappings",
          { tag_id = tid, resource_id = rid, resource_type = b.resource_type })
      elseif not b.assign and m then
        maps:remove(m.id)
        existing[tid .. "\0" .. rid] = nil
      end
    end
  end
  return 200, { success = true }
end

-- Block list -------------------------------------------------------------------------

local function bl_valid(v)
  if type(v) ~= "string" or v == "" then return false end
  if v:find("@", 1, true) then return util.is_email(v) end
  return v:match("^[%w-]+%.[%w.-]*%w$") ~= nil
end

-- The entry for v (any case), created when missing; true when it existed.
local function bl_entry(store, v)
  for _, e in store:coll("block_list_entries"):each() do
    if e.bl_value:lower() == v:lower() then return e, true end
  end
  return store:create("block_list_entries", { bl_value = v, is_domain = not v:find("@", 1, true) })
end

local BAD_VALUE = "body/bl_value must be an email address or a domain"

-- Before a create or an update (of an entry that exists) writes bl_value.
function checks.bl_value(ctx)
  local v = (ctx.body or {}).bl_value
  local gone = ctx.op.method == "PATCH" and not ctx.store:coll("block_list_entries"):get(ctx.params.id)
  if v ~= nil and not gone and not bl_valid(v) then return 400, BAD_VALUE end
end

function M.createblukBlockListEntry(ctx)
  local items, invalid = array{}, 0
  for _, v in ipairs(ctx.body.bl_values) do
    if bl_valid(v) then items[#items + 1] = (bl_entry(ctx.store, v)) else invalid = invalid + 1 end
  end
  return 200, { items = items, valid_count = #items, invalid_count = invalid }
end

local BL_FILTERS = { { "domains_only", flag = "is_domain" }, { "search", search = { "bl_value" } } }

-- The only non-JSON answer of the API: CSV, CRLF line ends.
function M.downloadBlockListEntry(ctx)
  local pred = generic.filter(ctx, BL_FILTERS, ctx.query)
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

-- Lead labels -------------------------------------------------------------------------

-- Leads carrying the label's status get reassigned_status (or none).
function M.deleteLeadLabel(ctx)
  local store = ctx.store
  local l = store:coll("lead_labels"):remove(ctx.params.id)
  if not l then return err(404, "Lead label not found") end
  local to = ctx.body and ctx.body.reassigned_status
  for _, lead in store:coll("leads"):each() do
    if lead.lt_interest_status == l.interest_status then
      if to ~= nil and to ~= null then ctx.app:set_interest(store, lead, to) else lead.lt_interest_status = nil end
    end
  end
  return 200, l
end

local CLASSES = { { "Not Interested", "not interested", "unsubscribe" }, { "Out of Office", "out of office" },
  { "Meeting Booked", "meeting", "call" }, { "Interested", "interested", "pricing" } }

function M.testAiReplyLabelLeadLabels(ctx)
  local text = ctx.body.reply_text:lower()
  local considered = array{}
  for _, l in ctx.store:coll("lead_labels"):each() do
    if l.use_with_ai then considered[#considered + 1] = l.label end
  end
  for _, c in ipairs(CLASSES) do
    for i = 2, #c do
      if text:find(c[i], 1, true) then return 200, { result = c[1], custom_labels_considered = considered } end
    end
  end
  return 200, { result = "Neutral", custom_labels_considered = considered }
end

return M
