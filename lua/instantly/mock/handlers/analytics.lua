--- Analytics, computed from the seeded event log (store.events), so every
-- number adds up across endpoints: per campaign, overview, daily, per step,
-- per sending account, and warmup. Tallies are code, not data: they are
-- what makes the numbers consistent.
-- @module instantly.mock.handlers.analytics

local common = require "instantly.mock.handlers.common"
local generic = require "instantly.mock.handlers.generic"
local json = require "instantly.mock.json"
local util = require "instantly.mock.util"

local array, null, err = json.array, json.null, common.err
local fmt = string.format

local M = {}

local KINDS = { "sent", "contacted", "open", "reply", "auto_reply", "click", "bounce", "unsubscribe",
  "completed", "opportunity" }

-- Counters per event kind over the events pred keeps; unique ones per lead.
local function tally(events, pred)
  local c, seen, u = {}, {}, {}
  for _, k in ipairs(KINDS) do c[k], seen[k], u[k] = 0, {}, 0 end
  for _, e in ipairs(events) do
    if not pred or pred(e) then
      c[e.kind] = c[e.kind] + 1
      if not seen[e.kind][e.lead] then
        seen[e.kind][e.lead] = true
        u[e.kind] = u[e.kind] + 1
      end
    end
  end
  return c, u
end

-- start_date / end_date (a bare end date includes its whole day).
local function in_range(ctx)
  local q = ctx.query
  local from = q.start_date and util.parse_time(q.start_date)
  local to = q.end_date and util.parse_time(q.end_date)
  if q.start_date and not from then return nil, "querystring/start_date must be a date" end
  if q.end_date and not to then return nil, "querystring/end_date must be a date" end
  if to and #q.end_date == 10 then to = to + 86400000 - 1 end
  return function(e) return (not from or e.t >= from) and (not to or e.t <= to) end
end

-- The campaigns asked for by id and ids (a list or comma-separated), nil
-- for all; nil, missing id when one does not exist.
local function campaign_ids(ctx)
  local q, ids = ctx.query, nil
  for _, v in ipairs{ q.id or false, q.ids or false } do
    if v then
      ids = ids or {}
      for id in pairs(generic.set_of(v)) do ids[id] = true end
    end
  end
  for id in pairs(ids or {}) do
    if not ctx.store:coll("campaigns"):get(id) then return nil, id end
  end
  return ids
end

-- Events of the requested campaigns (and status), in the date range.
local function event_pred(ctx, ids, status)
  local range, rerr = in_range(ctx)
  if not range then return nil, rerr end
  local campaigns = ctx.store:coll("campaigns")
  return function(e)
    if ids and not ids[e.campaign] then return false end
    if status ~= nil then
      local c = campaigns:get(e.campaign)
      if not c or c.status ~= status then return false end
    end
    return range(e)
  end
end

-- The counters per-campaign rows and the overview share.
local function counters(ctx, cnt, uniq)
  return {
    open_count = cnt.open, open_count_unique = uniq.open, open_count_unique_by_step = cnt.open,
    link_click_count = cnt.click, link_click_count_unique = uniq.click, link_click_count_unique_by_step = cnt.click,
    reply_count = cnt.reply, reply_count_unique = uniq.reply, reply_count_unique_by_step = cnt.reply,
    reply_count_automatic = cnt.auto_reply, reply_count_automatic_unique = uniq.auto_reply,
    reply_count_automatic_unique_by_step = cnt.auto_reply,
    bounced_count = cnt.bounce, unsubscribed_count = cnt.unsubscribe, completed_count = cnt.completed,
    emails_sent_count = cnt.sent, contacted_count = uniq.contacted, new_leads_contacted_count = uniq.contacted,
    total_opportunities = cnt.opportunity,
    total_opportunity_value = cnt.opportunity * (ctx.store.workspace.default_opportunity_value or 0),
  }
end

local function selection(ctx)
  local ids, missing = campaign_ids(ctx)
  if not ids and missing then return nil, { err(404, "Campaign " .. missing .. " not found") } end
  local pred, rerr = event_pred(ctx, ids, ctx.query.campaign_status)
  if not pred then return nil, { err(400, rerr) } end
  return ids or false, pred
end

