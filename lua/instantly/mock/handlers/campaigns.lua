--- Campaign operations whose behaviour is more than a row of data:
-- copies (which reset state), variables merged into a map, the sending
-- diagnosis computed from accounts and leads, and the search by contact.
-- @module instantly.mock.handlers.campaigns

local common = require "instantly.mock.handlers.common"
local json = require "instantly.mock.json"

local array, null, err = json.array, json.null, common.err

local M, checks = {}, {}
M.checks = checks

function checks.schedule(ctx)
  local s = (ctx.body or {}).campaign_schedule
  local list = s and s.schedules
  if list ~= nil and type(list) ~= "table" then return 400, "body/campaign_schedule/schedules must be array" end
  for i, sch in ipairs(list or {}) do
    local where = "body/campaign_schedule/schedules/" .. (i - 1)
    if type(sch) ~= "table" then return 400, where .. " must be object" end
    local t = sch.timing
    if t ~= nil and (type(t) ~= "table" or not tostring(t.from):match("^%d%d:%d%d$")
        or not tostring(t.to):match("^%d%d:%d%d$")) then
      return 400, where .. "/timing must have from and to as HH:MM"
    end
  end
end

function checks.has_steps(ctx)
  local c = ctx.store:coll("campaigns"):get(ctx.params.id)
  local steps = c and c.sequences and c.sequences[1] and c.sequences[1].steps
  if c and (not steps or #steps == 0) then
    return 400, "Campaign has no sequence steps; add at least one email before activating"
  end
end

-- New names join the map with an empty value; existing ones keep theirs.
function M.addVariables(ctx)
  local c = ctx.store:coll("campaigns"):get(ctx.params.id)
  if not c then return err(404, "Campaign not found") end
  if c.custom_variables == null then c.custom_variables = {} end
  for i, v in ipairs(ctx.body and ctx.body.variables or {}) do
    if type(v) ~= "string" or v == "" then
      return err(400, "body/variables/" .. (i - 1) .. " must be a non-empty string")
    end
    if c.custom_variables[v] == nil then c.custom_variables[v] = "" end
  end
  c.timestamp_updated = ctx.store:now_iso()
  return 200, c
end

local STATUS_REASON = { [0] = "campaign_draft", [2] = "campaign_paused", [3] = "campaign_completed",
  [4] = "campaign_running_subsequences", [-99] = "campaign_account_suspended",
  [-1] = "campaign_accounts_unhealthy", [-2] = "campaign_bounce_protect" }

local function health(store, c)
  local healthy, total = 0, 0
  for _, e in ipairs(c.email_list or {}) do
    total = total + 1
    local a = store:coll("accounts"):get(e)
    if a and a.status == 1 then healthy = healthy + 1 end
  end
  local cid = c.parent_campaign or c.id
  local waiting = store:coll("leads"):count(function(l) return l.campaign == cid and l.status == 1 end)
  local status = (total == 0 and "no_accounts_available") or (healthy == 0 and "all_accounts_unhealthy")
    or (waiting == 0 and "waiting_for_leads") or "healthy"
  return status, healthy, total, waiting
end

-- Why a campaign (or a subsequence, through its parent) sends or not.
local function sending_status(ctx, c, subsequence_id)
  local summary = ctx.query.with_ai_summary and { text = "Mock summary: status " .. tostring(c.status) } or nil
  if c.status ~= 1 then
    return 200, { diagnostics = null,
      summary = { status = STATUS_REASON[c.status] or "campaign_paused", summary = summary } }
  end
  local store = ctx.store
  local status, healthy, total, waiting = health(store, c)
  return 200, { summary = summary, diagnostics = {
    campaign_id = c.parent_campaign or c.id, subsequence_id = subsequence_id or null,
    last_updated = store:now_iso(), status = status, issue_tracking = array{},
    accounts_summary = { total = total, healthy = healthy, unhealthy = total - healthy },
    leads_status = { active = waiting },
  } }
end

function M.getCampaignSendingStatus(ctx)
  local c = ctx.store:coll("campaigns"):get(ctx.params.id)
  if not c then return err(404, "Campaign not found") end
  return sending_status(ctx, c)
end

function M.getSubsequenceSendingStatus(ctx)
  local s = ctx.store:coll("subsequences"):get(ctx.params.id)
  if not s then return err(404, "Subsequence not found") end
  local parent = ctx.store:coll("campaigns"):get(s.parent_campaign)
  return sending_status(ctx, { status = s.status, email_list = parent and parent.email_list or {},
    parent_campaign = s.parent_campaign }, s.id)
end

-- Campaigns holding a lead with exactly this address, sorted as asked.
function M.searchByContact(ctx)
  local q, store = ctx.query, ctx.store
  local needle, ids = q.search and q.search:lower(), {}
  for _, l in store:coll("leads"):each() do
    if needle and l.campaign ~= null and type(l.email) == "string" and l.email:lower() == needle then
      ids[l.campaign] = true
    end
  end
  local items = {}
  for _, c in store:coll("campaigns"):each() do
    if ids[c.id] then items[#items + 1] = c end
  end
  local col, desc = q.sort_column or "timestamp_created", q.sort_order == "desc"
  table.sort(items, function(a, b)
    local x, y = tostring(a[col]), tostring(b[col])
    if desc then return x > y end
    return x < y
  end)
  return 200, { items = array(items) }
end

return M
