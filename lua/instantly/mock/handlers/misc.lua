--- Webhook event types, test deliveries and delivery summaries; DFY
-- account orders (availability from a hash of the domain, pricing);
-- inbox placement tests and the statistics computed from their rows.
-- Each computes an answer from several collections: code, not data.
-- @module instantly.mock.handlers.misc

local common = require "instantly.mock.handlers.common"
local generic = require "instantly.mock.handlers.generic"
local json = require "instantly.mock.json"
local util = require "instantly.mock.util"

local array, null, err = json.array, json.null, common.err
local fmt = string.format

local M, checks = {}, {}
M.checks = checks

-- Webhooks ----------------------------------------------------------------------------

local EVENT_TYPES = { "all_events", "email_sent", "email_opened", "email_link_clicked", "reply_received",
  "email_bounced", "lead_unsubscribed", "campaign_completed", "account_error", "lead_neutral",
  "lead_interested", "lead_not_interested", "lead_meeting_booked", "lead_meeting_completed", "lead_closed",
  "lead_out_of_office", "lead_wrong_person", "lead_no_show", "supersearch_enrichment_completed" }

function checks.hook_url(ctx)
  local u = (ctx.body or {}).target_hook_url
  if (u ~= nil or ctx.op.method == "POST") and not (type(u) == "string" and u:match("^https?://[%w.-]+[%w]")) then
    return 400, 'body/target_hook_url must match format "uri"'
  end
end

