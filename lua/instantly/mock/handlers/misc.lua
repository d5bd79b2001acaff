--- Bespoke handlers: webhooks and their delivery log, SuperSearch
-- enrichment, DFY account orders, inbox placement, audit log and the CRM
-- phone numbers.
-- @module instantly.mock.handlers.misc

local json = require "instantly.mock.json"
local util = require "instantly.mock.util"

local array, null = json.array, json.null
local fmt = string.format

return function(H, common)
  local err = common.err

  -- Webhooks ------------------------------------------------------------------------------

  local EVENT_TYPES = { "all_events", "email_sent", "email_opened", "email_link_clicked", "reply_received",
    "email_bounced", "lead_unsubscribed", "campaign_completed", "account_error", "lead_neutral",
    "lead_interested", "lead_not_interested", "lead_meeting_booked", "lead_meeting_completed", "lead_closed",
    "lead_out_of_office", "lead_wrong_person", "lead_no_show", "supersearch_enrichment_completed" }

  local function valid_url(u)
    return type(u) == "string" and u:match("^https?://[%w.-]+[%w]") ~= nil
  end

  H.createWebhook = function(ctx)
    local b, store = ctx.body, ctx.store
    if not valid_url(b.target_hook_url) then return err(400, 'body/target_hook_url must match format "uri"') end
    if b.campaign and not store:coll("campaigns"):get(b.campaign) then return err(404, "Campaign not found") end
    return 200, (store:create("webhooks", {
      campaign = b.campaign or null, name = b.name or null, target_hook_url = b.target_hook_url,
      event_type = b.event_type or "all_events", custom_interest_value = b.custom_interest_value or null,
      headers = b.headers or {}, status = 1, timestamp_error = null,
    }))
  end

  H.patchWebhook = function(ctx)
    local w = ctx.store:coll("webhooks"):get(ctx.params.id)
    if not w then return err(404, "Webhook not found") end
    local b = ctx.body or {}
    if b.target_hook_url ~= nil and not valid_url(b.target_hook_url) then
      return err(400, 'body/target_hook_url must match format "uri"')
    end
    if b.campaign and b.campaign ~= null and not ctx.store:coll("campaigns"):get(b.campaign) then
      return err(404, "Campaign not found")
    end
    for _, k in ipairs{ "campaign", "name", "target_hook_url", "event_type", "custom_interest_value", "headers" } do
      if b[k] ~= nil then w[k] = b[k] end
    end
    return 200, w
  end

  H.listWebhook = function(ctx)
    local q = ctx.query
    return common.page(ctx, ctx.store:coll("webhooks"), common.all{
      common.eq_pred("campaign", q.campaign), common.eq_pred("event_type", q.event_type) })
  end

  H.listWebhookEventTypes = function(ctx)
    local out = array{}
    for _, t in ipairs(EVENT_TYPES) do
      out[#out + 1] = { id = t, label = t:gsub("_", " "):gsub("^%l", string.upper), type = "standard" }
    end
    for _, l in ctx.store:coll("lead_labels"):each() do
      out[#out + 1] = { id = "custom_label_" .. l.interest_status, label = l.label, type = "custom" }
    end
    return 200, { event_types = out }
  end

  H.testWebhook = function(ctx)
    local w = ctx.store:coll("webhooks"):get(ctx.params.id)
    if not w then return err(404, "Webhook not found") end
    -- a real POST of a sample event; only loopback targets are contacted
    return 200, require("instantly.mock.webhooks").test(ctx.app, ctx.store, w)
  end

  H.resumeWebhook = function(ctx)
    local w = ctx.store:coll("webhooks"):get(ctx.params.id)
    if not w then return err(404, "Webhook not found") end
    w.status = 1
    w.timestamp_error = null
    return 200, w
  end

  local function event_range(ctx)
    local q = ctx.query
    local from = q.from and util.parse_time(q.from)
    local to = q.to and util.parse_time(q.to)
    if q.from and not from then return nil, "querystring/from must be a date" end
    if q.to and not to then return nil, "querystring/to must be a date" end
    if to and #q.to == 10 then to = to + 86400000 - 1 end
    local coll = ctx.store:coll("webhook_events")
    return function(e)
      local t = coll.time_of[e]
      return (not from or t >= from) and (not to or t <= to)
    end
  end

  H.listWebhookEvent = function(ctx)
    local range, e = event_range(ctx)
    if not range then return err(400, e) end
    local q = ctx.query
    return common.page(ctx, ctx.store:coll("webhook_events"), common.all{
      range, q.success ~= nil and common.eq_pred("success", q.success) or nil,
      common.search_pred(q.search, { "webhook_url", "lead_email" }) })
  end

  local function summarise(events)
    local ok, bad = 0, 0
    for _, e in ipairs(events) do
      if e.success then ok = ok + 1 else bad = bad + 1 end
    end
    local total = ok + bad
    local rate = total > 0 and math.floor(10000 * ok / total + 0.5) / 100 or 0
    return { total_events = total, successful_events = ok, failed_events = bad, success_rate = rate,
      failure_rate = total > 0 and math.floor((100 - rate) * 100 + 0.5) / 100 or 0 }
  end

  H.getWebhookEventsSummary = function(ctx)
    local range, e = event_range(ctx)
    if not range then return err(400, e) end
    local list = {}
    for _, ev in ctx.store:coll("webhook_events"):each() do if range(ev) then list[#list + 1] = ev end end
    return 200, summarise(list)
  end

  H.getWebhookEventsSummaryByDate = function(ctx)
    local range, e = event_range(ctx)
    if not range then return err(400, e) end
    local by, dates = {}, {}
    for _, ev in ctx.store:coll("webhook_events"):each() do
      if range(ev) then
        local d = ev.timestamp_created_date ~= null and ev.timestamp_created_date or ev.timestamp_created:sub(1, 10)
        if not by[d] then by[d] = {}; dates[#dates + 1] = d end
        by[d][#by[d] + 1] = ev
      end
    end
    table.sort(dates)
    local items = array{}
    for _, d in ipairs(dates) do
      local s = summarise(by[d])
      items[#items + 1] = { date = d, total_events = s.total_events, successful_events = s.successful_events,
        failed_events = s.failed_events, success_rate = s.success_rate }
    end
    return 200, { items = items }
  end

  H.listAuditLog = function(ctx)
    local q = ctx.query
    local from = q.start_date and util.parse_time(q.start_date)
    local to = q.end_date and util.parse_time(q.end_date)
    if q.start_date and not from then return err(400, "querystring/start_date must be a date") end
    if q.end_date and not to then return err(400, "querystring/end_date must be a date") end
    return common.page(ctx, ctx.store:coll("audit_logs"), common.all{
      common.eq_pred("activity_type", q.activity_type),
      common.search_pred(q.search, { "user_name", "ip_address", "user_agent" }),
      from and function(e) return util.parse_time(e.timestamp) >= from end or nil,
      to and function(e) return util.parse_time(e.timestamp) <= to end or nil,
    })
  end

  -- SuperSearch enrichment ----------------------------------------------------------------

  local function resource(store, id)
    local l = store:coll("lead_lists"):get(id)
    if l then return l, 2 end
    local c = store:coll("campaigns"):get(id)
    if c then return c, 1 end
  end

  local function leads_of(store, id)
    return store:coll("leads"):count(function(l) return l.list_id == id or l.campaign == id end)
  end

  local function payload_from(b)
    return {
      joblisting = b.type == "joblisting", email_verification = b.type == "email_verification",
      work_email_enrichment = b.type == "work_email_enrichment" or b.type == nil,
      fully_enriched_profile = b.type == "fully_enriched_profile",
      technologies = b.type == "technologies", news = b.type == "news", funding = b.type == "funding",
      custom_flow = b.custom_flow or array{},
    }
  end

  H.createSuperSearchEnrichment = function(ctx)
    local b, store = ctx.body, ctx.store
    local r, rtype = resource(store, b.resource_id)
    if not r then return err(404, "Resource " .. b.resource_id .. " not found") end
    if b.type and b.integration_actions then
      return err(400, "body: type and integration_actions are mutually exclusive")
    end
    local coll = store:coll("supersearch_enrichment")
    local e = coll:get(b.resource_id)
    if not e then
      e = store:create("supersearch_enrichment", {
        resource_id = b.resource_id, resource_type = rtype, type = b.type or "work_email_enrichment",
        limit = b.limit or leads_of(store, b.resource_id), enrichment_payload = payload_from(b),
        auto_update = false, skip_rows_without_email = false, in_progress = true,
      })
    else
      e.enrichment_payload = payload_from(b)
      e.in_progress = true
    end
    store.enrich_polls = store.enrich_polls or {}
    store.enrich_polls[b.resource_id] = 0
    store.enrich_history = store.enrich_history or {}
    local h = store.enrich_history[b.resource_id] or {}
    store.enrich_history[b.resource_id] = h
    h[#h + 1] = { id = store:uuid(), type = e.type, action = "created", timestamp = store:now_iso(), limit = e.limit }
    return 200, { id = e.id, limit = e.limit, organization_id = store.workspace_id, resource_id = e.resource_id,
      enrichment_payload = e.enrichment_payload }
  end

  H.getEnrichmentForResource = function(ctx)
    local store = ctx.store
    local id = ctx.params.resource_id
    local r = resource(store, id)
    if not r then return err(404, "Resource " .. id .. " not found") end
    local e = store:coll("supersearch_enrichment"):get(id)
    if not e then
      return 200, { resource_id = id, in_progress = false, has_no_leads = leads_of(store, id) == 0, exists = false,
        enrichment_payload = {}, auto_update = false, is_evergreen = false, search_filters = null }
    end
    if e.in_progress then
      local n = (store.enrich_polls[id] or 0) + 1
      store.enrich_polls[id] = n
      if n >= ctx.settings.job_steps then e.in_progress = false end
    end
    return 200, { resource_id = id, in_progress = e.in_progress, has_no_leads = leads_of(store, id) == 0,
      exists = true, enrichment_payload = e.enrichment_payload, auto_update = e.auto_update,
      is_evergreen = store.enrich_evergreen and store.enrich_evergreen[id] or false, search_filters = null }
  end

  H.updateEnrichmentSettingsForResource = function(ctx)
    local store = ctx.store
    local e = store:coll("supersearch_enrichment"):get(ctx.params.resource_id)
    if not e then return err(404, "No enrichment for resource " .. ctx.params.resource_id) end
    local b = ctx.body or {}
    if b.auto_update ~= nil then e.auto_update = b.auto_update end
    if b.skip_rows_without_email ~= nil then e.skip_rows_without_email = b.skip_rows_without_email end
    if b.is_evergreen ~= nil then
      store.enrich_evergreen = store.enrich_evergreen or {}
      store.enrich_evergreen[e.resource_id] = b.is_evergreen
    end
    return 200, e
  end

  H.createAIEnrichment = function(ctx)
    local b, store = ctx.body, ctx.store
    if not resource(store, b.resource_id) then return err(404, "Resource " .. b.resource_id .. " not found") end
    if b.resource_type ~= 1 and b.resource_type ~= 2 then return err(400, "body/resource_type must be 1 or 2") end
    store.ai_enrichments = store.ai_enrichments or {}
    local row = {
      id = store:uuid(), organization_id = store.workspace_id, resource_id = b.resource_id,
      resource_type = b.resource_type, output_column = b.output_column, status = 1,
      model_version = b.model_version, input_columns = b.input_columns or array{}, overwrite = b.overwrite or false,
      auto_update = b.auto_update or false, limit = b.limit or leads_of(store, b.resource_id),
      template_id = b.template_id or null, polls = 0,
    }
    store.ai_enrichments[#store.ai_enrichments + 1] = row
    local out = util.shallow_copy(row)
    out.polls = nil
    return 200, out
  end

  H.getAiEnrichmentForResource = function(ctx)
    local store = ctx.store
    local id = ctx.params.resource_id
    if not resource(store, id) then return err(404, "Resource " .. id .. " not found") end
    local out = array{}
    for _, r in ipairs(store.ai_enrichments or {}) do
      if r.resource_id == id and r.status == 1 then
        r.polls = r.polls + 1
        if r.polls >= ctx.settings.job_steps then r.status = 2 end
        out[#out + 1] = { id = r.id, organization_id = r.organization_id, resource_id = r.resource_id,
          resource_type = r.resource_type, output_column = r.output_column, status = r.status }
      end
    end
    return 200, out
  end

  H.runEnrichment = function(ctx)
    local b, store = ctx.body, ctx.store
    local e = store:coll("supersearch_enrichment"):get(b.resource_id)
    if not resource(store, b.resource_id) then return err(404, "Resource " .. b.resource_id .. " not found") end
    if not e then return 400, { message = "No enrichment configured for this resource; create one first" } end
    e.in_progress = true
    store.enrich_polls[b.resource_id] = 0
    local h = store.enrich_history[b.resource_id]
    h[#h + 1] = { id = store:uuid(), type = e.type, action = "run", timestamp = store:now_iso(),
      limit = b.limit or e.limit }
    return 200, { id = e.id, resource_id = e.resource_id, enrichment_payload = e.enrichment_payload }
  end

  H.getEnrichmentHistory = function(ctx)
    local store = ctx.store
    local id = ctx.params.resource_id
    if not resource(store, id) then return err(404, "Resource " .. id .. " not found") end
    local h = (store.enrich_history or {})[id] or {}
    local offset = ctx.query.offset or 0
    local limit = ctx.query.limit or 100
    if offset < 0 then return err(400, "querystring/offset must be >= 0") end
    if limit < 1 or limit > 100 then return err(400, "querystring/limit must be between 1 and 100") end
    local out = array{}
    for i = offset + 1, math.min(#h, offset + limit) do out[#out + 1] = h[i] end
    return 200, out
  end

  -- A deterministic lead count for a SuperSearch filter object.
  local function count_for(filters)
    local s = json.encode(filters)
    local h = 0
    for i = 1, #s do h = (h * 31 + s:byte(i)) % 1000003 end
    return 500 + h % 20000
  end

  H.countLeadsFromSupersearch = function(ctx)
    local n = count_for(ctx.body.search_filters)
    if ctx.body.show_one_lead_per_company then n = n // 3 end
    return 200, { number_of_leads = n }
  end

  H.previewLeadsFromSupersearch = function(ctx)
    local n = count_for(ctx.body.search_filters)
    local rng = util.rng(n)
    local leads = array{}
    local firsts = { "Ada", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun" }
    for i = 1, 10 do
      local first = firsts[i]
      local company = require("instantly.mock.state").WORDS[rng(15)]
      leads[i] = { firstName = first, lastName = "Preview", fullName = first .. " Preview",
        jobTitle = "Head of Growth", location = "Remote", linkedIn = "https://linkedin.example/in/" .. first:lower(),
        companyName = company, companyLogo = null, companyId = fmt("cmp_%06d", rng(999999)) }
    end
    return 200, { number_of_leads = n, number_of_redacted_results = math.max(0, n - 10), leads = leads }
  end

  H.enrichLeadsFromSupersearch = function(ctx)
    local b, store = ctx.body, ctx.store
    if b.limit < 1 then return err(400, "body/limit must be >= 1") end
    local list, rtype
    if b.resource_id then
      list, rtype = resource(store, b.resource_id)
      if not list then return err(404, "Resource " .. b.resource_id .. " not found") end
    else
      list = store:create("lead_lists", { name = b.list_name or b.search_name or "SuperSearch import",
        has_enrichment_task = true })
      rtype = 2
    end
    local n = math.min(b.limit, count_for(b.search_filters), 200)
    local target = list.id
    local job = common.job(ctx, "import-leads", rtype == 2 and "list" or "campaign", target, { total = n },
      function(_, st)
        for i = 1, n do
          local values = { email = fmt("supersearch%d.%d@leads.example", st.seq, i), first_name = "Lead",
            last_name = tostring(i), status = 1, upload_method = "supersearch", payload = {},
            list_id = rtype == 2 and target or null, campaign = rtype == 1 and target or null }
          st:create("leads", values)
        end
        return { imported = n }
      end)
    return 200, { id = store:uuid(), organization_id = store.workspace_id, resource_id = target,
      resource_type = rtype, search_filters = b.search_filters, limit = b.limit, list_name = list.name,
      custom_flow = b.custom_flow or array{}, background_job_id = job.id, live_list_workflow_id = null }
  end

  H.signalKeywordsFacet = function(ctx)
    local b = ctx.body
    local words = { "hiring", "funding", "expansion", "migration", "launch", "partnership", "acquisition",
      "rebrand", "security", "compliance" }
    local out = array{}
    local prefix = (b.prefix or ""):lower()
    for i, w in ipairs(words) do
      if w:sub(1, #prefix) == prefix then out[#out + 1] = { keyword = w, count = 1000 - i * 37 } end
      if b.limit and #out >= b.limit then break end
    end
    return 200, { keywords = out }
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

  H.createDFYEmailAccountOrder = function(ctx)
    local b, store = ctx.body, ctx.store
    local unavailable, invalid = array{}, array{}
    local accounts, domains = 0, 0
    for i, item in ipairs(b.items) do
      if type(item) ~= "table" then return err(400, fmt("body/items/%d must be object", i - 1)) end
      local d = item.domain
      if not domain_ok(d) then invalid[#invalid + 1] = tostring(d)
      elseif b.order_type ~= "pre_warmed_up" and not available(d) then unavailable[#unavailable + 1] = d
      else
        domains = domains + 1
        accounts = accounts + (type(item.accounts) == "table" and #item.accounts or 1)
      end
    end
    local valid = #unavailable == 0 and #invalid == 0
    local placed = valid and not b.simulation
    if placed then
      for _, item in ipairs(b.items) do
        store:create("dfy_email_account_orders", { domain = item.domain,
          forwarding_domain = item.forwarding_domain or null, is_pre_warmed_up = b.order_type == "pre_warmed_up",
          timestamp_cancelled = null })
        for j, acc in ipairs(type(item.accounts) == "table" and item.accounts or { {} }) do
          store.dfy_accounts[#store.dfy_accounts + 1] = {
            id = store:uuid(), domain = item.domain,
            email = (type(acc) == "table" and acc.email_address_prefix or ("user" .. j)) .. "@" .. item.domain,
            email_provider = 1, first_name = type(acc) == "table" and acc.first_name or "User",
            last_name = type(acc) == "table" and acc.last_name or tostring(j),
            is_pre_warmed_up = b.order_type == "pre_warmed_up", timestamp_cancelled = null,
            timestamp_created = store:now_iso(), password = "mock-pw-" .. j,
          }
        end
      end
    end
    return 200, {
      order_placed = placed, order_is_valid = valid,
      order_error = (#invalid > 0 and "invalid_domains") or (#unavailable > 0 and "unavailable_domains") or null,
      unavailable_domains = unavailable, blacklist_domains = array{}, invalid_domains = invalid,
      number_of_domains_ordered = domains, number_of_accounts_ordered = accounts,
      price_per_account = 4.5, price_per_domain = 15, total_domains_price = domains * 15,
      total_accounts_price = accounts * 4.5, total_price = domains * 15 + accounts * 4.5, discount = 0,
      simulation = b.simulation == true, order_items = util.deep_copy(b.items),
    }
  end

  H.listDFYEmailAccountOrdersAccounts = function(ctx)
    local rows = {}
    for _, a in ipairs(ctx.store.dfy_accounts) do
      local r = util.shallow_copy(a)
      if not ctx.query.with_passwords then r.password = nil end
      rows[#rows + 1] = r
    end
    return common.page_array(ctx, rows, function(r) return r.id end)
  end

  H.cancelDFYEmailAccounts = function(ctx)
    local want = {}
    for _, e in ipairs(ctx.body.accounts) do want[e] = true end
    local items = array{}
    for _, a in ipairs(ctx.store.dfy_accounts) do
      if want[a.email] or want[a.id] then
        if a.timestamp_cancelled == null then a.timestamp_cancelled = ctx.store:now_iso() end
        local r = util.shallow_copy(a)
        r.password = nil
        items[#items + 1] = r
      end
    end
    return 200, { items = items }
  end

  H.checkDomainsAvailability = function(ctx)
    local out = array{}
    for i, d in ipairs(ctx.body.domains) do
      if not domain_ok(d) then return err(400, fmt("body/domains/%d must be a domain name", i - 1)) end
      out[#out + 1] = { domain = d, available = available(d) }
    end
    return 200, { results = out }
  end

  H.preWarmedUpDomainsList = function(ctx)
    local b = ctx.body or {}
    local exts = b.extensions and #b.extensions > 0 and b.extensions or { "com", "co", "io" }
    local out, typed = array{}, array{}
    for _, base in ipairs{ "getoutbound", "tryreach", "meetpipeline", "hellogrowth", "usecadence" } do
      for _, ext in ipairs(exts) do
        local d = base .. "." .. tostring(ext):gsub("^%.", "")
        if not b.search or d:find(b.search, 1, true) then
          out[#out + 1] = d
          typed[#typed + 1] = { domain = d, account_type = #d % 3 + 1 }
        end
      end
    end
    return 200, { domains = out, domains_with_type = typed }
  end

  H.generateSimilarDomains = function(ctx)
    local d = ctx.body.domain
    local name = d:match("^([^.]+)")
    if not name or not domain_ok(d) then return err(400, "body/domain must be a domain name") end
    local tlds = ctx.body.tlds and #ctx.body.tlds > 0 and ctx.body.tlds or { "com", "co", "io" }
    local out = array{}
    for _, p in ipairs{ "get", "try", "use", "hello" } do
      for _, t in ipairs(tlds) do out[#out + 1] = p .. name .. "." .. tostring(t):gsub("^%.", "") end
    end
    return 200, { domains = out }
  end

  -- Inbox placement --------------------------------------------------------------------------

  H.createInboxPlacementTest = function(ctx)
    local b, store = ctx.body, ctx.store
    if #b.emails == 0 then return err(400, "body/emails must NOT have fewer than 1 items") end
    for i, e in ipairs(b.emails) do
      if not store:coll("accounts"):get(e) then
        return err(400, fmt("body/emails/%d is not an account of this workspace", i - 1))
      end
    end
    if b.campaign_id and not store:coll("campaigns"):get(b.campaign_id) then return err(404, "Campaign not found") end
    local values = {}
    for _, f in ipairs(ctx.op.body.fields) do
      if b[f.name] ~= nil and f.name ~= "run_immediately" then values[f.name] = b[f.name] end
    end
    values.status = b.status or 1
    values.metadata = {}
    values.recipients = array{}
    return 200, (store:create("inbox_placement_tests", values))
  end

  H.getInboxPlacementTest = function(ctx)
    local t = ctx.store:coll("inbox_placement_tests"):get(ctx.params.id)
    if not t then return err(404, "Inbox placement test not found") end
    if ctx.query.with_metadata then return 200, t end
    local copy = util.shallow_copy(t)
    copy.metadata = null
    return 200, copy
  end

  H.getInboxPlacementTestESPOptions = function()
    local out = array{}
    for _, r in ipairs{ { "North America", "US", "professional", "Google" },
                        { "North America", "US", "professional", "Outlook" },
                        { "North America", "US", "personal", "Gmail" }, { "Europe", "DE", "personal", "GMX" },
                        { "Europe", "FR", "personal", "Orange" }, { "Asia", "JP", "personal", "Yahoo Japan" } } do
      out[#out + 1] = { region = r[1], sub_region = r[2], type = r[3], esp = r[4] }
    end
    return 200, out
  end

  local function ipa_rows(ctx, test_ids, b)
    local from = b.date_from and util.parse_time(b.date_from)
    local to = b.date_to and util.parse_time(b.date_to)
    if to and #b.date_to == 10 then to = to + 86400000 - 1 end
    local geo, typ, esp = b.recipient_geo, b.recipient_type, b.recipient_esp
    local function member(list, v)
      if not list or #list == 0 then return true end
      for _, x in ipairs(list) do if x == v then return true end end
      return false
    end
    local rows = {}
    local coll = ctx.store:coll("inbox_placement_analytics")
    for _, r in coll:each() do
      local t = coll.time_of[r]
      if test_ids[r.test_id] and (not from or t >= from) and (not to or t <= to)
         and member(geo, r.recipient_geo) and member(typ, r.recipient_type) and member(esp, r.recipient_esp)
         and (not b.sender_email or r.sender_email == b.sender_email) then
        rows[#rows + 1] = r
      end
    end
    return rows
  end

  local function pct(n, d) return d > 0 and math.floor(10000 * n / d + 0.5) / 100 or 0 end

  local function need_test(ctx, id)
    if not ctx.store:coll("inbox_placement_tests"):get(id) then
      return common.fail(404, "Inbox placement test not found")
    end
  end

  H.getInboxPlacementAnalyticsStatsByTestId = function(ctx)
    local b = ctx.body
    local out = array{}
    for _, id in ipairs(b.test_ids) do
      local rows = ipa_rows(ctx, { [id] = true }, b)
      local spam, cat = 0, 0
      for _, r in ipairs(rows) do
        if r.is_spam then spam = spam + 1 elseif r.has_category then cat = cat + 1 end
      end
      local inbox = #rows - spam - cat
      out[#out + 1] = { test_id = id, count = #rows, spam_count = spam, spam_percent = pct(spam, #rows),
        inbox_count = inbox, inbox_percent = pct(inbox, #rows), category_count = cat,
        category_percent = pct(cat, #rows) }
    end
    return 200, out
  end

  H.getInboxPlacementAnalyticsStatsByDate = function(ctx)
    local b = ctx.body
    local e = need_test(ctx, b.test_id)
    if e then return e end
    local by, dates = {}, {}
    for _, r in ipairs(ipa_rows(ctx, { [b.test_id] = true }, b)) do
      local d = r.timestamp_created_date
      if not by[d] then by[d] = { sent_count = 0, received_count = 0, spam_count = 0, inbox_count = 0,
        category_count = 0 }; dates[#dates + 1] = d end
      local s = by[d]
      s.sent_count = s.sent_count + 1
      s.received_count = s.received_count + 1
      if r.is_spam then s.spam_count = s.spam_count + 1
      elseif r.has_category then s.category_count = s.category_count + 1
      else s.inbox_count = s.inbox_count + 1 end
    end
    table.sort(dates)
    local out = array{}
    for _, d in ipairs(dates) do
      local s = by[d]
      s.timestamp_created_date = d
      out[#out + 1] = s
    end
    return 200, out
  end

  H.getInboxPlacementAnalyticsDeliverabilityInsights = function(ctx)
    local b = ctx.body
    local e = need_test(ctx, b.test_id)
    if e then return e end
    local pairs_, keys = {}, {}
    for _, r in ipairs(ipa_rows(ctx, { [b.test_id] = true }, b)) do
      local k = r.sender_esp .. ":" .. r.recipient_esp
      if not pairs_[k] then
        pairs_[k] = { sender_esp = r.sender_esp, recipient_esp = r.recipient_esp, n = 0, spam = 0, cat = 0 }
        keys[#keys + 1] = k
      end
      local p = pairs_[k]
      p.n = p.n + 1
      if r.is_spam then p.spam = p.spam + 1 elseif r.has_category then p.cat = p.cat + 1 end
    end
    table.sort(keys)
    local out = array{}
    for _, k in ipairs(keys) do
      local p = pairs_[k]
      local row = { test_id = b.test_id, from = b.date_from or null, to = b.date_to or null,
        sender_esp = p.sender_esp, recipient_esp = p.recipient_esp,
        spam_percentage = pct(p.spam, p.n), category_percentage = pct(p.cat, p.n),
        inbox_percentage = pct(p.n - p.spam - p.cat, p.n) }
      if b.show_previous then
        row.previous_from, row.previous_to = b.previous_date_from or null, b.previous_date_to or null
        row.prev_spam_percentage, row.prev_inbox_percentage, row.prev_category_percentage = 0, 0, 0
      end
      out[#out + 1] = row
    end
    return 200, out
  end

  H.listInboxPlacementAnalytics = function(ctx)
    local q = ctx.query
    local e = need_test(ctx, q.test_id)
    if e then return e end
    local coll = ctx.store:coll("inbox_placement_analytics")
    local from = q.date_from and util.parse_time(q.date_from)
    local to = q.date_to and util.parse_time(q.date_to)
    return common.page(ctx, coll, common.all{
      common.eq_pred("test_id", q.test_id), common.eq_pred("recipient_geo", q.recipient_geo),
      common.eq_pred("recipient_type", q.recipient_type), common.eq_pred("recipient_esp", q.recipient_esp),
      common.eq_pred("sender_email", q.sender_email),
      from and function(r) return coll.time_of[r] >= from end or nil,
      to and function(r) return coll.time_of[r] <= to end or nil,
    })
  end

  H.listInboxPlacementBlacklistAndSpamAssassinReport = function(ctx)
    local q = ctx.query
    local e = need_test(ctx, q.test_id)
    if e then return e end
    local status, page = common.page(ctx, ctx.store:coll("inbox_placement_reports"),
      common.eq_pred("test_id", q.test_id))
    if status == 200 and (q.skip_spam_assassin_report or q.skip_blacklist_report) then
      for i, r in ipairs(page.items) do
        local c = util.shallow_copy(r)
        if q.skip_spam_assassin_report then c.spam_assassin_report = nil end
        if q.skip_blacklist_report then c.blacklist_report = nil end
        page.items[i] = c
      end
    end
    return status, page
  end

  -- CRM phone numbers ---------------------------------------------------------------------------

  H.listPhoneNumbers = function(ctx)
    local out = array{}
    for _, p in ctx.store:coll("crm_actions"):each() do out[#out + 1] = p end
    return 200, out
  end

  H.deletePhoneNumber = function(ctx)
    local p = ctx.store:coll("crm_actions"):remove(ctx.params.id)
    if not p then return err(404, "Phone number not found") end
    return 200, p
  end
end