function M.getCampaignAnalytics(ctx)
  local ids, pred = selection(ctx)
  if ids == nil then return table.unpack(pred) end
  local store, rows = ctx.store, array{}
  for _, c in store:coll("campaigns"):each() do
    if not ids or ids[c.id] then
      local row = counters(ctx, tally(store.events, function(e) return e.campaign == c.id and pred(e) end))
      row.campaign_name, row.campaign_id, row.campaign_status = c.name, c.id, c.status
      row.campaign_is_evergreen = c.is_evergreen == true
      if not ctx.query.exclude_total_leads_count then
        row.leads_count = store:coll("leads"):count(function(l) return l.campaign == c.id end)
      end
      rows[#rows + 1] = row
    end
  end
  return 200, rows
end

function M.getCampaignAnalyticsOverview(ctx)
  local ids, pred = selection(ctx)
  if ids == nil then return table.unpack(pred) end
  local cnt, uniq = tally(ctx.store.events, pred)
  local out = counters(ctx, cnt, uniq)
  out.total_interested, out.total_meeting_booked = cnt.opportunity, 0
  out.total_meeting_completed, out.total_closed = 0, 0
  if ctx.query.expand_crm_events then out.total_interested_crm, out.total_meeting_booked_crm = 0, 0 end
  return 200, out
end

-- Rows per date of the events pred keeps; extra(row, cnt) adds fields.
local function daily_rows(store, pred, extra)
  local by, dates = {}, {}
  for _, e in ipairs(store.events) do
    if pred(e) then
      if not by[e.date] then by[e.date] = {}; dates[#dates + 1] = e.date end
      local d = by[e.date]
      d[#d + 1] = e
    end
  end
  table.sort(dates)
  local rows = array{}
  for _, date in ipairs(dates) do
    local cnt, uniq = tally(by[date])
    local row = { date = date, sent = cnt.sent, contacted = uniq.contacted, new_leads_contacted = uniq.contacted,
      opened = cnt.open, unique_opened = uniq.open, replies = cnt.reply, unique_replies = uniq.reply,
      replies_automatic = cnt.auto_reply, unique_replies_automatic = uniq.auto_reply,
      clicks = cnt.click, unique_clicks = uniq.click, opportunities = cnt.opportunity,
      unique_opportunities = uniq.opportunity }
    if extra then extra(row, cnt) end
    rows[#rows + 1] = row
  end
  return rows
end

local function one_campaign(ctx)
  local cid = ctx.query.campaign_id
  if cid and not ctx.store:coll("campaigns"):get(cid) then return nil, { err(404, "Campaign not found") } end
  local pred, rerr = event_pred(ctx, cid and { [cid] = true }, ctx.query.campaign_status)
  if not pred then return nil, { err(400, rerr) } end
  return pred
end

function M.getDailyCampaignAnalytics(ctx)
  local pred, e = one_campaign(ctx)
  if not pred then return table.unpack(e) end
  return 200, daily_rows(ctx.store, pred)
end

function M.getCampaignStepsAnalytics(ctx)
  local pred, e = one_campaign(ctx)
  if not pred then return table.unpack(e) end
  local groups, keys = {}, {}
  for _, ev in ipairs(ctx.store.events) do
    if ev.step and pred(ev) then
      local k = fmt("%04d:%04d", ev.step, ev.variant)
      if not groups[k] then groups[k] = { step = ev.step, variant = ev.variant }; keys[#keys + 1] = k end
      local g = groups[k]
      g[#g + 1] = ev
    end
  end
  table.sort(keys)
  local rows = array{}
  for _, k in ipairs(keys) do
    local g = groups[k]
    local cnt, uniq = tally(g)
    local row = { step = tostring(g.step - 1), variant = tostring(g.variant), sent = cnt.sent,
      opened = cnt.open, unique_opened = uniq.open, replies = cnt.reply, unique_replies = uniq.reply,
      replies_automatic = cnt.auto_reply, unique_replies_automatic = uniq.auto_reply,
      clicks = cnt.click, unique_clicks = uniq.click }
    if ctx.query.include_opportunities_count then
      row.opportunities, row.unique_opportunities = cnt.opportunity, uniq.opportunity
    end
    rows[#rows + 1] = row
  end
  return 200, rows
end

function M.getDailyAccountAnalytics(ctx)
  local range, rerr = in_range(ctx)
  if not range then return err(400, rerr) end
  local emails = ctx.query.emails and generic.set_of(ctx.query.emails)
  local rows = array{}
  for _, a in ctx.store:coll("accounts"):each() do
    if not emails or emails[a.email] then
      local function extra(row, cnt) row.email_account, row.bounced = a.email, cnt.bounce end
      for _, r in ipairs(daily_rows(ctx.store, function(e) return e.eaccount == a.email and range(e) end, extra)) do
        rows[#rows + 1] = r
      end
    end
  end
  table.sort(rows, function(x, y)
    if x.date ~= y.date then return x.date < y.date end
    return x.email_account < y.email_account
  end)
  return 200, rows
end

-- Seven days of warmup per account, from a PRNG seeded by the address.
local function warmup_days(store, a)
  local rng = util.rng(#a.email * 7919 + store.seed)
  local days, tot = {}, { sent = 0, received = 0, landed_inbox = 0, landed_spam = 0 }
  local base = store.events_from or require("instantly.mock.state").BASE_MS
  local on = a.warmup_status == 1
  local score = a.stat_warmup_score ~= null and a.stat_warmup_score or 80
  for d = 0, 6 do
    local sent = on and rng(10, 40) or 0
    local spam = math.min(sent, (on and score < 80) and rng(0, 4) or rng(0, 1))
    local row = { sent = sent, landed_inbox = sent - spam, landed_spam = spam, received = sent }
    days[util.date(base + d * 86400000)] = row
    for k, v in pairs(row) do tot[k] = tot[k] + v end
  end
  local health = tot.sent > 0 and math.floor(100 * tot.landed_inbox / tot.sent) or 0
  tot.health_score = health
  tot.health_score_label = health >= 90 and "excellent" or health >= 75 and "good" or "poor"
  return days, tot
end

function M.getWarmupAnalytics(ctx)
  local per_date, agg = {}, {}
  for _, email in ipairs(ctx.body.emails) do
    local a = ctx.store:coll("accounts"):get(email)
    if a then per_date[email], agg[email] = warmup_days(ctx.store, a) end
  end
  return 200, { email_date_data = per_date, aggregate_data = agg }
end

return M
