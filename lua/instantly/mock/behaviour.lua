--- What each operation does in the mock, as data: one row per operation id,
-- served by the generic handlers in instantly.mock.handlers.generic.
--
-- kind: list | get | create | update | delete | action | count | all | static
--       | bulk | set_where | delete_where | copy | tally | job_status
--       | view (analytics, views.lua)
--   coll      collection (default: the operation's entity)
--   label     "<label> not found" on a 404 (default: the entity's name); a
--             label with %s is the whole message, the key in its place
--   key       the path parameter naming the object (default: the first);
--             "workspace" for the workspace itself; key_src = "body" reads
--             it from the body
--   src       where filters and refs read request values: the query
--             (default), "body" or "params" (the path parameters)
--   filters   list/count/tally/delete_where: request values tested against
--             each object (the forms are listed in generic.lua)
--   refs      { field, coll, label }: a request value that must name an
--             existing object (404)
--   one_of, non_empty, members, unique
--             body checks (400): exactly one of the fields; a string or list
--             that must not be empty; { field, coll, what }: every value of a
--             body list names an object; { field, message }: a create refuses
--             a value an object already has (ci = true: in any case)
--   checks    names of special validations (M.checks of the handler modules)
--   fields    the body fields create/update write (default: those the
--             entity's schema has); defaults: values before the body's;
--             from_store: fields copied from the store (workspace_id ...)
--   set/unset action: fields set to constants / left out; stamp: date-times
--             that many seconds from now; touch = false keeps timestamp_updated
--   omit      list/get: { flag, field, when } leaves field out when the query
--             flag is `when`; project (list): { out = field } shows only those
--   number    create: { field, from = n } numbers the new object one above
--             the collection's highest field (and n)
--   matches   create/update: { field = { body_field, pattern } } sets field to
--             whether the body's string matches the Lua pattern
--   poll      get: the object may be armed (generic.later) to change after
--             some reads; each read counts
--   keys      bulk: the body field listing the keys; remove, or set with
--             found/missing naming the answer's two lists
--   limit, answer  delete_where: the request value capping how many go;
--             answer = "count" answers { count = n }
--   name, from_body  copy: { body = field, suffix = text } names the copy; body
--             fields written over the source's (action: { field = body_field })
--   cascade   delete: { coll, field } objects whose field held the key go too
--   clears    update: { body_flag = { fields } } set to null when the flag is true;
--             rename = { body_field = field } writes a body field under another name
--   count, percent, echo, flags, by, each, wrap
--             tally: see generic.lua (conditions such as "a&!b", "f=1,2")
--   value     static: the answer; store_value(path) and size(coll[, from])
--             placeholders are filled per request
--   status    the answer's status (default 200)
--
-- Operations with no row whose shape is plain CRUD over their entity
-- (GET/PATCH/DELETE /things/{id}, GET/POST /things) get the matching
-- generic kind; those whose behaviour is truly special are functions in
-- handlers/<area>.lua, each module saying why.
-- @module instantly.mock.behaviour

local json = require "instantly.mock.json"
local state = require "instantly.mock.state"
local util = require "instantly.mock.util"

local null, array = json.null, json.array

local CAMPAIGN_FIELDS = { "name", "campaign_schedule", "pl_value", "is_evergreen", "sequences", "email_gap",
  "random_wait_max", "text_only", "first_email_text_only", "email_list", "daily_limit", "stop_on_reply",
  "email_tag_list", "link_tracking", "open_tracking", "stop_on_auto_reply", "daily_max_leads",
  "prioritize_new_leads", "auto_variant_select", "match_lead_esp", "stop_for_company",
  "insert_unsubscribe_header", "allow_risky_contacts", "disable_bounce_protect",
  "limit_emails_per_company_override", "cc_list", "bcc_list", "owned_by", "ai_sdr_id", "provider_routing_rules" }
local CAMPAIGN_PATCH = {}
for _, f in ipairs(CAMPAIGN_FIELDS) do
  if f ~= "ai_sdr_id" then CAMPAIGN_PATCH[#CAMPAIGN_PATCH + 1] = f end
end

local WEBHOOK_FIELDS = { "campaign", "name", "target_hook_url", "event_type", "custom_interest_value", "headers" }
local CAMPAIGN_REF = { "campaign", "campaigns", "Campaign" }
local SENDERS = { "email_list", "accounts", "an account" }

-- a block list value without an @ is a domain
local NOT_EMAIL = { "bl_value", "^[^@]*$" }
local function search(param, fields) return { param, search = fields } end
-- Placeholders in a static answer (generic.lua fills them per request).
local function store_value(path) return { ["$store"] = path } end
local function size(coll, from) return { ["$count"] = coll, from = from } end
local WORKSPACE_ID = store_value("workspace_id")

-- Billing: one plan, its period ending 40 days after the seeded clock.
local PERIOD_END = util.iso(state.BASE_MS + 40 * 86400000)
local function subscription(product, kind, price, price_id)
  return { workspace_id = WORKSPACE_ID, interval = "month", quantity = 1, product_id = product, product_type = kind,
    plan_type = "plt_primary", current_period_end = PERIOD_END, cancel_at_time = null,
    price_in_dollars = price, price_id = price_id }
end

-- Inbox placement rows: spam, else in a category tab, else the inbox.
local IPA_FILTERS = { { "date_from", after = "*" }, { "date_to", before = "*" }, { "recipient_geo" },
  { "recipient_type" }, { "recipient_esp" }, { "sender_email" } }
local function ipa_filters(extra)
  local out = { extra }
  for i, f in ipairs(IPA_FILTERS) do out[i + 1] = f end
  return out
end
local SPAM, CATEGORY, INBOX = "is_spam", "has_category&!is_spam", "!is_spam&!has_category"
local TEST_REF = { "test_id", "inbox_placement_tests", "Inbox placement test" }
local EVENT_RANGE = { { "from", after = "*" }, { "to", before = "*" } }
local DELIVERIES = { total_events = "*", successful_events = "success", failed_events = "!success" }
local DELIVERY_RATES = { success_rate = "success" }

-- Analytics views: "kind" counts events, "kind+" distinct leads,
-- "$opportunity" the opportunities' value, a number is a constant.
local CAMPAIGN_COUNTERS = {
  open_count = "open", open_count_unique = "open+", open_count_unique_by_step = "open",
  link_click_count = "click", link_click_count_unique = "click+", link_click_count_unique_by_step = "click",
  reply_count = "reply", reply_count_unique = "reply+", reply_count_unique_by_step = "reply",
  reply_count_automatic = "auto_reply", reply_count_automatic_unique = "auto_reply+",
  reply_count_automatic_unique_by_step = "auto_reply",
  bounced_count = "bounce", unsubscribed_count = "unsubscribe", completed_count = "completed",
  emails_sent_count = "sent", contacted_count = "contacted+", new_leads_contacted_count = "contacted+",
  total_opportunities = "opportunity", total_opportunity_value = "$opportunity",
}
local OVERVIEW = { total_interested = "opportunity", total_meeting_booked = 0, total_meeting_completed = 0,
  total_closed = 0 }
for k, v in pairs(CAMPAIGN_COUNTERS) do OVERVIEW[k] = v end
local DAILY = { sent = "sent", contacted = "contacted+", new_leads_contacted = "contacted+", opened = "open",
  unique_opened = "open+", replies = "reply", unique_replies = "reply+", replies_automatic = "auto_reply",
  unique_replies_automatic = "auto_reply+", clicks = "click", unique_clicks = "click+",
  opportunities = "opportunity", unique_opportunities = "opportunity+" }
local ACCOUNT_DAILY = { bounced = "bounce" }
for k, v in pairs(DAILY) do ACCOUNT_DAILY[k] = v end
local STEPS = { sent = "sent", opened = "open", unique_opened = "open+", replies = "reply", unique_replies = "reply+",
  replies_automatic = "auto_reply", unique_replies_automatic = "auto_reply+", clicks = "click",
  unique_clicks = "click+" }

return {
  -- Campaigns and subsequences
  listCampaign = { kind = "list", filters = { { "status" }, search("search", { "name" }),
    { "tag_ids", tag = "id" }, { "ai_sales_agent_id", field = "ai_sdr_id" } } },
  createCampaign = { kind = "create", fields = CAMPAIGN_FIELDS, checks = { "schedule" }, members = { SENDERS },
    defaults = { status = 0, not_sending_status = null, custom_variables = {}, core_variables = {},
      open_tracking = true } },
  patchCampaign = { kind = "update", fields = CAMPAIGN_PATCH, checks = { "schedule" }, members = { SENDERS } },
  activateCampaign = { kind = "action", checks = { "has_steps" }, set = { status = 1, not_sending_status = null } },
  pauseCampaign = { kind = "action", set = { status = 2 } },
  -- a copy starts as a draft
  duplicate = { kind = "copy", set = { status = 0, not_sending_status = null },
    name = { body = "name", suffix = " (copy)" } },
  createFromExport = { kind = "copy", set = { status = 0, not_sending_status = null },
    name = { suffix = " (imported)" } },
  duplicateSubsequence = { kind = "copy", refs = { { "parent_campaign", "campaigns", "Parent campaign" } },
    set = { status = 0 }, from_body = { "parent_campaign", "name" } },
  exportCampaign = { kind = "get" },
  shareCampaign = { kind = "action", status = 204, touch = false },
  countLaunched = { kind = "count", coll = "campaigns", filters = { { field = "status", ne = 0 } } },
  deleteCampaign = { kind = "delete", cascade = { { "subsequences", "parent_campaign" } } },
  listCampaignSubsequence = { kind = "list", refs = { { "parent_campaign", "campaigns", "Campaign" } },
    filters = { { "parent_campaign" }, search("search", { "name" }) } },
  createCampaignSubsequence = { kind = "create",
    refs = { { "parent_campaign", "campaigns", "Parent campaign" } }, from_store = { workspace = "workspace_id" },
    fields = { "parent_campaign", "name", "conditions", "subsequence_schedule", "sequences", "daily_limit_mode",
      "daily_limit", "ignore_account_daily_limit" },
    defaults = { status = 0, daily_limit = null, ignore_account_daily_limit = false } },
  pauseSubsequence = { kind = "action", set = { status = 2 }, touch = false },
  resumeSubsequence = { kind = "action", set = { status = 1 }, touch = false },

  -- Analytics
  getCampaignAnalytics = { kind = "view", group = "campaign", campaigns = { "id", "ids" },
    counters = CAMPAIGN_COUNTERS },
  getCampaignAnalyticsOverview = { kind = "view", campaigns = { "id", "ids" }, counters = OVERVIEW,
    flags = { expand_crm_events = { total_interested_crm = 0, total_meeting_booked_crm = 0 } } },
  getDailyCampaignAnalytics = { kind = "view", group = "date", campaigns = { "campaign_id" }, counters = DAILY },
  getCampaignStepsAnalytics = { kind = "view", group = "step", campaigns = { "campaign_id" }, counters = STEPS,
    flags = { include_opportunities_count = { opportunities = "opportunity",
      unique_opportunities = "opportunity+" } } },
  getDailyAccountAnalytics = { kind = "view", group = "account_date", counters = ACCOUNT_DAILY },

  -- Accounts
  createAccount = { kind = "create", unique = { "email", "Account %s already exists" },
    fields = { "email", "first_name", "last_name", "provider_code", "warmup", "daily_limit", "sending_gap",
      "enable_slow_ramp", "tracking_domain_name", "tracking_domain_status", "signature", "reply_to",
      "inbox_placement_test_limit" },
    defaults = { status = 1, warmup_status = 0, stat_warmup_score = null, setup_pending = false,
      warmup = { limit = 10, increment = "disabled", reply_rate = 30 }, daily_limit = 30, daily_limit_max = 100,
      warmup_limit_max = 50, sending_gap = 10, enable_slow_ramp = false, tracking_domain_name = null,
      tracking_domain_status = null, signature = null, reply_to = null, inbox_placement_test_limit = 10 } },
  patchAccount = { kind = "update", clears = { remove_tracking_domain = { "tracking_domain_name",
      "tracking_domain_status" } },
    fields = { "first_name", "last_name", "warmup", "daily_limit", "tracking_domain_name", "tracking_domain_status",
      "enable_slow_ramp", "inbox_placement_test_limit", "sending_gap", "signature", "reply_to" } },
  pauseAccount = { kind = "action", set = { status = 2 } },
  resumeAccount = { kind = "action", set = { status = 1 }, unset = { "status_message" } },
  markAccountFixed = { kind = "action", set = { status = 1 }, unset = { "status_message" } },
  -- the campaigns sending from an account
  getAccountCampaignMapping = { kind = "list", coll = "campaigns", src = "params",
    refs = { { "email", "accounts", "Account" } }, filters = { { "email", has = "email_list" } },
    project = { campaign_id = "id", campaign_name = "name", timestamp_created = "timestamp_created",
      status = "status" } },
  pauseAccountsBulk = { kind = "bulk", coll = "accounts", keys = "emails", set = { status = 2 },
    found = "paused_emails", missing = "failed_emails" },

  -- Leads, lists, jobs, tags, block list
  moveLeadToSubsequence = { kind = "action", key = "id", key_src = "body", label = "Lead",
    refs = { { "subsequence_id", "subsequences", "Subsequence" } }, from_body = { subsequence_id = "subsequence_id" },
    stamp = { timestamp_added_subsequence = 0 }, touch = false },
  removeLeadFromSubsequence = { kind = "action", key = "id", key_src = "body", label = "Lead",
    set = { subsequence_id = null, timestamp_added_subsequence = null }, touch = false },
  bulkDeleteLeads = { kind = "delete_where", coll = "leads", src = "body", one_of = { "campaign_id", "list_id" },
    refs = { { "campaign_id", "campaigns", "Campaign" }, { "list_id", "lead_lists", "Lead list" } },
    filters = { { "campaign_id", field = "campaign" }, { "list_id" }, { "status" },
      { "ids", csv = "id", empty = false } },
    limit = "limit", answer = "count" },
  deleteLeadList = { kind = "delete", cascade = { { "leads", "list_id" } } },
  getVerificationStats = { kind = "tally", coll = "leads", src = "params",
    refs = { { "id", "lead_lists", "Lead list" } }, filters = { { "id", field = "list_id" } },
    count = { total_leads = "*", stats = { verified = "verification_status=1",
      invalid = "verification_status=-1", risky = "verification_status=-2,-4", catch_all = "verification_status=-3",
      verification_job_pending_user = "verification_status=11", job_change = 0,
      verification_job_pending_leadfinder = 0 } } },
  getBackgroundJob = { kind = "job_status", label = "Background job" },
  listBackgroundJob = { kind = "list", filters = { { "ids", csv = "id" }, { "included_ids", csv = "id" },
    { "excluded_ids", csv = "id", negate = true }, { "type" }, { "entity_type" }, { "entity_id" }, { "status" } } },
  listCustomTag = { kind = "list", filters = { search("search", { "label", "description" }),
    { "tag_ids", csv = "id" }, { "resource_ids", via = { "custom_tag_mappings", "resource_id", "tag_id" } } } },
  deleteCustomTag = { kind = "delete", cascade = { { "custom_tag_mappings", "tag_id" } } },
  listCustomTagMapping = { kind = "list", filters = { { "resource_ids", csv = "resource_id" } } },
  listBlockListEntry = { kind = "list", filters = { { "domains_only", flag = "is_domain" },
    search("search", { "bl_value" }) } },
  deleteallBlockListEntry = { kind = "delete_where", coll = "block_list_entries",
    filters = { { "domains_only", flag = "is_domain" }, search("search", { "bl_value" }) } },
  createBlockListEntry = { kind = "create", checks = { "bl_value" }, fields = { "bl_value" },
    unique = { "bl_value", "Block list entry %s already exists", ci = true }, matches = { is_domain = NOT_EMAIL } },
  patchBlockListEntry = { kind = "update", label = "Block list entry", checks = { "bl_value" },
    fields = { "bl_value" }, matches = { is_domain = NOT_EMAIL }, touch = false },
  deletebulkBlockListEntry = { kind = "bulk", coll = "block_list_entries", keys = "ids", remove = true },
  -- lead labels: custom interest statuses numbered from 101
  createLeadLabel = { kind = "create", unique = { "label", "A label named %s already exists", ci = true },
    fields = { "label", "interest_status_label", "description", "use_with_ai" },
    defaults = { description = null, use_with_ai = false }, number = { "interest_status", from = 100 } },

  checkVerificationStatus = { kind = "get", poll = true, label = "No verification found for %s" },

  -- Emails
  patchEmail = { kind = "update", fields = { "is_unread", "reminder_ts" }, touch = false },
  countUnreadEmails = { kind = "count", coll = "emails", filters = { { field = "is_unread", value = 1 } } },
  markThreadAsRead = { kind = "set_where", coll = "emails", filters = { { "thread_id" } }, set = { is_unread = 0 },
    none = "Thread not found", value = { success = true } },

  -- Workspace, members, groups
  getWorkspacePlanDetails = { kind = "static", value = {
    organization_id = WORKSPACE_ID, organization_name = store_value("workspace.name"),
    subscriptions = {
      outreach = { plan_name = "Hypergrowth", addons_qty = 0, total_lead_limit = 25000,
        current_lead_count = size("leads"), base_lead_limit = 25000, interval = "month",
        current_period_end = PERIOD_END, cancel_at_time = null, price_in_dollars = 97, product_id = "pid_hypergrowth" },
      credits = { plan_name = "Growth Leads", total_credits = 1000,
        available_credits = size("email_verification", 1000), interval = "month", current_period_end = PERIOD_END,
        product_id = "pid_growth_leads" },
      crm = null, website_visitors = null, inbox_placement = null,
    },
    addons = { outreach = array{}, credits = array{} } } },
  getWorkspaceSubscriptionDetails = { kind = "static", value = { all_subs_cancelled = false, subscriptions = array{
    subscription("pid_hypergrowth", "prt_outreach", 97, "price_mock_hypergrowth"),
    subscription("pid_growth_leads", "prt_leadfinder", 47, "price_mock_leads") } } },
  getWorkspace = { kind = "get", coll = "workspaces", key = "workspace" },
  patchWorkspace = { kind = "update", coll = "workspaces", key = "workspace", non_empty = { "name" },
    fields = { "name", "org_logo_url" } },
  addWorkspaceAgencyDomain = { kind = "update", coll = "workspaces", key = "workspace", checks = { "domain_name" },
    fields = { "domain" }, rename = { domain = "org_client_domain" }, touch = false },
  deleteWorkspaceDomain = { kind = "action", coll = "workspaces", key = "workspace", checks = { "has_domain" },
    set = { org_client_domain = null }, touch = false },
  createWorkspaceGroupMember = { kind = "create", checks = { "not_self" }, fields = { "sub_workspace_id" },
    unique = { "sub_workspace_id", "Sub-workspace is already in the group" },
    defaults = { status = "pending", sub_workspace_name = null },
    from_store = { admin_workspace_id = "workspace_id", admin_workspace_name = "workspace.name" } },
  scheduleWorkspaceRemoval = { kind = "action", coll = "workspaces", key = "workspace",
    stamp = { scheduled_for_removal_at = 30 * 86400 }, touch = false },
  cancelWorkspaceRemoval = { kind = "action", coll = "workspaces", key = "workspace",
    set = { scheduled_for_removal_at = null }, touch = false },
  listWorkspaceMember = { kind = "list", filters = { { "accepted" }, search("search", { "email", "user_email" }) } },
  patchWorkspaceMember = { kind = "update", fields = { "role" }, touch = false },

  -- Webhooks and their event log
  createWebhook = { kind = "create", refs = { CAMPAIGN_REF }, checks = { "hook_url" }, fields = WEBHOOK_FIELDS,
    defaults = { campaign = null, name = null, event_type = "all_events", custom_interest_value = null,
      headers = {}, status = 1, timestamp_error = null } },
  patchWebhook = { kind = "update", refs = { CAMPAIGN_REF }, checks = { "hook_url" }, fields = WEBHOOK_FIELDS,
    touch = false },
  listWebhook = { kind = "list", filters = { { "campaign" }, { "event_type" } } },
  resumeWebhook = { kind = "action", set = { status = 1, timestamp_error = null }, touch = false },
  listWebhookEvent = { kind = "list", filters = { { "from", after = "*" }, { "to", before = "*" }, { "success" },
    search("search", { "webhook_url", "lead_email" }) } },

  getWebhookEventsSummary = { kind = "tally", filters = EVENT_RANGE, count = DELIVERIES,
    percent = { success_rate = "success", failure_rate = "!success" } },
  getWebhookEventsSummaryByDate = { kind = "tally", filters = EVENT_RANGE,
    by = { { "date", "timestamp_created_date" } }, count = DELIVERIES, percent = DELIVERY_RATES, wrap = "items" },

  -- Audit log, inbox placement, CRM numbers
  listAuditLog = { kind = "list", filters = { { "activity_type" },
    search("search", { "user_name", "ip_address", "user_agent" }),
    { "start_date", after = "timestamp" }, { "end_date", before = "timestamp" } } },
  listInboxPlacementAnalytics = { kind = "list",
    refs = { { "test_id", "inbox_placement_tests", "Inbox placement test" } },
    filters = { { "test_id" }, { "recipient_geo" }, { "recipient_type" }, { "recipient_esp" }, { "sender_email" },
      { "date_from", after = "*" }, { "date_to", before = "*" } } },
  getInboxPlacementAnalyticsStatsByTestId = { kind = "tally", src = "body", filters = IPA_FILTERS,
    each = { "test_ids", "test_id" },
    count = { count = "*", spam_count = SPAM, inbox_count = INBOX, category_count = CATEGORY },
    percent = { spam_percent = SPAM, inbox_percent = INBOX, category_percent = CATEGORY } },
  getInboxPlacementAnalyticsStatsByDate = { kind = "tally", src = "body", refs = { TEST_REF },
    filters = ipa_filters{ "test_id" }, by = { "timestamp_created_date" },
    count = { sent_count = "*", received_count = "*", spam_count = SPAM, inbox_count = INBOX,
      category_count = CATEGORY } },
  getInboxPlacementAnalyticsDeliverabilityInsights = { kind = "tally", src = "body", refs = { TEST_REF },
    filters = ipa_filters{ "test_id" }, by = { "sender_esp", "recipient_esp" },
    echo = { test_id = "test_id", from = "date_from", to = "date_to" },
    percent = { spam_percentage = SPAM, category_percentage = CATEGORY, inbox_percentage = INBOX },
    flags = { show_previous = { echo = { previous_from = "previous_date_from", previous_to = "previous_date_to" },
      count = { prev_spam_percentage = 0, prev_inbox_percentage = 0, prev_category_percentage = 0 } } } },
  createInboxPlacementTest = { kind = "create", non_empty = { "emails" },
    members = { { "emails", "accounts", "an account" } }, refs = { { "campaign_id", "campaigns", "Campaign" } },
    defaults = { status = 1, metadata = {}, recipients = array{} } },
  getInboxPlacementTest = { kind = "get", label = "Inbox placement test",
    omit = { { "with_metadata", "metadata", false } } },
  listInboxPlacementBlacklistAndSpamAssassinReport = { kind = "list",
    refs = { { "test_id", "inbox_placement_tests", "Inbox placement test" } }, filters = { { "test_id" } },
    omit = { { "skip_spam_assassin_report", "spam_assassin_report", true },
      { "skip_blacklist_report", "blacklist_report", true } } },
  getInboxPlacementTestESPOptions = { kind = "static", value = array{
    { region = "North America", sub_region = "US", type = "professional", esp = "Google" },
    { region = "North America", sub_region = "US", type = "professional", esp = "Outlook" },
    { region = "North America", sub_region = "US", type = "personal", esp = "Gmail" },
    { region = "Europe", sub_region = "DE", type = "personal", esp = "GMX" },
    { region = "Europe", sub_region = "FR", type = "personal", esp = "Orange" },
    { region = "Asia", sub_region = "JP", type = "personal", esp = "Yahoo Japan" } } },
  listDFYEmailAccountOrdersAccounts = { kind = "list", coll = "dfy_accounts",
    omit = { { "with_passwords", "password", false } } },
  listPhoneNumbers = { kind = "all", coll = "crm_actions" },
  deletePhoneNumber = { kind = "delete", coll = "crm_actions", label = "Phone number" },
}
