--- Which columns the CLI's table view shows for each kind of record.
-- Presentation only: the entity data says what fields exist; this says
-- which few of them a person wants to see side by side. Anything not named
-- here falls back to a guess from the entity's schema.
-- @module instantly.cli.columns

local M = {}

-- By record entity name (the catalog's response.item).
M.by_item = {
  ["Campaign"] = { "id", "name", "status", "daily_limit", "timestamp_created" },
  ["Lead"] = { "id", "email", "first_name", "last_name", "company_name", "status", "lt_interest_status" },
  ["Account"] = { "email", "first_name", "last_name", "status", "warmup_status", "stat_warmup_score", "daily_limit" },
  ["Email"] = { "id", "timestamp_email", "from_address_email", "subject", "is_unread", "i_status" },
  ["Lead List"] = { "id", "name", "has_enrichment_task", "timestamp_created" },
  ["Background Job"] = { "id", "type", "status", "progress", "created_at" },
  ["Webhook"] = { "id", "name", "event_type", "target_hook_url", "status" },
  ["Webhook Event"] = { "id", "timestamp_created", "lead_email", "success", "status_code", "retry_count" },
  ["Custom Tag"] = { "id", "label", "description" },
  ["Lead Label"] = { "id", "label", "interest_status_label", "interest_status" },
  ["Block List Entry"] = { "id", "bl_value", "is_domain", "timestamp_created" },
  ["API Key"] = { "id", "name", "scopes", "timestamp_created" },
  ["Audit Log"] = { "id", "timestamp", "activity_type", "user_name", "ip_address", "affected_count" },
  ["Workspace Member"] = { "id", "email", "role", "accepted" },
}

-- By "entity.method" for operations whose rows are not entity records.
M.by_op = {
  ["analytics.campaign"] = { "campaign_name", "campaign_status", "leads_count", "contacted_count",
    "emails_sent_count", "open_count", "reply_count", "bounced_count", "total_opportunities" },
  ["analytics.campaign_daily"] = { "date", "sent", "contacted", "opened", "replies", "clicks", "opportunities" },
  ["analytics.campaign_steps"] = { "step", "variant", "sent", "opened", "replies", "clicks", "opportunities" },
  ["analytics.account_daily"] = { "date", "email_account", "sent", "bounced", "contacted", "new_leads_contacted" },
}

local PREFERRED = { "id", "name", "email", "label", "title", "subject", "status", "type",
  "timestamp_created" }

--- Column names for `rows`, given the operation and the record entity
-- (either may be nil). `fields` is the entity's schema field list.
function M.pick(op_key, item, fields, rows)
  local want = (op_key and M.by_op[op_key]) or (item and M.by_item[item])
  local present = {}
  for _, r in ipairs(rows) do
    if type(r) == "table" then
      for k, v in pairs(r) do
        if type(k) == "string" and type(v) ~= "table" then present[k] = true end
      end
    end
  end
  local cols = {}
  if want then
    for _, c in ipairs(want) do
      if present[c] then cols[#cols + 1] = c end
    end
    if #cols > 0 then return cols end
  end
  local seen = {}
  local function add(c)
    if present[c] and not seen[c] and #cols < 7 then
      seen[c] = true
      cols[#cols + 1] = c
    end
  end
  for _, c in ipairs(PREFERRED) do add(c) end
  for _, f in ipairs(fields or {}) do add(f.name) end
  local rest = {}
  for k in pairs(present) do if not seen[k] then rest[#rest + 1] = k end end
  table.sort(rest)
  for _, c in ipairs(rest) do add(c) end
  return cols
end

return M
