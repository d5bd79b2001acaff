--- The seeded workspace: deterministic for a given seed, believable enough
-- to develop against. Sending accounts in mixed health and warmup states,
-- campaigns with schedules and sequences, about 2,000 leads over campaigns
-- and lists, a Unibox with unread replies, and an event log from which
-- every analytics endpoint is computed (so the numbers add up).
-- @module instantly.mock.seed

local json = require "instantly.mock.json"
local util = require "instantly.mock.util"
local state = require "instantly.mock.state"

local array, null = json.array, json.null
local iso, fmt = util.iso, string.format

local M = {}

local FIRST = { "Ava", "Liam", "Noah", "Emma", "Olivia", "Mia", "Lucas", "Ethan", "Sofia", "Amelia",
  "James", "Harper", "Mateo", "Isla", "Leo", "Chloe", "Aria", "Elias", "Nora", "Hugo", "Zoe",
  "Ivan", "Priya", "Kenji", "Fatima", "Omar", "Lena", "Marco", "Julia", "Tomas" }
local LAST = { "Smith", "Garcia", "Müller", "Rossi", "Kim", "Nguyen", "Patel", "Silva", "Novak",
  "Dubois", "Jensen", "Cohen", "Okafor", "Tanaka", "Kowalski", "Larsen", "Moreau", "Brown",
  "Wilson", "Santos", "Fischer", "Ivanova", "Khan", "Haddad", "Berg" }
local COMPANY = { "Northwind", "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries",
  "Wayne Enterprises", "Tyrell", "Cyberdyne", "Soylent", "Vandelay", "Wonka", "Gringotts",
  "Oceanic", "Pied Piper", "Massive Dynamic", "Aperture", "Black Mesa", "Monarch", "Blue Sun",
  "Dunder Mifflin", "Prestige Worldwide", "Bluth Company", "Sterling Cooper", "Los Pollos",
  "Paper Street", "Virtucon", "Duff", "Gekko & Co" }
local TITLES = { "Head of Sales", "VP Marketing", "CTO", "Founder", "Growth Lead", "Operations Manager",
  "Account Executive", "RevOps Lead", "CEO", "Procurement Manager" }
-- from the documented campaign timezone list (which has no America/New_York)
local TZ = { "America/Detroit", "Europe/Isle_of_Man", "America/Chicago", "Europe/Belgrade", "America/Boise" }

local DAY = 86400000

local function slug(s)
  return (s:lower():gsub("[^%w]+", ""))
end

local function schedule(store, name)
  return {
    start_date = null, end_date = null,
    schedules = array{ {
      name = name or "Weekdays",
      timing = { from = "09:00", to = "17:00" },
      days = { ["0"] = false, ["1"] = true, ["2"] = true, ["3"] = true, ["4"] = true, ["5"] = true, ["6"] = false },
      timezone = store:pick(TZ),
    } },
  }
end

local function sequence(topic, steps)
  local s = array{}
  for i = 1, steps do
    s[#s + 1] = {
      type = "email", delay = i == 1 and 0 or 2 + i, delay_unit = "days",
      variants = array{
        { subject = fmt("%s - step %d", topic, i), body = "Hi {{firstName}},\n\n" .. topic .. " ...",
          v_disabled = false },
        { subject = fmt("Quick question on %s", topic:lower()), body = "Hello {{firstName}}, ...", v_disabled = false },
      },
    }
  end
  return array{ { steps = s } }
end

