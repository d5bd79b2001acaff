--- Analytics that read like the questions people ask: a row per campaign
-- with its rates, a row per step and variant joined to the sequence, and
-- the campaigns over a bounce limit.
--
-- Every rate is a fraction (0.25 is 25 %), nil when its denominator is 0,
-- and `M.RATES` says which counters of GET /campaigns/analytics make it:
-- opens, clicks and replies count each lead once (`*_unique`) over the
-- leads contacted; bounces count over the emails sent.
-- @module instantly.stats

local enums = require "instantly.enums"
local gather = require "instantly.workflows.gather"

local type, ipairs, pairs, tostring, tonumber, error = type, ipairs, pairs, tostring, tonumber, error
local math_type, char, byte = math.type, string.char, string.byte
local fmt, sort = string.format, table.sort

local M = {}

--- rate name -> { numerator counter, denominator counter } (names of the
-- GET /campaigns/analytics row).
M.RATES = {
  open_rate = { "open_count_unique", "contacted_count" },
  click_rate = { "link_click_count_unique", "contacted_count" },
  reply_rate = { "reply_count_unique", "contacted_count" },
  opportunity_rate = { "total_opportunities", "contacted_count" },
  unsubscribe_rate = { "unsubscribed_count", "contacted_count" },
  bounce_rate = { "bounced_count", "emails_sent_count" },
}

--- Short names of a campaign row -> the analytics counters they copy.
M.COUNTERS = {
  leads = "leads_count", contacted = "contacted_count", sent = "emails_sent_count",
  opened = "open_count_unique", clicked = "link_click_count_unique", replied = "reply_count_unique",
  auto_replies = "reply_count_automatic", bounced = "bounced_count", unsubscribed = "unsubscribed_count",
  completed = "completed_count", opportunities = "total_opportunities", opportunity_value = "total_opportunity_value",
}

local function num(v)
  return type(v) == "number" and v or tonumber(v) or 0
end

--- `part / whole`, or nil when whole is 0.
function M.rate(part, whole)
  whole = num(whole)
  if whole == 0 then return nil end
  return num(part) / whole
end

--- A rate as text ("12.5%", "-" when there is none).
function M.percent(r)
  if r == nil then return "-" end
  return fmt("%.1f%%", 100 * r)
end

local function campaign_row(r)
  local row = { campaign_id = r.campaign_id, name = r.campaign_name, status = r.campaign_status,
                status_label = enums.label("campaign.status", r.campaign_status), raw = r }
  for short, counter in pairs(M.COUNTERS) do row[short] = num(r[counter]) end
  for name, f in pairs(M.RATES) do row[name] = M.rate(r[f[1]], r[f[2]]) end
  return row
end

--- One row per campaign: `campaign_id`, `name`, `status`, `status_label`,
-- the counters of `M.COUNTERS` under their short names, the rates of
-- `M.RATES`, and `raw` (the API's row). Sorted by emails sent, most first.
-- @tparam table client
-- @tparam[opt] table params for `analytics:campaign` (`id`, `ids`,
--   `start_date`, `end_date`, ...)
-- @tparam[opt] table call_opts
-- @return rows, or nil, err
function M.by_campaign(client, params, call_opts)
  local rows, err = client.analytics:campaign(params, call_opts)
  if not rows then return nil, err end
  local out = {}
  for i, r in ipairs(rows) do out[i] = campaign_row(r) end
  sort(out, function(a, b)
    if a.sent ~= b.sent then return a.sent > b.sent end
    return tostring(a.name) < tostring(b.name)
  end)
  return out
end

-- "A" for variant 0, "B" for 1, ...
local function letter(n)
  if math_type(n) ~= "integer" or n < 0 or n > 25 then return tostring(n) end
  return char(byte("A") + n)
end

local function step_row(r, cid, steps)
  local step0, var0 = tonumber(r.step), tonumber(r.variant)
  local step = step0 and math.tointeger(step0 + 1)
  local variant = var0 and math.tointeger(var0)
  local s = step and type(steps[step]) == "table" and steps[step] or nil
  local v = s and type(s.variants) == "table" and variant and s.variants[variant + 1] or nil
  local sent = num(r.sent)
  return {
    campaign_id = cid, step = step, variant = variant and letter(variant),
    subject = type(v) == "table" and v.subject or nil, disabled = type(v) == "table" and v.v_disabled == true or nil,
    sent = sent, opened = num(r.unique_opened), replied = num(r.unique_replies), clicked = num(r.unique_clicks),
    opportunities = r.opportunities ~= nil and num(r.opportunities) or nil,
    open_rate = M.rate(r.unique_opened, sent), reply_rate = M.rate(r.unique_replies, sent),
    click_rate = M.rate(r.unique_clicks, sent), raw = r,
  }
end

--- One row per step and variant of a campaign, joined to its sequence:
-- `campaign_id`, `step` (1-based), `variant` ("A", "B", ...), `subject`,
-- `disabled`, `sent`, `opened`, `replied`, `clicked` (unique counts),
-- `open_rate`, `reply_rate`, `click_rate` (over `sent`), `opportunities`
-- (with `include_opportunities_count`) and `raw`. The campaign and the
-- step analytics are read concurrently.
-- @tparam table client
-- @param campaign a campaign id or record
-- @tparam[opt] table params `start_date`, `end_date`, `include_opportunities_count`
-- @tparam[opt] table call_opts
-- @return rows, or nil, err
function M.by_step(client, campaign, params, call_opts)
  local cid = type(campaign) == "table" and campaign.id or campaign
  if type(cid) ~= "string" or cid == "" then
    error("instantly: analytics:by_step: expected a campaign id or record, got " .. type(campaign), 2)
  end
  local q = { campaign_id = cid }
  for k, v in pairs(params or {}) do q[k] = v end
  local values, errs = gather.gather(client, {
    function() return client.campaigns:get(cid, nil, call_opts) end,
    function() return client.analytics:campaign_steps(q, call_opts) end,
  })
  for i = 1, 2 do if values[i] == nil then return nil, errs[i] end end
  local seqs = values[1].sequences
  local steps = type(seqs) == "table" and type(seqs[1]) == "table" and seqs[1].steps or {}
  local out = {}
  for i, r in ipairs(values[2]) do out[i] = step_row(r, cid, steps) end
  return out
end

--- The campaigns whose bounce rate is over a limit, from `by_campaign`
-- rows (only campaigns with at least `min_sent` emails sent count).
-- @tparam table rows from `by_campaign`
-- @tparam[opt] table opts `max_bounce_rate` (default 0.05), `min_sent` (default 100)
-- @treturn table the rows over the limit, worst first
function M.over_bounce_limit(rows, opts)
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "max_bounce_rate" and k ~= "min_sent" then
      error("instantly: over_bounce_limit: unknown option '" .. tostring(k) .. "'", 2)
    end
  end
  local limit, min_sent = opts.max_bounce_rate or 0.05, opts.min_sent or 100
  local out = {}
  for _, r in ipairs(rows) do
    if r.sent >= min_sent and (r.bounce_rate or 0) > limit then out[#out + 1] = r end
  end
  sort(out, function(a, b) return a.bounce_rate > b.bounce_rate end)
  return out
end

return M
