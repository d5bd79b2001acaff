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

function checks.hook_url(ctx)
  local u = (ctx.body or {}).target_hook_url
  if (u ~= nil or ctx.op.method == "POST") and not (type(u) == "string" and u:match("^https?://[%w.-]+[%w]")) then
    return 400, 'body/target_hook_url must match format "uri"'
  end
end

-- The standard types are the catalog's enum for a webhook's event_type.
function M.listWebhookEventTypes(ctx)
  local out, types = array{}, {}
  for _, f in ipairs(ctx.entity.fields) do
    if f.name == "event_type" then types = f.enum end
  end
  for _, t in ipairs(types) do
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

return M