-- the workspace, its members and tags
local function seed_workspace(store, s)
  store.workspace = store:create("workspaces", {
    id = store.workspace_id, name = s.name, owner = store.user_id,
    org_logo_url = null, org_client_domain = null, add_unsub_to_block = true,
    default_opportunity_value = 500, plan_id = "pid_hypergrowth", plan_id_crm = null,
    plan_id_leadfinder = "pid_growth_leads", scheduled_for_removal_at = null,
  })

  -- members
  local roles = { "owner", "admin", "editor", "view" }
  for i, who in ipairs{ "owner@mockworkspace.test", "sam@mockworkspace.test", "alex@mockworkspace.test" } do
    store:create("workspace_members", {
      email = who, user_email = who, user_id = i == 1 and store.user_id or store:uuid(),
      name = { first = who:match("^(%w+)"):gsub("^%l", string.upper), last = "Mock" },
      role = roles[i], permissions = array{}, accepted = true, issuer_id = store.user_id,
    }, 60000)
  end

  -- tags
  local tags = {}
  for _, t in ipairs{ { "Warm", "Warmed-up senders" }, { "Outlook", "Microsoft senders" },
                      { "Q1 push", "Campaigns for the Q1 push" } } do
    tags[#tags + 1] = store:create("custom_tags", { label = t[1], description = t[2] }, 60000)
  end
  s.tags = tags
end

-- sending accounts: mixed health and warmup
local function seed_accounts(store, s)
  local tags = s.tags
  -- sending accounts: mixed health and warmup
  local accounts = {}
  local acc_specs = {
    { "jane", "Jane", "Doe", "getmock.io", 2, 1, 1, 97 },
    { "mark", "Mark", "Lee", "getmock.io", 2, 1, 1, 94 },
    { "sara", "Sara", "Ortiz", "mockmail.co", 3, 1, 1, 88 },
    { "tom", "Tom", "Weber", "mockmail.co", 3, 2, 0, 71 },
    { "ops", "Ops", "Team", "trymock.net", 1, -1, 0, 52 },
    { "eva", "Eva", "Stone", "trymock.net", 1, 1, -2, 63 },
  }
  for i, a in ipairs(acc_specs) do
    local email = a[1] .. "@" .. s.prefix .. a[4]
    local acc = store:create("accounts", {
      email = email, first_name = a[2], last_name = a[3], provider_code = a[5], status = a[6],
      warmup_status = a[7], stat_warmup_score = a[8],
      warmup = { limit = 40, increment = "disabled", reply_rate = 30 },
      daily_limit = 30 + 10 * (i % 3), daily_limit_max = 100, warmup_limit_max = 50, sending_gap = 10,
      enable_slow_ramp = i % 2 == 0, tracking_domain_name = null, tracking_domain_status = null,
      signature = a[2] .. " " .. a[3], reply_to = null, inbox_placement_test_limit = 10,
      setup_pending = false, is_managed_account = false, is_ready_made_account = false,
      status_message = a[6] == -1
        and { code = "EAUTH", command = "AUTH PLAIN", response = "535 Authentication failed" } or nil,
      timestamp_warmup_start = iso(store.last_ms - 40 * DAY),
    }, 3600000)
    accounts[#accounts + 1] = acc
  end
  store:create("custom_tag_mappings", { tag_id = tags[1].id, resource_id = accounts[1].email, resource_type = 1 })
  store:create("custom_tag_mappings", { tag_id = tags[2].id, resource_id = accounts[3].email, resource_type = 1 })
  s.accounts = accounts
end

-- campaigns, a subsequence, lists
local function seed_campaigns(store, s)
  local accounts, tags = s.accounts, s.tags
  -- campaigns
  local camp_specs = {
    { "Q1 Outbound - SaaS founders", 1, 3, { 1, 2, 3 } },
    { "Agency partners EU", 1, 2, { 3, 4 } },
    { "Re-engage churned trials", 2, 2, { 1, 6 } },
    { "Webinar invite (draft)", 0, 1, {} },
  }
  local campaigns = {}
  for _, c in ipairs(camp_specs) do
    local senders = array{}
    for _, i in ipairs(c[4]) do senders[#senders + 1] = accounts[i].email end
    local camp = store:create("campaigns", {
      name = c[1], status = c[2], campaign_schedule = schedule(store), sequences = sequence(c[1], c[3]),
      email_list = senders, email_tag_list = array{}, daily_limit = 50, daily_max_leads = 30,
      email_gap = 10, random_wait_max = 5, text_only = false, first_email_text_only = false,
      open_tracking = true, link_tracking = true, stop_on_reply = true, stop_on_auto_reply = false,
      stop_for_company = false, prioritize_new_leads = false, match_lead_esp = false,
      insert_unsubscribe_header = true, allow_risky_contacts = false, disable_bounce_protect = false,
      pl_value = 500, is_evergreen = false, not_sending_status = null,
      custom_variables = {}, core_variables = {},
    }, 3600000)
    camp.steps = nil
    campaigns[#campaigns + 1] = camp
  end
  store:create("custom_tag_mappings", { tag_id = tags[3].id, resource_id = campaigns[1].id, resource_type = 2 })
  store.hidden.steps = {}
  for i, c in ipairs(camp_specs) do store.hidden.steps[campaigns[i].id] = c[3] end

  -- a subsequence on the first campaign
  store:create("subsequences", {
    parent_campaign = campaigns[1].id, workspace = store.workspace_id, name = "Follow up the interested",
    status = 1, conditions = { lead_activity = array{ 2 }, reply_contains = "pricing" },
    subsequence_schedule = schedule(store, "Subsequence hours"), sequences = sequence("Pricing follow-up", 2),
    daily_limit_mode = "custom", daily_limit = 20, ignore_account_daily_limit = false,
  }, 60000)

  -- lists
  local lists = {}
  for _, n in ipairs{ "Conference leads 2025", "Inbound demo requests", "Partner referrals" } do
    lists[#lists + 1] = store:create("lead_lists", { name = n, has_enrichment_task = false }, 3600000)
  end
  s.campaigns = campaigns
  s.lists = lists
end

-- leads over campaigns and lists
local function seed_leads(store, s)
  local campaigns, lists = s.campaigns, s.lists
  -- leads: three quarters in campaigns, the rest in lists
  local rng = store.rng
  local n_leads = s.leads
  local used = {}
  for i = 1, n_leads do
    local first, last, company = store:pick(FIRST), store:pick(LAST), store:pick(COMPANY)
    local domain = slug(company) .. ".example"
    local local_part = slug(first) .. "." .. slug(last)
    local email = local_part .. "@" .. domain
    local k = 1
    while used[email] do
      k = k + 1
      email = local_part .. k .. "@" .. domain
    end
    used[email] = true
    local camp, list
    local in_camps = n_leads * 3 // 4
    if i <= in_camps then camp = campaigns[(i - 1) % 3 + 1] else list = lists[(i - 1) % 3 + 1] end
    if i <= in_camps and i % 25 == 0 then camp = campaigns[4] end
    local ver = ({ 1, 1, 1, 1, 1, 1, -3, -1, -2, 1 })[rng(10)]
    store:create("leads", {
      campaign = camp and camp.id or null, list_id = list and list.id or null,
      status = 1, email = email, first_name = first, last_name = last, company_name = company,
      job_title = store:pick(TITLES), phone = fmt("+1-555-%04d", rng(0, 9999)),
      website = "https://" .. domain, personalization = null, company_domain = domain,
      pl_value_lead = null, assigned_to = null,
      payload = { source = i % 2 == 0 and "csv" or "api" },
      email_open_count = 0, email_reply_count = 0, email_click_count = 0,
      status_summary = {}, status_summary_subseq = {},
      last_step_from = null, last_step_id = null, last_step_timestamp_executed = null,
      email_opened_step = null, email_opened_variant = null, email_replied_step = null,
      email_replied_variant = null, email_clicked_step = null, email_clicked_variant = null,
      subsequence_id = null, verification_status = ver,
      esp_code = ({ 1, 2, 3, 0 })[rng(4)], upload_method = i % 2 == 0 and "manual" or "api",
      uploaded_by_user = store.user_id, is_website_visitor = false,
    }, rng(5, 90) * 1000)
  end
end

-- One sent step of a lead and what followed it; true when the sequence
-- stops there (bounce, reply, unsubscribe).
local function play_step(store, x, step)
  local lead, rng, t = x.lead, store.rng, x.t
  local function ev(kind, dt) x.ev(kind, step, t + dt) end
  ev("sent", 0)
  lead.last_step_from = x.eacc
  lead.last_step_id = fmt("%d_%d", step - 1, x.variant)
  lead.last_step_timestamp_executed = iso(t)
  lead.status_summary = { lastStep = { from = x.eacc, stepID = lead.last_step_id, timestamp_executed = iso(t) },
    domain_complete = false }
  lead.timestamp_last_contact = iso(t)
  lead.last_contacted_from = x.eacc
  if step == 1 then ev("contacted", 0) end
  if rng() < 0.03 then
    ev("bounce", 60000)
    lead.status = -1
    return true
  end
  if rng() < 0.45 then
    ev("open", 3600000)
    lead.email_open_count = lead.email_open_count + 1
    lead.email_opened_step, lead.email_opened_variant = step, x.variant
    lead.timestamp_last_open = iso(t + 3600000)
    if rng() < 0.2 then
      ev("click", 3700000)
      lead.email_click_count = lead.email_click_count + 1
      lead.email_clicked_step, lead.email_clicked_variant = step, x.variant
      lead.timestamp_last_click = iso(t + 3700000)
    end
  end
  if rng() < 0.06 then
    local auto = rng() < 0.2
    ev(auto and "auto_reply" or "reply", 7200000)
    if auto then return false end
    lead.email_reply_count = lead.email_reply_count + 1
    lead.email_replied_step, lead.email_replied_variant = step, x.variant
    lead.timestamp_last_reply = iso(t + 7200000)
    local interest = ({ 1, 1, 2, -1, 0, 3 })[rng(6)]
    lead.lt_interest_status = interest
    lead.timestamp_last_interest_change = iso(t + 7300000)
    if interest >= 1 then ev("opportunity", 7300000) end
    x.unibox[#x.unibox + 1] = { lead = lead, camp = x.camp, eacc = x.eacc, t = t, step = step, variant = x.variant }
    return true
  elseif rng() < 0.01 then
    ev("unsubscribe", 7200000)
    lead.status = -2
    return true
  end
  return false
end

-- What happened to one lead of a sending campaign, step by step.
local function play_lead(store, s, lead, camp)
  local rng, events = store.rng, store.events
  local steps, senders = store.hidden.steps[camp.id], camp.email_list
  local x = { lead = lead, camp = camp, eacc = senders[(rng(#senders))], unibox = s.unibox }
  local reached = rng(0, steps)
  x.t = s.start + rng(0, 10) * DAY + rng(0, 8) * 3600000
  x.variant = rng(0, 1)
  function x.ev(kind, step, t)
    events[#events + 1] = { kind = kind, lead = lead.id, campaign = camp.id, step = step,
      variant = x.variant, t = t, date = util.date(t), eaccount = x.eacc }
  end
  local stop = false
  for step = 1, reached do
    stop = play_step(store, x, step)
    if stop then break end
    x.t = x.t + (2 + step) * DAY
  end
  if not stop and reached == steps and steps > 0 then
    lead.status = 3
    x.ev("completed", steps, x.t)
  end
  if lead.timestamp_last_contact then lead.timestamp_last_touch = lead.timestamp_last_contact end
end

-- the event log (what happened to campaign leads over 30 days)
local function seed_events(store, s)
  s.start = M.EVENTS_FROM or store.last_ms
  store.events_from = s.start
  s.unibox = {}
  for _, lead in store:coll("leads"):each() do
    local camp = lead.campaign ~= null and store:coll("campaigns"):get(lead.campaign)
    if camp and camp.status ~= 0 then play_lead(store, s, lead, camp) end
  end
end

-- the Unibox
local function seed_unibox(store, s)
  local unibox = s.unibox
  -- the Unibox: the last email we sent each replier and their reply
  for i, u in ipairs(unibox) do
    local thread = store:uuid()
    local seq = store.hidden.steps[u.camp.id]
    local subject = u.camp.sequences[1].steps[math.min(u.step, seq)].variants[u.variant + 1].subject
    local base = {
      thread_id = thread, campaign_id = u.camp.id, lead = u.lead.email, lead_id = u.lead.id,
      eaccount = u.eacc, step = fmt("%d_%d", u.step - 1, u.variant), organization_id = store.workspace_id,
      is_auto_reply = 0, ai_assisted = 0, is_focused = 1, i_status = null, list_id = null,
      subsequence_id = null, ai_agent_id = null, reminder_ts = null, attachment_json = null,
    }
    local out = util.shallow_copy(base)
    out.timestamp_email = iso(u.t)
    out.message_id = fmt("<%s@%s>", store:uuid(), u.eacc:match("@(.+)$"))
    out.subject = subject
    out.from_address_email = u.eacc
    out.to_address_email_list = u.lead.email
    out.body = { text = "Hi " .. u.lead.first_name .. ", ...", html = "<p>Hi " .. u.lead.first_name .. ", ...</p>" }
    out.ue_type = 1
    out.is_unread = 0
    out.content_preview = "Hi " .. u.lead.first_name .. ", ..."
    out.from_address_json = array{ { address = u.eacc, name = "" } }
    out.to_address_json = array{ { address = u.lead.email, name = u.lead.first_name } }
    store:create("emails", out, 1000)
    local reply = util.shallow_copy(base)
    reply.timestamp_email = iso(u.t + 7200000)
    reply.message_id = fmt("<%s@%s>", store:uuid(), u.lead.company_domain)
    reply.subject = "Re: " .. subject
    reply.from_address_email = u.lead.email
    reply.to_address_email_list = u.eacc
    reply.body = { text = "Thanks - tell me more about pricing.", html = "<p>Thanks - tell me more about pricing.</p>" }
    reply.ue_type = 2
    reply.is_unread = i % 3 == 0 and 0 or 1
    reply.i_status = u.lead.lt_interest_status
    reply.content_preview = "Thanks - tell me more about pricing."
    reply.from_address_json = array{ { address = u.lead.email, name = u.lead.first_name } }
    reply.to_address_json = array{ { address = u.eacc, name = "" } }
    store:create("emails", reply, 1000)
  end
end

-- block list, labels, webhooks
local function seed_lists_and_hooks(store, s)
  local campaigns, start = s.campaigns, s.start
  -- block list
  for _, v in ipairs{ "competitor.example", "spamtrap.example", "noreply@bigcorp.example",
                      "legal@acme.example", "donotcontact.example", "ceo@globex.example" } do
    store:create("block_list_entries", { bl_value = v, is_domain = not v:find("@", 1, true) }, 60000)
  end

  -- lead labels (custom interest statuses)
  for i, l in ipairs{ { "Hot lead", "positive" }, { "Needs nurture", "neutral" }, { "Competitor", "negative" } } do
    store:create("lead_labels", {
      label = l[1], interest_status_label = l[2], interest_status = 100 + i,
      description = l[1] .. " (seeded)", use_with_ai = i == 1,
    }, 60000)
  end

  -- webhooks and their delivery log
  local hooks = {}
  for i, h in ipairs{ { "CRM sync", "reply_received" }, { "Slack alerts", "lead_interested" } } do
    hooks[i] = store:create("webhooks", {
      campaign = i == 1 and null or campaigns[1].id, name = h[1],
      target_hook_url = "https://hooks.example/" .. slug(h[1]), event_type = h[2],
      custom_interest_value = null, headers = {}, status = 1, timestamp_error = null,
    }, 60000)
  end
  for i = 1, 24 do
    local ok = i % 6 ~= 0
    local t = start + i * DAY // 2
    store:create("webhook_events", {
      timestamp_created_date = util.date(t), payload = { event_type = hooks[i % 2 + 1].event_type },
      success = ok, retry_count = ok and 0 or 2, will_retry = false,
      webhook_url = hooks[i % 2 + 1].target_hook_url, status_code = ok and 200 or 500,
      error_message = ok and null or "Internal Server Error", timestamp_next_retry = null,
      retry_group_id = null, retry_successful = null, lead_email = null, response_time_ms = 80 + i * 7,
    }, 60000)
  end
end

-- keys, jobs, inbox placement, audit log
local function seed_admin(store, s)
  local accounts, campaigns, lists, start = s.accounts, s.campaigns, s.lists, s.start
  -- API keys (listed masked)
  store:create("api_keys", {
    name = "Default key", scopes = array{ "all:all" }, key = "inst_mock_****0001",
  }, 60000)

  -- finished background jobs
  store:create("background_jobs", {
    type = "import-leads", entity_type = "list", entity_id = lists[1].id,
    data = { total = 500, imported = 500 }, progress = 100, status = "success",
  }, 60000)
  store:create("background_jobs", {
    type = "update-warmup-accounts", entity_type = "workspace", entity_id = store.workspace_id,
    data = { emails = array{ accounts[1].email } }, progress = 100, status = "success",
  }, 60000)

  -- inbox placement
  local ipt = store:create("inbox_placement_tests", {
    name = "Weekly deliverability check", description = "Seeded test", type = 1, sending_method = 1,
    delivery_mode = 1, schedule = { days = { ["1"] = true }, timing = { from = "09:00" }, timezone = "Etc/UTC" },
    campaign_id = campaigns[1].id, email_subject = "Deliverability check", email_body = "Hello",
    emails = array{ accounts[1].email, accounts[3].email }, test_code = "mock-ipt-1", tags = array{},
    text_only = false, recipients = array{}, recipients_labels = array{}, automations = array{},
    status = 1, not_sending_status = null, metadata = {},
  }, 60000)
  for i = 1, 30 do
    local t = start + (i % 10) * DAY
    store:create("inbox_placement_analytics", {
      timestamp_created_date = util.date(t), test_id = ipt.id, is_spam = i % 7 == 0, has_category = i % 5 == 0,
      sender_email = ipt.emails[i % 2 + 1], sender_esp = i % 2 + 1, recipient_email = fmt("seed%02d@inbox.example", i),
      recipient_esp = ({ 1, 2, 12 })[i % 3 + 1], recipient_geo = 1, recipient_type = i % 2 + 1, spf_pass = true,
      dkim_pass = i % 11 ~= 0, dmarc_pass = true, smtp_ip_blacklist_report = {}, authentication_failure_results = {},
      record_type = 1,
    }, 1000)
  end
  for _, d in ipairs{ "getmock.io", "mockmail.co" } do
    store:create("inbox_placement_reports", {
      timestamp_created_date = util.date(start), test_id = ipt.id, domain = d, domain_ip = "192.0.2." .. #d,
      domain_blacklist_count = 0, domain_ip_blacklist_count = d == "mockmail.co" and 1 or 0,
      spam_assassin_score = 1.2, spam_assassin_report = { score = 1.2, rules = array{} },
      blacklist_report = { listed = array{} },
    }, 1000)
  end

  -- audit log
  for i = 1, 40 do
    store:create("audit_logs", {
      timestamp = iso(start + i * 3600000), activity_type = (i % 12) + 1, user_agent = "Mozilla/5.0",
      user_id = store.user_id, user_name = "Owner Mock", ip_address = "198.51.100." .. i, from_api = i % 3 == 0,
      affected_count = i % 4, campaign_id = i % 2 == 0 and campaigns[1].id or null,
      audit_metadata = {},
    }, 60000)
  end
end

-- templates, sales flows, DFY, CRM numbers
local function seed_templates(store, s)
  local campaigns, lists = s.campaigns, s.lists
  -- templates, sales flows, DFY, CRM numbers, workspace group
  store:create("email_templates", { name = "Intro", subject = "Quick intro", body = "Hi {{firstName}}, ..." }, 60000)
  store:create("email_templates", { name = "Breakup", subject = "Closing the loop",
    body = "Hi {{firstName}}, ..." }, 60000)
  store:create("custom_prompt_templates", {
    name = "Personalised opener", description = "One-line opener from the website", category = 1,
    properties = array{ { name = "website", type = "column" } }, is_public = false,
    prompt = "Write a one-line opener for {{website}}",
    model_version = "gpt-4o", template_type = "custom", from_shared = false, like_count = 0, execution_count = 12,
    liked = false, created_by_instantly = false, creator = {},
  }, 60000)
  store:create("sales_flows", {
    name = "Inbound triage", is_default = true, queries = array{ { field = "lt_interest_status", value = 1 } },
    list_id = lists[2].id, campaign_id = campaigns[1].id, list_name = lists[2].name, campaign_name = campaigns[1].name,
  }, 60000)
  store:create("dfy_email_account_orders", {
    domain = "getmock-mail.com", forwarding_domain = "getmock.io", is_pre_warmed_up = true,
    timestamp_cancelled = null,
  }, 60000)
  for _, n in ipairs{ "olivia", "noah" } do
    store:coll("dfy_accounts"):insert({
      id = store:uuid(), domain = "getmock-mail.com", email = n .. "@getmock-mail.com", email_provider = 1,
      first_name = n:gsub("^%l", string.upper), last_name = "Mock", is_pre_warmed_up = true,
      timestamp_cancelled = null, timestamp_created = iso(store:tick(60000)), password = "mock-" .. n .. "-pw",
    }, store.last_ms)
  end
  store:create("crm_actions", {
    id = "pn_" .. store:uuid():sub(1, 8), phone_number = "+15550100", country = "US", locality = "Austin",
    subscription_id = "sub_mock1", twilio_sid = "PN" .. store:uuid():gsub("-", ""):sub(1, 32),
    renewal_date = iso(store.last_ms + 30 * DAY), price = 1.15,
  }, 60000)
end

--- Seed `store` as one workspace. opts: name ("Mock Workspace"), leads
-- (2000), parent (the agency store of a sub-workspace), prefix (put before
-- the sending accounts' domains, so no two workspaces share an account).
function M.build(store, opts)
  opts = opts or {}
  store.seeding = true
  store.events = {}
  store.workspace_id = store:uuid()
  store.user_id = store:uuid()
  store.parent_id = opts.parent and opts.parent.workspace_id
  store.hidden = { account_secrets = {}, api_keys = {} }

  local s = { name = opts.name or "Mock Workspace", prefix = opts.prefix or "", leads = opts.leads or 2000 }
  for _, step in ipairs{ seed_workspace, seed_accounts, seed_campaigns, seed_leads, seed_events, seed_unibox,
                         seed_lists_and_hooks, seed_admin, seed_templates } do
    step(store, s)
  end
  store.seeding = false
end

-- The agency's sub-workspaces: name and size of each.
M.CHILDREN = { { name = "Mock Client A", leads = 240, prefix = "client-a-" },
  { name = "Mock Client B", leads = 160, prefix = "client-b-" } }

--- The seeded agency store and its sub-workspace stores (a list), each
-- with its own data; the agency lists them as accepted group members,
-- plus one invitation still pending (a workspace that cannot be acted on).
function M.group(seed)
  local agency = state.new(seed)
  M.build(agency)
  local children = {}
  for i, spec in ipairs(M.CHILDREN) do
    local child = state.new(seed * 1009 + i)
    M.build(child, { name = spec.name, leads = spec.leads, parent = agency, prefix = spec.prefix })
    children[i] = child
  end
  agency.seeding = true
  for _, child in ipairs(children) do
    agency:create("workspace_group_members", {
      admin_workspace_id = agency.workspace_id, sub_workspace_id = child.workspace_id, status = "accepted",
      admin_workspace_name = agency.workspace.name, sub_workspace_name = child.workspace.name,
    }, 60000)
  end
  agency:create("workspace_group_members", {
    admin_workspace_id = agency.workspace_id, sub_workspace_id = agency:uuid(), status = "pending",
    admin_workspace_name = agency.workspace.name, sub_workspace_name = "Invited Client",
  }, 60000)
  agency.seeding = false
  return agency, children
end

return M
