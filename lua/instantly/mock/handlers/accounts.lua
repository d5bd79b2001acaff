--- Sending-account operations that are more than a row of data: tag
-- filters and decoration, bulk pause, moves between workspaces, warmup
-- jobs, DNS checks, OAuth sessions and email verification, which all keep
-- state between calls.
-- @module instantly.mock.handlers.accounts

local common = require "instantly.mock.handlers.common"
local generic = require "instantly.mock.handlers.generic"
local json = require "instantly.mock.json"
local util = require "instantly.mock.util"

local array, null, err = json.array, json.null, common.err
local fmt = string.format

local M = {}

local LIST_FILTERS = { { "search", search = { "email", "first_name", "last_name" } }, { "status" },
  { "provider_code" }, { "tag_ids", tag = "email" }, { "tag_ids_all", tag = "email", all = true } }

local function tags_of(store, email)
  local t = array{}
  for _, m in store:coll("custom_tag_mappings"):each() do
    local tag = m.resource_id == email and store:coll("custom_tags"):get(m.tag_id)
    if tag then t[#t + 1] = tag end
  end
  return t
end

-- include_tags decorates copies of the page with each account's tags
-- (the only list that does, so it is not a row option).
function M.listAccount(ctx)
  local q, store = ctx.query, ctx.store
  local status, page = common.page(ctx, store:coll("accounts"), generic.filter(ctx, LIST_FILTERS, q) or nil)
  if status == 200 and q.include_tags then
    for i, a in ipairs(page.items) do
      page.items[i] = util.shallow_copy(a)
      page.items[i].tags = tags_of(store, a.email)
    end
  end
  return status, page
end

-- Accounts really change stores: the agency key may move them between
-- itself and its sub-workspaces (x-as-workspace picks neither end).
function M.moveAccounts(ctx)
  local b, app = ctx.body, ctx.app
  local function ws(id)
    return (app:store_for({ headers = { ["x-as-workspace"] = id } }, ctx.key_info))
  end
  local src, dst = ws(b.source_workspace_id), ws(b.destination_workspace_id)
  if not src or not dst then
    return err(403, "source and destination must be this workspace or one of its sub-workspaces")
  end
  if src == dst then return err(400, "source and destination workspaces are the same") end
  for _, email in ipairs(b.emails) do
    if not src:coll("accounts"):get(email) then return err(404, "Account " .. email .. " not found") end
  end
  for _, email in ipairs(b.emails) do
    dst:coll("accounts"):insert(src:coll("accounts"):remove(email))
  end
  return 200, { status = "success" }
end

local function warmup_targets(ctx)
  local b = ctx.body or {}
  local excluded, targets = generic.set_of(b.excluded_emails or {}), {}
  if b.include_all_emails then
    local pred = common.search_pred(b.search, { "email" })
    for _, a in ctx.store:coll("accounts"):each() do
      if not excluded[a.email] and (not pred or pred(a)) then targets[#targets + 1] = a.email end
    end
  elseif b.emails and #b.emails > 0 then
    for _, e in ipairs(b.emails) do
      if not excluded[e] then targets[#targets + 1] = e end
    end
  else
    return nil
  end
  return targets
end

-- A background job that flips warmup when it finishes.
local function warmup_job(value)
  return function(ctx)
    local targets = warmup_targets(ctx)
    if not targets then return err(400, "body must have required property 'emails' (or include_all_emails=true)") end
    return 200, generic.job(ctx, "update-warmup-accounts", "workspace", ctx.store.workspace_id,
      { emails = array(targets), warmup = value == 1 }, function(_, st)
        local done = 0
        for _, e in ipairs(targets) do
          local a = st:coll("accounts"):get(e)
          if a then
            a.warmup_status = value
            if value == 1 and a.timestamp_warmup_start == null then a.timestamp_warmup_start = st:now_iso() end
            done = done + 1
          end
        end
        return { updated = done }
      end)
  end
end
M.enableWarmupForAccounts = warmup_job(1)
M.disableWarmupForAccounts = warmup_job(0)

function M.getCtdStatus(ctx)
  local host = ctx.query.host
  local ok = host:match("^[%w.-]+%.[%a]+$") ~= nil
  return 200, { success = ok, ssl = ok, cname = ok, host = host }
end

-- An account in error fails DKIM and DMARC; an unknown address passes.
function M.testAccountVitals(ctx)
  local ok_list, bad = array{}, array{}
  local list = (ctx.body or {}).accounts or {}
  if #list == 0 then
    for _, a in ctx.store:coll("accounts"):each() do list[#list + 1] = a.email end
  end
  for _, email in ipairs(list) do
    local a = ctx.store:coll("accounts"):get(email)
    local pass = a == nil or a.status ~= -1
    local row = { domain = tostring(email):match("@(.+)$") or tostring(email), allPass = pass, mx = true,
      spf = true, dkim = pass, dmarc = pass }
    local into = pass and ok_list or bad
    into[#into + 1] = row
  end
  return 200, { status = "success", success_list = ok_list, failure_list = bad }
end

-- OAuth: a session is pending for oauth_polls polls, then succeeds (adding
-- an account) or fails as oauth_result says; it is read once, and expires.

local function oauth_init(provider)
  return function(ctx)
    local store, now = ctx.store, require("socket").gettime()
    local id, life = store:uuid(), ctx.settings.oauth_lifetime
    local s = {
      session_id = id, expires_at = util.iso(math.floor((now + life) * 1000)),
      auth_url = fmt("https://%s/oauth/authorize?session=%s&client_id=mock-instantly",
        provider == "google" and "accounts.google.example" or "login.microsoftonline.example", id),
    }
    store.oauth = store.oauth or {}
    store.oauth[id] = { provider = provider, expires = now + life, polls = 0 }
    return 200, s
  end
end
M.initGoogleOAuth = oauth_init("google")
M.initMicrosoftOAuth = oauth_init("microsoft")

local function oauth_connect(store, s)
  local email = fmt("connected%d@%s", store.seq, s.provider == "google" and "mockworkspace.test" or "mockoutlook.test")
  store:create("accounts", {
    email = email, first_name = "Connected", last_name = "Account",
    provider_code = s.provider == "google" and 2 or 3, status = 1, warmup_status = 0,
    warmup = { limit = 10, increment = "disabled", reply_rate = 30 }, daily_limit = 30,
  })
  return 200, { status = "success", email = email, name = "Connected Account" }
end

-- The error fields are optional, not nullable: absent until there is one.
function M.getOAuthSessionStatus(ctx)
  local store = ctx.store
  local s = store.oauth and store.oauth[ctx.params.sessionId]
  if not s or s.consumed then return err(404, "OAuth session not found") end
  if require("socket").gettime() >= s.expires then
    s.consumed = true
    return 200, { status = "expired", error = "expired",
      error_description = "The OAuth session expired before it was completed" }
  end
  s.polls = s.polls + 1
  if s.polls <= ctx.settings.oauth_polls then return 200, { status = "pending" } end
  s.consumed = true
  if ctx.settings.oauth_result == "error" then
    return 200, { status = "error", error = "access_denied", error_description = "The user denied access" }
  end
  return oauth_connect(store, s)
end

-- Email verification: pending for verification_polls polls; the verdict
-- comes from the address (invalid/bounce, catchall, risky).

local function verdict(email)
  local user, domain = email:lower():match("^(.*)@(.*)$")
  if domain:find("invalid", 1, true) or user:find("bounce", 1, true) then return "invalid", false end
  if domain:find("catchall", 1, true) then return "verified", true end
  -- the documented verdicts are verified and invalid only: a risky address is not verified
  if user:find("risky", 1, true) then return "invalid", false end
  return "verified", false
end

function M.createEmailVerification(ctx)
  local email, store = ctx.body.email, ctx.store
  local coll = store:coll("email_verification")
  coll:remove(email)
  local pending = ctx.settings.verification_polls > 0
  local status, catch_all = verdict(email)
  local v = store:create("email_verification", {
    email = email, verification_status = pending and "pending" or status, status = "success",
    catch_all = not pending and catch_all or nil, credits = 1000 - coll:count(), credits_used = 1,
  })
  -- pending until read verification_polls times (checkVerificationStatus)
  if pending then generic.later(store, v, "verification_polls", { verification_status = status,
    catch_all = catch_all }) end
  return 200, v
end

-- Warmup --------------------------------------------------------------------------

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
