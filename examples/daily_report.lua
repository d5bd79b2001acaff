#!/usr/bin/env lua5.4
-- daily_report.lua - campaign analytics across the workspace, as a table.
--
-- Shows: one analytics call for every campaign (`client.analytics:campaign`),
-- the per-day series of the whole workspace (`analytics:campaign_daily`),
-- derived rates, and printing aligned tables with the same helper the CLI
-- uses (`instantly.cli.output`).
--
-- Against the local mock (what `make test` does):
--   make BUILD=build && sh tools/run-examples.sh daily_report
-- Against the real API (read-only):
--   INSTANTLY_API_KEY=... lua5.4 examples/daily_report.lua [days]
-- With `days`, the window is the last `days` days ending today; without,
-- all time.

local instantly = require("instantly")
local output = require("instantly.cli.output")

local days = math.tointeger(tonumber(arg and arg[1]))
local DAY = 24 * 3600

local client = instantly.new {}

-- The reporting window (YYYY-MM-DD, UTC); nil dates mean all time.
local window, title = {}, "all time"
if days then
  local now = os.time()
  window.start_date = os.date("!%Y-%m-%d", now - (days - 1) * DAY)
  window.end_date = os.date("!%Y-%m-%d", now)
  title = window.start_date .. " to " .. window.end_date
end

-- 1. Totals per campaign. Campaigns with no activity in the window still
-- appear, with zeros.
local rows, err = client.analytics:campaign(window)
if not rows then
  io.stderr:write("analytics failed: ", tostring(err), "\n")
  os.exit(1)
end

local function pct(part, whole)
  if not whole or whole == 0 then return "-" end
  return string.format("%.1f%%", 100 * (part or 0) / whole)
end

local STATUS = { [0] = "draft", [1] = "active", [2] = "paused", [3] = "completed", [4] = "subsequences",
                 [-1] = "unhealthy", [-2] = "bounce prot.", [-99] = "suspended" }

local report, totals = {}, { sent = 0, opened = 0, replied = 0, bounced = 0, opportunities = 0 }
for _, r in ipairs(rows) do
  local sent = r.emails_sent_count or 0
  report[#report + 1] = {
    campaign = r.campaign_name,
    status = STATUS[r.campaign_status] or tostring(r.campaign_status),
    leads = r.leads_count or 0,
    sent = sent,
    open_rate = pct(r.open_count_unique or r.open_count, r.contacted_count),
    reply_rate = pct(r.reply_count_unique or r.reply_count, r.contacted_count),
    bounce_rate = pct(r.bounced_count, sent),
    opportunities = r.total_opportunities or 0,
  }
  totals.sent = totals.sent + sent
  totals.opened = totals.opened + (r.open_count or 0)
  totals.replied = totals.replied + (r.reply_count or 0)
  totals.bounced = totals.bounced + (r.bounced_count or 0)
  totals.opportunities = totals.opportunities + (r.total_opportunities or 0)
end
table.sort(report, function(a, b) return a.sent > b.sent end)

print("Campaigns, " .. title)
io.write(output.table(report, { "campaign", "status", "leads", "sent", "open_rate", "reply_rate",
  "bounce_rate", "opportunities" }, 110))

-- 2. The last days of the workspace-wide daily series.
local daily = {}
for _, d in ipairs(assert(client.analytics:campaign_daily(window))) do
  if (d.sent or 0) > 0 or (d.replies or 0) > 0 then daily[#daily + 1] = d end
end
table.sort(daily, function(a, b) return a.date < b.date end)
local last = {}
for i = math.max(1, #daily - 6), #daily do last[#last + 1] = daily[i] end
print("")
if #last == 0 then
  print("No sending activity in the window.")
else
  print("Last " .. #last .. " days with activity")
  io.write(output.table(last, { "date", "sent", "opened", "replies", "clicks", "opportunities" }, 110))
end

print("")
print(string.format("Total: %d sent, %d opened, %d replied, %d bounced, %d opportunities.",
  totals.sent, totals.opened, totals.replied, totals.bounced, totals.opportunities))
