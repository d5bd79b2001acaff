-- One report across every client workspace of an agency, fetched
-- concurrently: each sub-workspace is a view of the agency client
-- (client:as_workspace, which sends x-as-workspace and keeps its own
-- rate-limit budget), and client:gather runs one task per workspace.
--
--   INSTANTLY_API_KEY=... lua5.4 examples/agency_report.lua
--
-- The key must be the agency workspace's; its accepted group members are
-- the client workspaces.
local instantly = require "instantly"
local enums = instantly.enums

local client = instantly.new()

-- The client workspaces: accepted members of the agency's group (a pending
-- invitation cannot be acted on yet).
local members = {}
for m in client.workspace_group_members:each() do
  if m.status == enums.workspace_group_member.status.accepted then members[#members + 1] = m end
end
if #members == 0 then
  print("no client workspaces: this key's workspace has no accepted group members")
  return
end

-- What one workspace's row needs: its campaigns by status, its sending
-- accounts, and the totals of its campaigns' analytics.
local function report(sub)
  local row = { campaigns = 0, by_status = {}, accounts = 0 }
  for c in sub.campaigns:each { limit = 100 } do
    row.campaigns = row.campaigns + 1
    local label = enums.label("campaign.status", c.status) or tostring(c.status)
    row.by_status[label] = (row.by_status[label] or 0) + 1
  end
  for _ in sub.accounts:each { limit = 100 } do row.accounts = row.accounts + 1 end
  local totals = assert(sub.analytics:campaign_overview())
  row.sent = totals.emails_sent_count or 0
  row.replies = totals.reply_count_unique or totals.reply_count or 0
  row.opportunities = totals.total_opportunities or 0
  return row
end

local tasks, names = {}, {}
for i, m in ipairs(members) do
  local sub = client:as_workspace(m.sub_workspace_id)
  names[i] = m.sub_workspace_name or m.sub_workspace_id
  tasks[i] = function() return report(sub) end
end

local rows, errs, failed = client:gather(tasks, { concurrency = 8 })

local function rate(part, whole)
  if whole == 0 then return "-" end
  return string.format("%.1f%%", 100 * part / whole)
end

print(string.format("%-24s %9s %8s %8s %8s %7s  %s", "workspace", "campaigns", "accounts", "sent", "replies",
  "reply%", "campaigns by status"))
local order = {}
for i = 1, #members do order[i] = i end
table.sort(order, function(a, b) return names[a] < names[b] end)
local all = { campaigns = 0, accounts = 0, sent = 0, replies = 0 }
for _, i in ipairs(order) do
  local r = rows[i]
  if r then
    local parts = {}
    for label, n in pairs(r.by_status) do parts[#parts + 1] = label .. " " .. n end
    table.sort(parts)
    print(string.format("%-24s %9d %8d %8d %8d %7s  %s", names[i], r.campaigns, r.accounts, r.sent, r.replies,
      rate(r.replies, r.sent), table.concat(parts, ", ")))
    for k in pairs(all) do all[k] = all[k] + r[k] end
  else
    print(string.format("%-24s failed: %s", names[i], tostring(errs[i])))
  end
end
print(string.format("%-24s %9d %8d %8d %8d %7s", "all workspaces", all.campaigns, all.accounts, all.sent,
  all.replies, rate(all.replies, all.sent)))
if failed > 0 then
  io.stderr:write(failed, " of ", #members, " workspaces failed\n")
  os.exit(1)
end
