--- Bespoke handlers: sending accounts, warmup, OAuth sessions, email
-- verification and the analytics computed from the event log.
-- @module instantly.mock.handlers.accounts

local json = require "instantly.mock.json"
local util = require "instantly.mock.util"

local array, null = json.array, json.null
local fmt = string.format

return function(H, common)
  local err = common.err

  local function account(ctx)
    local a = ctx.store:coll("accounts"):get(ctx.params.email)
    if not a then return nil, { err(404, "Account not found") } end
    return a
  end

  -- Accounts ------------------------------------------------------------------

  H.listAccount = function(ctx)
    local q, store = ctx.query, ctx.store
    local preds = {
      common.search_pred(q.search, { "email", "first_name", "last_name" }),
      common.eq_pred("status", q.status),
      common.eq_pred("provider_code", q.provider_code),
    }
    local function tagged(ids, all)
      local maps = store:coll("custom_tag_mappings")
      return function(a)
        local hit = 0
        for _, want in ipairs(ids) do
          for _, m in maps:each() do
            if m.resource_id == a.email and m.tag_id == want then hit = hit + 1 break end
          end
        end
        if all then return hit == #ids end
        return hit > 0
      end
    end
    if q.tag_ids then
      local ids = type(q.tag_ids) == "table" and q.tag_ids or { q.tag_ids }
      preds[#preds + 1] = tagged(ids, false)
    end
    if q.tag_ids_all then
      local ids = type(q.tag_ids_all) == "table" and q.tag_ids_all or { q.tag_ids_all }
      preds[#preds + 1] = tagged(ids, true)
    end
    local status, page = common.page(ctx, store:coll("accounts"), common.all(preds))
    if status == 200 and q.include_tags then
      local items = array{}
      for i, a in ipairs(page.items) do
        local copy = util.shallow_copy(a)
        local t = array{}
        for _, m in store:coll("custom_tag_mappings"):each() do
          if m.resource_id == a.email then
            local tag = store:coll("custom_tags"):get(m.tag_id)
            if tag then t[#t + 1] = tag end
          end
        end
        copy.tags = t
        items[i] = copy
      end
      page.items = items
    end
    return status, page
  end

  H.createAccount = function(ctx)
    local b, store = ctx.body, ctx.store
    if not util.is_email(b.email) then return err(400, 'body/email must match format "email"') end
    if store:coll("accounts"):get(b.email) then return err(400, "Account " .. b.email .. " already exists") end
    local values = {
      email = b.email, first_name = b.first_name, last_name = b.last_name, provider_code = b.provider_code,
      status = 1, warmup_status = 0, stat_warmup_score = null, setup_pending = false,
      warmup = b.warmup or { limit = 10, increment = "disabled", reply_rate = 30 },
      daily_limit = b.daily_limit or 30, daily_limit_max = 100, warmup_limit_max = 50,
      sending_gap = b.sending_gap or 10, enable_slow_ramp = b.enable_slow_ramp or false,
      tracking_domain_name = b.tracking_domain_name or null, tracking_domain_status = b.tracking_domain_status or null,
      signature = b.signature or null, reply_to = b.reply_to or null,
      inbox_placement_test_limit = b.inbox_placement_test_limit or 10,
      status_message = null, tags = array{},
    }
    local a = store:create("accounts", values)
    store.hidden.account_secrets[a.email] = {
      imap = { b.imap_username, b.imap_host, b.imap_port }, smtp = { b.smtp_username, b.smtp_host, b.smtp_port },
    }
    return 200, a
  end

  H.patchAccount = function(ctx)
    local a, e = account(ctx)
    if not a then return table.unpack(e) end
    local b = ctx.body or {}
    for _, k in ipairs{ "first_name", "last_name", "warmup", "daily_limit", "tracking_domain_name",
                        "tracking_domain_status", "enable_slow_ramp", "inbox_placement_test_limit",
                        "sending_gap", "signature", "reply_to" } do
      if b[k] ~= nil then a[k] = b[k] end
    end
    if b.remove_tracking_domain then
      a.tracking_domain_name, a.tracking_domain_status = null, null
    end
    a.timestamp_updated = ctx.store:now_iso()
    return 200, a
  end

  local function set_status(v)
    return function(ctx)
      local a, e = account(ctx)
      if not a then return table.unpack(e) end
      a.status = v
      if v == 1 then a.status_message = null end
      a.timestamp_updated = ctx.store:now_iso()
      return 200, a
    end
  end
  H.pauseAccount = set_status(2)
  H.resumeAccount = set_status(1)
  H.markAccountFixed = set_status(1)

  H.pauseAccountsBulk = function(ctx)
    local paused, failed = array{}, array{}
    for _, email in ipairs(ctx.body.emails) do
      local a = ctx.store:coll("accounts"):get(email)
      if a then
        a.status = 2
        paused[#paused + 1] = email
      else
        failed[#failed + 1] = email
      end
    end
    return 200, { paused_emails = paused, failed_emails = failed }
  end

  -- Accounts really change stores: the agency key may move them between
  -- itself and its sub-workspaces (x-as-workspace picks neither end).
  H.moveAccounts = function(ctx)
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

  local function warmup_job(value)
    return function(ctx)
      local b, store = ctx.body or {}, ctx.store
      local targets = {}
      local excluded = {}
      for _, e in ipairs(b.excluded_emails or {}) do excluded[e] = true end
      if b.include_all_emails then
        local pred = common.search_pred(b.search, { "email" })
        for _, a in store:coll("accounts"):each() do
          if not excluded[a.email] and (not pred or pred(a)) then targets[#targets + 1] = a.email end
        end
      else
        if not b.emails or #b.emails == 0 then
          return err(400, "body must have required property 'emails' (or include_all_emails=true)")
        end
        for _, e in ipairs(b.emails) do
          if not excluded[e] then targets[#targets + 1] = e end
        end
      end
      local job = common.job(ctx, "update-warmup-accounts", "workspace", store.workspace_id,
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
      return 200, job
    end
  end
  H.enableWarmupForAccounts = warmup_job(1)
  H.disableWarmupForAccounts = warmup_job(0)

  H.getCtdStatus = function(ctx)
    local host = ctx.query.host
    local ok = host:match("^[%w.-]+%.[%a]+$") ~= nil
    return 200, { success = ok, ssl = ok, cname = ok, host = host }
  end

  H.testAccountVitals = function(ctx)
    local ok_list, bad = array{}, array{}
    local list = (ctx.body or {}).accounts or {}
    if #list == 0 then
      for _, a in ctx.store:coll("accounts"):each() do list[#list + 1] = a.email end
    end
    for _, email in ipairs(list) do
      local domain = tostring(email):match("@(.+)$") or tostring(email)
      local a = ctx.store:coll("accounts"):get(email)
      local pass = a == nil or a.status ~= -1
      local row = { domain = domain, allPass = pass, mx = true, spf = true, dkim = pass, dmarc = pass }
      if pass then ok_list[#ok_list + 1] = row else bad[#bad + 1] = row end
    end
    return 200, { status = "success", success_list = ok_list, failure_list = bad }
  end

  -- Account / campaign mappings --------------------------------------------------

  H.getAccountCampaignMapping = function(ctx)
    local email, store = ctx.params.email, ctx.store
    if not store:coll("accounts"):get(email) then return err(404, "Account not found") end
    local rows = {}
    for _, c in store:coll("campaigns"):each() do
      for _, e in ipairs(c.email_list or {}) do
        if e == email then
          rows[#rows + 1] = { campaign_id = c.id, campaign_name = c.name,
            timestamp_created = c.timestamp_created, status = c.status }
          break
        end
      end
    end
    return common.page_array(ctx, rows, function(r) return r.campaign_id end)
  end

  -- OAuth ---------------------------------------------------------------------------

  local function oauth_init(provider)
    return function(ctx)
      local store = ctx.store
      local id = store:uuid()
      local now = require("socket").gettime()
      local life = ctx.settings.oauth_lifetime
      local s = {
        session_id = id,
        auth_url = fmt("https://%s/oauth/authorize?session=%s&client_id=mock-instantly",
          provider == "google" and "accounts.google.example" or "login.microsoftonline.example", id),
        expires_at = util.iso(math.floor((now + life) * 1000)),
      }
      store.oauth = store.oauth or {}
      store.oauth[id] = { provider = provider, expires = now + life, polls = 0, session = s }
      return 200, s
    end
  end
  H.initGoogleOAuth = oauth_init("google")
  H.initMicrosoftOAuth = oauth_init("microsoft")

  H.getOAuthSessionStatus = function(ctx)
    local store = ctx.store
    local id = ctx.params.sessionId
    local s = store.oauth and store.oauth[id]
    if not s or s.consumed then return err(404, "OAuth session not found") end
    local now = require("socket").gettime()
    if now >= s.expires then
      s.consumed = true
      return 200, { status = "expired", email = null, name = null, error = "expired",
        error_description = "The OAuth session expired before it was completed" }
    end
    s.polls = s.polls + 1
    if s.polls <= ctx.settings.oauth_polls then
      return 200, { status = "pending", email = null, name = null, error = null, error_description = null }
    end
    s.consumed = true
    if ctx.settings.oauth_result == "error" then
      return 200, { status = "error", email = null, name = null, error = "access_denied",
        error_description = "The user denied access" }
    end
    local domain = s.provider == "google" and "mockworkspace.test" or "mockoutlook.test"
    local email = fmt("connected%d@%s", store.seq, domain)
    store:create("accounts", {
      email = email, first_name = "Connected", last_name = "Account",
      provider_code = s.provider == "google" and 2 or 3, status = 1, warmup_status = 0, tags = array{},
      warmup = { limit = 10, increment = "disabled", reply_rate = 30 }, daily_limit = 30,
    })
    return 200, { status = "success", email = email, name = "Connected Account", error = null,
      error_description = null }
  end

  -- Email verification -----------------------------------------------------------------

  local function verdict(email)
    local user, domain = email:lower():match("^(.*)@(.*)$")
    if domain:find("invalid", 1, true) or user:find("bounce", 1, true) then return "invalid", false end
    if domain:find("catchall", 1, true) then return "verified", true end
    if user:find("risky", 1, true) then return "risky", false end
    return "verified", false
  end

  H.createEmailVerification = function(ctx)
    local email, store = ctx.body.email, ctx.store
    if not util.is_email(email) then return err(400, 'body/email must match format "email"') end
    local coll = store:coll("email_verification")
    local old = coll:remove(email)
    local polls = ctx.settings.verification_polls
    local v = store:create("email_verification", {
      email = email, verification_status = polls > 0 and "pending" or (verdict(email)),
      status = "success", catch_all = polls > 0 and null or select(2, verdict(email)),
      credits = 1000 - coll:count(), credits_used = 1,
    })
    store.verify_polls = store.verify_polls or {}
    store.verify_polls[email] = 0
    local _ = old
    return 200, v
  end

  H.checkVerificationStatus = function(ctx)
    local store = ctx.store
    local v = store:coll("email_verification"):get(ctx.params.email)
    if not v then return err(404, "No verification found for " .. ctx.params.email) end
    if v.verification_status == "pending" then
      local n = (store.verify_polls[v.email] or 0) + 1
      store.verify_polls[v.email] = n
      if n >= ctx.settings.verification_polls then
        local status, catch_all = verdict(v.email)
        v.verification_status, v.catch_all = status, catch_all
      end
    end
    return 200, v
  end

  -- Analytics: everything from store.events ------------------------------------------------

  local function in_range(ctx)
    local from = ctx.query.start_date and util.parse_time(ctx.query.start_date)
    local to = ctx.query.end_date and util.parse_time(ctx.query.end_date)
    if ctx.query.start_date and not from then return nil, "querystring/start_date must be a date" end
    if ctx.query.end_date and not to then return nil, "querystring/end_date must be a date" end
    if to and #ctx.query.end_date == 10 then to = to + 86400000 - 1 end
    return function(e)
      return (not from or e.t >= from) and (not to or e.t <= to)
    end
  end

  local function campaign_filter(ctx, single)
    local ids = {}
    local q = ctx.query
    local any = false
    for _, v in ipairs{ single and q[single] or nil, q.id } do
      if v then ids[v] = true; any = true end
    end
    if q.ids then
      local list = type(q.ids) == "table" and q.ids or { q.ids }
      for _, s in ipairs(list) do
        for id in tostring(s):gmatch("[^,]+") do ids[id] = true; any = true end
      end
    end
    for id in pairs(ids) do
      if not ctx.store:coll("campaigns"):get(id) then return nil, id end
    end
    return any and ids or nil
  end

  local KINDS = { "sent", "contacted", "open", "reply", "auto_reply", "click", "bounce", "unsubscribe",
    "completed", "opportunity" }

  -- Tally events into counters; unique counts are per lead.
  local function tally(events, pred)
    local c, uniq = {}, {}
    for _, k in ipairs(KINDS) do c[k] = 0; uniq[k] = {} end
    for _, e in ipairs(events) do
      if pred(e) then
        c[e.kind] = c[e.kind] + 1
        uniq[e.kind][e.lead] = true
      end
    end
    local u = {}
    for _, k in ipairs(KINDS) do
      local n = 0
      for _ in pairs(uniq[k]) do n = n + 1 end
      u[k] = n
    end
    return c, u
  end

  local function opp_value(ctx, n)
    return n * (ctx.store.workspace.default_opportunity_value or 0)
  end

  H.getCampaignAnalytics = function(ctx)
    local range, rerr = in_range(ctx)
    if not range then return err(400, rerr) end
    local ids, missing = campaign_filter(ctx)
    if ids == nil and missing then return err(404, "Campaign " .. missing .. " not found") end
    local store = ctx.store
    local rows = array{}
    for _, c in store:coll("campaigns"):each() do
      if not ids or ids[c.id] then
        local cid = c.id
        local cnt, uniq = tally(store.events, function(e) return e.campaign == cid and range(e) end)
        local leads = store:coll("leads"):count(function(l) return l.campaign == cid end)
        local row = {
          campaign_name = c.name, campaign_id = cid, campaign_status = c.status,
          campaign_is_evergreen = c.is_evergreen == true,
          leads_count = leads, contacted_count = uniq.contacted, emails_sent_count = cnt.sent,
          new_leads_contacted_count = uniq.contacted,
          open_count = cnt.open, open_count_unique = uniq.open, open_count_unique_by_step = cnt.open,
          reply_count = cnt.reply, reply_count_unique = uniq.reply, reply_count_unique_by_step = cnt.reply,
          reply_count_automatic = cnt.auto_reply, reply_count_automatic_unique = uniq.auto_reply,
          link_click_count = cnt.click, link_click_count_unique = uniq.click,
          link_click_count_unique_by_step = cnt.click,
          bounced_count = cnt.bounce, unsubscribed_count = cnt.unsubscribe, completed_count = cnt.completed,
          total_opportunities = cnt.opportunity, total_opportunity_value = opp_value(ctx, cnt.opportunity),
        }
        if ctx.query.exclude_total_leads_count then row.leads_count = nil end
        rows[#rows + 1] = row
      end
    end
    return 200, rows
  end

  H.getCampaignAnalyticsOverview = function(ctx)
    local range, rerr = in_range(ctx)
    if not range then return err(400, rerr) end
    local ids, missing = campaign_filter(ctx)
    if ids == nil and missing then return err(404, "Campaign " .. missing .. " not found") end
    local store = ctx.store
    local status = ctx.query.campaign_status
    local cnt, uniq = tally(store.events, function(e)
      if ids and not ids[e.campaign] then return false end
      if status ~= nil then
        local c = store:coll("campaigns"):get(e.campaign)
        if not c or c.status ~= status then return false end
      end
      return range(e)
    end)
    local out = {
      open_count = cnt.open, open_count_unique = uniq.open, open_count_unique_by_step = cnt.open,
      link_click_count = cnt.click, link_click_count_unique = uniq.click, link_click_count_unique_by_step = cnt.click,
      reply_count = cnt.reply, reply_count_unique = uniq.reply, reply_count_unique_by_step = cnt.reply,
      reply_count_automatic = cnt.auto_reply, reply_count_automatic_unique = uniq.auto_reply,
      reply_count_automatic_unique_by_step = cnt.auto_reply,
      bounced_count = cnt.bounce, unsubscribed_count = cnt.unsubscribe, completed_count = cnt.completed,
      emails_sent_count = cnt.sent, contacted_count = uniq.contacted, new_leads_contacted_count = uniq.contacted,
      total_opportunities = cnt.opportunity, total_opportunity_value = opp_value(ctx, cnt.opportunity),
      total_interested = cnt.opportunity, total_meeting_booked = 0, total_meeting_completed = 0, total_closed = 0,
    }
    if ctx.query.expand_crm_events then
      out.total_interested_crm = 0
      out.total_meeting_booked_crm = 0
    end
    return 200, out
  end

  local function daily_rows(ctx, pred, extra)
    local store = ctx.store
    local by_date, dates = {}, {}
    for _, e in ipairs(store.events) do
      if pred(e) then
        local d = by_date[e.date]
        if not d then
          d = { events = {} }
          by_date[e.date] = d
          dates[#dates + 1] = e.date
        end
        d.events[#d.events + 1] = e
      end
    end
    table.sort(dates)
    local rows = array{}
    for _, date in ipairs(dates) do
      local cnt, uniq = tally(by_date[date].events, function() return true end)
      local row = {
        date = date, sent = cnt.sent, contacted = uniq.contacted, new_leads_contacted = uniq.contacted,
        opened = cnt.open, unique_opened = uniq.open, replies = cnt.reply, unique_replies = uniq.reply,
        replies_automatic = cnt.auto_reply, unique_replies_automatic = uniq.auto_reply,
        clicks = cnt.click, unique_clicks = uniq.click, opportunities = cnt.opportunity,
        unique_opportunities = uniq.opportunity,
      }
      if extra then extra(row, cnt, uniq, by_date[date].events) end
      rows[#rows + 1] = row
    end
    return rows
  end

  H.getDailyCampaignAnalytics = function(ctx)
    local range, rerr = in_range(ctx)
    if not range then return err(400, rerr) end
    local cid = ctx.query.campaign_id
    if cid and not ctx.store:coll("campaigns"):get(cid) then return err(404, "Campaign not found") end
    local status = ctx.query.campaign_status
    return 200, daily_rows(ctx, function(e)
      if cid and e.campaign ~= cid then return false end
      if status ~= nil then
        local c = ctx.store:coll("campaigns"):get(e.campaign)
        if not c or c.status ~= status then return false end
      end
      return range(e)
    end)
  end

  H.getCampaignStepsAnalytics = function(ctx)
    local range, rerr = in_range(ctx)
    if not range then return err(400, rerr) end
    local cid = ctx.query.campaign_id
    if cid and not ctx.store:coll("campaigns"):get(cid) then return err(404, "Campaign not found") end
    local groups, keys = {}, {}
    for _, e in ipairs(ctx.store.events) do
      if (not cid or e.campaign == cid) and range(e) and e.step then
        local k = fmt("%d:%d", e.step, e.variant)
        local g = groups[k]
        if not g then
          g = { step = e.step, variant = e.variant, events = {} }
          groups[k] = g
          keys[#keys + 1] = k
        end
        g.events[#g.events + 1] = e
      end
    end
    table.sort(keys, function(a, b)
      local ga, gb = groups[a], groups[b]
      if ga.step ~= gb.step then return ga.step < gb.step end
      return ga.variant < gb.variant
    end)
    local rows = array{}
    for _, k in ipairs(keys) do
      local g = groups[k]
      local cnt, uniq = tally(g.events, function() return true end)
      local row = {
        step = tostring(g.step - 1), variant = tostring(g.variant), sent = cnt.sent,
        opened = cnt.open, unique_opened = uniq.open, replies = cnt.reply, unique_replies = uniq.reply,
        replies_automatic = cnt.auto_reply, unique_replies_automatic = uniq.auto_reply,
        clicks = cnt.click, unique_clicks = uniq.click,
      }
      if ctx.query.include_opportunities_count then
        row.opportunities, row.unique_opportunities = cnt.opportunity, uniq.opportunity
      end
      rows[#rows + 1] = row
    end
    return 200, rows
  end

  H.getDailyAccountAnalytics = function(ctx)
    local range, rerr = in_range(ctx)
    if not range then return err(400, rerr) end
    local emails
    if ctx.query.emails then
      emails = {}
      local list = type(ctx.query.emails) == "table" and ctx.query.emails or { ctx.query.emails }
      for _, s in ipairs(list) do for e in tostring(s):gmatch("[^,]+") do emails[e] = true end end
    end
    local accts = {}
    for _, a in ctx.store:coll("accounts"):each() do
      if not emails or emails[a.email] then accts[#accts + 1] = a.email end
    end
    local rows = array{}
    for _, email in ipairs(accts) do
      for _, r in ipairs(daily_rows(ctx, function(e) return e.eaccount == email and range(e) end,
          function(row, cnt) row.email_account = email; row.bounced = cnt.bounce end)) do
        rows[#rows + 1] = r
      end
    end
    table.sort(rows, function(a, b)
      if a.date ~= b.date then return a.date < b.date end
      return a.email_account < b.email_account
    end)
    return 200, rows
  end

  H.getWarmupAnalytics = function(ctx)
    local store = ctx.store
    local per_date, agg = {}, {}
    for _, email in ipairs(ctx.body.emails) do
      local a = store:coll("accounts"):get(email)
      if a then
        local rng = util.rng(#email * 7919 + store.seed)
        local days = {}
        local tot = { sent = 0, received = 0, landed_inbox = 0, landed_spam = 0 }
        local base = store.events_from or require("instantly.mock.state").BASE_MS
        for d = 0, 6 do
          local sent = a.warmup_status == 1 and rng(10, 40) or 0
          local spam = a.warmup_status == 1 and (a.stat_warmup_score ~= null and a.stat_warmup_score or 80) < 80
            and rng(0, 4) or rng(0, 1)
          spam = math.min(spam, sent)
          local row = { sent = sent, landed_inbox = sent - spam, landed_spam = spam, received = sent }
          days[util.date(base + d * 86400000)] = row
          for k, v in pairs(row) do tot[k] = tot[k] + v end
        end
        per_date[email] = days
        local score = tot.sent > 0 and math.floor(100 * tot.landed_inbox / tot.sent) or 0
        tot.health_score = score
        tot.health_score_label = score >= 90 and "excellent" or score >= 75 and "good" or "poor"
        agg[email] = tot
      end
    end
    return 200, { email_date_data = per_date, aggregate_data = agg }
  end
end
