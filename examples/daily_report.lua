#!/usr/bin/env lua5.4
-- daily_report.lua - campaign analytics across the workspace, as a table.
--
-- Shows: a row per campaign with its rates (`client.analytics:by_campaign`:
-- opens, clicks and replies over the leads contacted, bounces over the
-- emails sent), the bounce guard (`over_bounce_limit`), the per-day
-- series of the workspace (`analytics:campaign_daily`), and aligned
-- tables with the CLI's helper (`instantly.cli.output`).
--
--   sh tools/run-examples.sh daily_report                (against a local mock)
--   INSTANTLY_API_KEY=... lua5.4 examples/daily_report.lua [days]     (read-only)
-- With `days`, the window is the last `days` days ending today; without,
-- all time.

local instantly = require("instantly")
local stats = require("instantly").stats
local output = require("instantly.cli.output")

local days = math.tointeger(tonumber(arg and arg[1]))
local client = instantly.new {}

local window, title = {}, "all time"
if days then
  window.start_date = os.date("!%Y-%m-%d", os.time() - (days - 1) * 86400)
  window.end_date = os.date("!%Y-%m-%d")
  title = window.start_date .. " to " .. window.end_date
end

-- 1. A row per campaign, most emails sent first.
local rows = assert(client.analytics:by_campaign(window))
local report, totals = {}, { sent = 0, opened = 0, replied = 0, bounced = 0, opportunities = 0 }
for _, r in ipairs(rows) do
  report[#report + 1] = {
    campaign = r.name, status = r.status_label, leads = r.leads, sent = r.sent,
    open_rate = stats.percent(r.open_rate), reply_rate = stats.percent(r.reply_rate),
    bounce_rate = stats.percent(r.bounce_rate), opportunities = r.opportunities,
  }
  for k in pairs(totals) do totals[k] = totals[k] + r[k] end
end
print("Campaigns, " .. title)
io.write(output.table(report, { "campaign", "status", "leads", "sent", "open_rate", "reply_rate",
  "bounce_rate", "opportunities" }, 110))

-- 2. Campaigns bouncing more than 3 % (of at least 100 emails sent).
for _, r in ipairs(stats.over_bounce_limit(rows, { max_bounce_rate = 0.03 })) do
  print(string.format("Check %q: %s of its emails bounced.", r.name, stats.percent(r.bounce_rate)))
end

-- 3. The last seven days with activity, workspace-wide.
local daily = {}
for _, d in ipairs(assert(client.analytics:campaign_daily(window))) do
  if (d.sent or 0) > 0 or (d.replies or 0) > 0 then daily[#daily + 1] = d end
end
table.sort(daily, function(a, b) return a.date > b.date end)
for i = #daily, 8, -1 do daily[i] = nil end
table.sort(daily, function(a, b) return a.date < b.date end)
print("")
if #daily == 0 then
  print("No sending activity in the window.")
else
  print("Last " .. #daily .. " days with activity")
  io.write(output.table(daily, { "date", "sent", "opened", "replies", "clicks", "opportunities" }, 110))
end
print(string.format("\nTotal: %d sent, %d opened, %d replied, %d bounced, %d opportunities.",
  totals.sent, totals.opened, totals.replied, totals.bounced, totals.opportunities))