function M.listWebhookEventTypes(ctx)
  local out = array{}
  for _, t in ipairs(EVENT_TYPES) do
    out[#out + 1] = { id = t, label = t:gsub("_", " "):gsub("^%l", string.upper), type = "standard" }
  end
  for _, l in ctx.store:coll("lead_labels"):each() do
    out[#out + 1] = { id = "custom_label_" .. l.interest_status, label = l.label, type = "custom" }
  end
  return 200, { event_types = out }
end

-- Nothing leaves the machine: .invalid and "fail" hosts report a failure.
function M.testWebhook(ctx)
  local w = ctx.store:coll("webhooks"):get(ctx.params.id)
  if not w then return err(404, "Webhook not found") end
  -- a real POST of a sample event; only loopback targets are contacted
  return 200, require("instantly.mock.webhooks").test(ctx.app, ctx.store, w)
end

local EVENT_RANGE = { { "from", after = "*" }, { "to", before = "*" } }

local function events_in_range(ctx)
  local coll = ctx.store:coll("webhook_events")
  local pred, msg = generic.filter(ctx, EVENT_RANGE, ctx.query, coll)
  if pred == nil then return nil, "querystring/" .. msg end
  local out = {}
  for _, ev in coll:each() do
    if not pred or pred(ev) then out[#out + 1] = ev end
  end
  return out
end

local function summarise(events)
  local ok = 0
  for _, e in ipairs(events) do if e.success then ok = ok + 1 end end
  local total = #events
  local rate = total > 0 and math.floor(10000 * ok / total + 0.5) / 100 or 0
  return { total_events = total, successful_events = ok, failed_events = total - ok, success_rate = rate,
    failure_rate = total > 0 and math.floor((100 - rate) * 100 + 0.5) / 100 or 0 }
end

function M.getWebhookEventsSummary(ctx)
  local list, msg = events_in_range(ctx)
  if not list then return err(400, msg) end
  return 200, summarise(list)
end

function M.getWebhookEventsSummaryByDate(ctx)
  local list, msg = events_in_range(ctx)
  if not list then return err(400, msg) end
  local by, dates = {}, {}
  for _, ev in ipairs(list) do
    local d = ev.timestamp_created_date ~= null and ev.timestamp_created_date or ev.timestamp_created:sub(1, 10)
    if not by[d] then by[d] = {}; dates[#dates + 1] = d end
    by[d][#by[d] + 1] = ev
  end
  table.sort(dates)
  local items = array{}
  for _, d in ipairs(dates) do
    local s = summarise(by[d])
    s.date, s.failure_rate = d, nil
    items[#items + 1] = s
  end
  return 200, { items = items }
end

-- DFY email account orders ----------------------------------------------------------------

local function domain_ok(d)
  return type(d) == "string" and d:match("^[%w-]+%.[%a][%w.-]*$") ~= nil
end

local function available(d)
  local h = 0
  for i = 1, #d do h = (h * 33 + d:byte(i)) % 65521 end
  return h % 3 ~= 0
end

-- Domains and accounts an order asks for, and the domains it cannot have.
local function price_order(b)
  local o = { unavailable = array{}, invalid = array{}, accounts = 0, domains = 0 }
  for i, item in ipairs(b.items) do
    if type(item) ~= "table" then return nil, fmt("body/items/%d must be object", i - 1) end
    local d = item.domain
    if not domain_ok(d) then o.invalid[#o.invalid + 1] = tostring(d)
    elseif b.order_type ~= "pre_warmed_up" and not available(d) then o.unavailable[#o.unavailable + 1] = d
    else
      o.domains = o.domains + 1
      o.accounts = o.accounts + (type(item.accounts) == "table" and #item.accounts or 1)
    end
  end
  return o
end

local function place_order(store, b)
  for _, item in ipairs(b.items) do
    local warm = b.order_type == "pre_warmed_up"
    store:create("dfy_email_account_orders", { domain = item.domain, forwarding_domain = item.forwarding_domain or null,
      is_pre_warmed_up = warm, timestamp_cancelled = null })
    for j, acc in ipairs(type(item.accounts) == "table" and item.accounts or { {} }) do
      acc = type(acc) == "table" and acc or {}
      store:coll("dfy_accounts"):insert({ id = store:uuid(), domain = item.domain,
        email = (acc.email_address_prefix or ("user" .. j)) .. "@" .. item.domain, email_provider = 1,
        first_name = acc.first_name or "User", last_name = acc.last_name or tostring(j), is_pre_warmed_up = warm,
        timestamp_cancelled = null, timestamp_created = store:now_iso(), password = "mock-pw-" .. j })
    end
  end
end

function M.createDFYEmailAccountOrder(ctx)
  local b = ctx.body
  local o, msg = price_order(b)
  if not o then return err(400, msg) end
  local valid = #o.unavailable == 0 and #o.invalid == 0
  if valid and not b.simulation then place_order(ctx.store, b) end
  local domains, accounts = o.domains * 15, o.accounts * 4.5
  return 200, {
    order_placed = valid and not b.simulation, order_is_valid = valid,
    order_error = (#o.invalid > 0 and "invalid_domains") or (#o.unavailable > 0 and "unavailable_domains") or null,
    unavailable_domains = o.unavailable, blacklist_domains = array{}, invalid_domains = o.invalid,
    number_of_domains_ordered = o.domains, number_of_accounts_ordered = o.accounts,
    price_per_account = 4.5, price_per_domain = 15, total_domains_price = domains,
    total_accounts_price = accounts, total_price = domains + accounts, discount = 0,
    simulation = b.simulation == true, order_items = util.deep_copy(b.items),
  }
end

local function without_password(a)
  local r = util.shallow_copy(a)
  r.password = nil
  return r
end

function M.cancelDFYEmailAccounts(ctx)
  local want, items = generic.set_of(ctx.body.accounts), array{}
  for _, a in ctx.store:coll("dfy_accounts"):each() do
    if want[a.email] or want[a.id] then
      if a.timestamp_cancelled == null then a.timestamp_cancelled = ctx.store:now_iso() end
      items[#items + 1] = without_password(a)
    end
  end
  return 200, { items = items }
end

function M.checkDomainsAvailability(ctx)
  local out = array{}
  for i, d in ipairs(ctx.body.domains) do
    if not domain_ok(d) then return err(400, fmt("body/domains/%d must be a domain name", i - 1)) end
    out[#out + 1] = { domain = d, available = available(d) }
  end
  return 200, { results = out }
end

local function tld(t) return (tostring(t):gsub("^%.", "")) end

function M.preWarmedUpDomainsList(ctx)
  local b = ctx.body or {}
  local exts = b.extensions and #b.extensions > 0 and b.extensions or { "com", "co", "io" }
  local out, typed = array{}, array{}
  for _, base in ipairs{ "getoutbound", "tryreach", "meetpipeline", "hellogrowth", "usecadence" } do
    for _, ext in ipairs(exts) do
      local d = base .. "." .. tld(ext)
      if not b.search or d:find(b.search, 1, true) then
        out[#out + 1] = d
        typed[#typed + 1] = { domain = d, account_type = #d % 3 + 1 }
      end
    end
  end
  return 200, { domains = out, domains_with_type = typed }
end

function M.generateSimilarDomains(ctx)
  local d = ctx.body.domain
  local name = d:match("^([^.]+)")
  if not name or not domain_ok(d) then return err(400, "body/domain must be a domain name") end
  local tlds = ctx.body.tlds and #ctx.body.tlds > 0 and ctx.body.tlds or { "com", "co", "io" }
  local out = array{}
  for _, p in ipairs{ "get", "try", "use", "hello" } do
    for _, t in ipairs(tlds) do out[#out + 1] = p .. name .. "." .. tld(t) end
  end
  return 200, { domains = out }
end

-- Inbox placement --------------------------------------------------------------------------

function M.createInboxPlacementTest(ctx)
  local b, store = ctx.body, ctx.store
  if #b.emails == 0 then return err(400, "body/emails must NOT have fewer than 1 items") end
  for i, e in ipairs(b.emails) do
    if not store:coll("accounts"):get(e) then
      return err(400, fmt("body/emails/%d is not an account of this workspace", i - 1))
    end
  end
  if b.campaign_id and not store:coll("campaigns"):get(b.campaign_id) then return err(404, "Campaign not found") end
  local values = { status = b.status or 1, metadata = {}, recipients = array{} }
  for _, f in ipairs(ctx.op.body.fields) do
    if b[f.name] ~= nil and f.name ~= "run_immediately" and values[f.name] == nil then values[f.name] = b[f.name] end
  end
  return 200, store:create("inbox_placement_tests", values)
end

local IPA_FILTERS = { { "date_from", after = "*" }, { "date_to", before = "*" }, { "recipient_geo" },
  { "recipient_type" }, { "recipient_esp" }, { "sender_email" } }

-- Analytics rows of one test that the body's filters keep.
local function ipa_rows(ctx, test_id)
  local coll = ctx.store:coll("inbox_placement_analytics")
  local pred = generic.filter(ctx, IPA_FILTERS, ctx.body, coll) or nil
  local rows = {}
  for _, r in coll:each() do
    if r.test_id == test_id and (not pred or pred(r)) then rows[#rows + 1] = r end
  end
  return rows
end

local function pct(n, d) return d > 0 and math.floor(10000 * n / d + 0.5) / 100 or 0 end

-- spam, category and inbox counts of some rows
local function placement(rows)
  local spam, cat = 0, 0
  for _, r in ipairs(rows) do
    if r.is_spam then spam = spam + 1 elseif r.has_category then cat = cat + 1 end
  end
  return spam, cat, #rows - spam - cat
end

local function need_test(ctx, id)
  if not ctx.store:coll("inbox_placement_tests"):get(id) then
    return { err(404, "Inbox placement test not found") }
  end
end

function M.getInboxPlacementAnalyticsStatsByTestId(ctx)
  local out = array{}
  for _, id in ipairs(ctx.body.test_ids) do
    local rows = ipa_rows(ctx, id)
    local spam, cat, inbox = placement(rows)
    out[#out + 1] = { test_id = id, count = #rows, spam_count = spam, spam_percent = pct(spam, #rows),
      inbox_count = inbox, inbox_percent = pct(inbox, #rows), category_count = cat,
      category_percent = pct(cat, #rows) }
  end
  return 200, out
end

-- Rows grouped by key(row), groups in key order.
local function grouped(rows, key)
  local by, keys = {}, {}
  for _, r in ipairs(rows) do
    local k = key(r)
    if not by[k] then by[k] = {}; keys[#keys + 1] = k end
    by[k][#by[k] + 1] = r
  end
  table.sort(keys)
  return by, keys
end

function M.getInboxPlacementAnalyticsStatsByDate(ctx)
  local e = need_test(ctx, ctx.body.test_id)
  if e then return table.unpack(e) end
  local by, dates = grouped(ipa_rows(ctx, ctx.body.test_id), function(r) return r.timestamp_created_date end)
  local out = array{}
  for _, d in ipairs(dates) do
    local spam, cat, inbox = placement(by[d])
    out[#out + 1] = { timestamp_created_date = d, sent_count = #by[d], received_count = #by[d],
      spam_count = spam, inbox_count = inbox, category_count = cat }
  end
  return 200, out
end

function M.getInboxPlacementAnalyticsDeliverabilityInsights(ctx)
  local b = ctx.body
  local e = need_test(ctx, b.test_id)
  if e then return table.unpack(e) end
  local by, keys = grouped(ipa_rows(ctx, b.test_id), function(r) return r.sender_esp .. ":" .. r.recipient_esp end)
  local out = array{}
  for _, k in ipairs(keys) do
    local rows = by[k]
    local spam, cat, inbox = placement(rows)
    local row = { test_id = b.test_id, from = b.date_from or null, to = b.date_to or null,
      sender_esp = rows[1].sender_esp, recipient_esp = rows[1].recipient_esp, spam_percentage = pct(spam, #rows),
      category_percentage = pct(cat, #rows), inbox_percentage = pct(inbox, #rows) }
    if b.show_previous then
      row.previous_from, row.previous_to = b.previous_date_from or null, b.previous_date_to or null
      row.prev_spam_percentage, row.prev_inbox_percentage, row.prev_category_percentage = 0, 0, 0
    end
    out[#out + 1] = row
  end
  return 200, out
end

return M
