--- The analytics view kind: counters over the seeded event log
-- (store.events), grouped per campaign, per date, per step or per sending
-- account and date, or one overview. A behaviour row says how to select
-- events, how to group them and which counter each field shows, so every
-- analytics endpoint adds up with the others.
--
-- Counter sources: "open" counts events, "open+" counts distinct leads,
-- "$opportunity" is the count times the workspace's opportunity value; a
-- number is a constant.
-- @module instantly.mock.handlers.views

local common = require "instantly.mock.handlers.common"
local json = require "instantly.mock.json"
local util = require "instantly.mock.util"

local array, err = json.array, common.err

local M = {}

local KINDS = { "sent", "contacted", "open", "reply", "auto_reply", "click", "bounce", "unsubscribe",
  "completed", "opportunity" }

--- Counters per event kind over a list of events; unique ones per lead.
function M.tally(events)
  local c, seen, u = {}, {}, {}
  for _, k in ipairs(KINDS) do c[k], seen[k], u[k] = 0, {}, 0 end
  for _, e in ipairs(events) do
    c[e.kind] = c[e.kind] + 1
    if not seen[e.kind][e.lead] then
      seen[e.kind][e.lead] = true
      u[e.kind] = u[e.kind] + 1
    end
  end
  return c, u
end

local function fill(ctx, row, spec, cnt, uniq)
  for field, src in pairs(spec) do
    if type(src) == "number" then
      row[field] = src
    elseif src:sub(1, 1) == "$" then
      row[field] = cnt[src:sub(2)] * (ctx.store.workspace.default_opportunity_value or 0)
    elseif src:sub(-1) == "+" then
      row[field] = uniq[src:sub(1, -2)]
    else
      row[field] = cnt[src]
    end
  end
end

-- The counters of one group of events, with the row's flagged extras.
local function counters(ctx, view, events)
  local cnt, uniq = M.tally(events)
  local row = {}
  fill(ctx, row, view.counters, cnt, uniq)
  for flag, spec in pairs(view.flags or {}) do
    if ctx.query[flag] then fill(ctx, row, spec, cnt, uniq) end
  end
  return row
end

-- Selection ------------------------------------------------------------------------

local function date_range(q)
  local from = q.start_date and util.parse_time(q.start_date)
  local to = q.end_date and util.parse_time(q.end_date)
  if q.start_date and not from then return nil, "querystring/start_date must be a date" end
  if q.end_date and not to then return nil, "querystring/end_date must be a date" end
  if to and #q.end_date == 10 then to = to + 86400000 - 1 end
  return function(e) return (not from or e.t >= from) and (not to or e.t <= to) end
end

-- The campaigns named by the view's campaign parameters (a list or a
-- comma-separated string each); nil for all; a 404 for an unknown one.
local function campaign_set(ctx, params)
  local ids
  for _, p in ipairs(params or {}) do
    local v = ctx.query[p]
    for _, x in ipairs(v == nil and {} or type(v) == "table" and v or { v }) do
      for id in tostring(x):gmatch("[^,]+") do
        if not ctx.store:coll("campaigns"):get(id) then return nil, "Campaign " .. id .. " not found" end
        ids = ids or {}
        ids[id] = true
      end
    end
  end
  return ids or false
end

-- The events a view counts: its campaigns, status and date range.
local function selected(ctx, view)
  local range, rmsg = date_range(ctx.query)
  if not range then return nil, { err(400, rmsg) } end
  local ids, cmsg = campaign_set(ctx, view.campaigns)
  if ids == nil then return nil, { err(404, cmsg) } end
  local status, campaigns, out = ctx.query.campaign_status, ctx.store:coll("campaigns"), {}
  for _, e in ipairs(ctx.store.events) do
    local c = status ~= nil and campaigns:get(e.campaign)
    if (not ids or ids[e.campaign]) and (status == nil or (c and c.status == status)) and range(e) then
      out[#out + 1] = e
    end
  end
  return out, ids
end

-- Grouping ------------------------------------------------------------------------
-- Each group kind: the key of an event (nil: not counted) and the fields
-- that name a group in its row.

local GROUPS = {
  date = { key = function(e) return e.date end, fields = function(g) return { date = g.key } end },
  step = {
    key = function(e) return e.step and string.format("%04d:%04d", e.step, e.variant) end,
    fields = function(g) return { step = tostring(g.first.step - 1), variant = tostring(g.first.variant) } end,
  },
  account_date = {
    key = function(e) return e.date .. "\0" .. e.eaccount end, -- by date, then account
    fields = function(g) return { date = g.first.date, email_account = g.first.eaccount } end,
  },
}

local function grouped(events, group)
  local by, keys = {}, {}
  for _, e in ipairs(events) do
    local k = group.key(e)
    if k then
      if not by[k] then by[k] = { key = k, first = e }; keys[#keys + 1] = k end
      local g = by[k]
      g[#g + 1] = e
    end
  end
  table.sort(keys)
  return by, keys
end

-- One row per campaign in the selection (all campaigns when none is named).
local function per_campaign(ctx, view, events, ids)
  local by = {}
  for _, e in ipairs(events) do
    by[e.campaign] = by[e.campaign] or {}
    local list = by[e.campaign]
    list[#list + 1] = e
  end
  local rows = array{}
  for _, c in ctx.store:coll("campaigns"):each() do
    if not ids or ids[c.id] then
      local row = counters(ctx, view, by[c.id] or {})
      row.campaign_name, row.campaign_id, row.campaign_status = c.name, c.id, c.status
      row.campaign_is_evergreen = c.is_evergreen == true
      if not ctx.query.exclude_total_leads_count then
        row.leads_count = ctx.store:coll("leads"):count(function(l) return l.campaign == c.id end)
      end
      rows[#rows + 1] = row
    end
  end
  return rows
end

-- The sending accounts an account view covers: those of the workspace,
-- narrowed by `emails` (a list or comma-separated).
local function account_set(ctx)
  local want = ctx.query.emails
  local named = {}
  for _, x in ipairs(want == nil and {} or type(want) == "table" and want or { want }) do
    for e in tostring(x):gmatch("[^,]+") do named[e] = true end
  end
  local out = {}
  for _, a in ctx.store:coll("accounts"):each() do
    if want == nil or named[a.email] then out[a.email] = true end
  end
  return out
end

--- Serve a view row: group = nil (one overview object), "campaign",
-- "date", "step" or "account_date" (accounts filtered by `emails`).
function M.view(ctx, view)
  local events, ids = selected(ctx, view)
  if not events then return table.unpack(ids) end
  if not view.group then return 200, counters(ctx, view, events) end
  if view.group == "campaign" then return 200, per_campaign(ctx, view, events, ids) end
  local group = GROUPS[view.group]
  local accounts = view.group == "account_date" and account_set(ctx)
  local by, keys = grouped(events, group)
  local rows = array{}
  for _, k in ipairs(keys) do
    local g = by[k]
    if not accounts or accounts[g.first.eaccount] then
      local row = counters(ctx, view, g)
      for f, v in pairs(group.fields(g)) do row[f] = v end
      rows[#rows + 1] = row
    end
  end
  return 200, rows
end

return M
