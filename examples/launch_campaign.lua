#!/usr/bin/env lua5.4
-- launch_campaign.lua - the whole launch of a cold-email campaign.
--
-- Shows what a user does end to end: pick healthy sending accounts,
-- create a campaign with a weekday schedule and a three-step sequence,
-- import leads from a CSV with a progress bar, run the preflight, activate,
-- then look at the sending status and the analytics, and print a short
-- summary. `make demo` runs it against a local mock.
--
-- Against the local mock:
--   make demo                       (or: sh tools/run-examples.sh --show launch_campaign)
-- Against the real API:
--   INSTANTLY_API_KEY=... lua5.4 examples/launch_campaign.lua [--live] [file.csv]
-- With the real API (INSTANTLY_BASE_URL unset) the campaign is created and
-- the leads imported, but it is only activated with --live: activation
-- starts sending email. The default leads (examples/data/leads.csv) use
-- reserved .example addresses; use your own file for a real launch.

local instantly = require("instantly")
local progress = require("instantly.cli.progress")

local live, path = false, nil
for _, a in ipairs(arg or {}) do
  if a == "--live" then live = true else path = a end
end
local here = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")) or "."
path = path or (here .. "/data/leads.csv")
local real_api = (os.getenv("INSTANTLY_BASE_URL") or "") == ""

local client = instantly.new {}

local function fail(what, err)
  io.stderr:write(what, ": ", tostring(err), "\n")
  os.exit(1)
end

-- 1. Sending accounts: active, warmed up, with a good warmup score.
local senders = {}
for account in client.accounts:each { limit = 100 } do
  if account.status == 1 and account.warmup_status == 1 and (tonumber(account.stat_warmup_score) or 0) >= 80 then
    senders[#senders + 1] = account.email
  end
end
if #senders == 0 then fail("no healthy sending account", "connect and warm up an account first") end
print(string.format("Senders: %s", table.concat(senders, ", ")))

-- 2. The campaign: weekdays 9:00-17:00 in Chicago, three steps.
local function step(delay_days, subject, body)
  return { type = "email", delay = delay_days, delay_unit = "days",
           variants = { { subject = subject, body = body } } }
end
local campaign, err = client.campaigns:create {
  name = "Lua SDK launch " .. os.date("!%Y-%m-%d %H:%M"),
  campaign_schedule = {
    schedules = { {
      name = "Weekdays",
      timing = { from = "09:00", to = "17:00" },
      days = { ["1"] = true, ["2"] = true, ["3"] = true, ["4"] = true, ["5"] = true },
      timezone = "America/Chicago",
    } },
  },
  sequences = { { steps = {
    step(0, "{{companyName}} and cold email",
      "<p>Hi {{firstName}},</p><p>Teams like {{companyName}} use us to book meetings without the busywork."
        .. " Worth a short call?</p><p>{{sendingAccountFirstName}}</p>"),
    step(3, "Re: {{companyName}} and cold email",
      "<p>Hi {{firstName}}, bumping this in case it got buried. Is outbound on your plate this quarter?</p>"),
    step(4, "Closing the loop",
      "<p>Hi {{firstName}}, I will stop here. If timing is better later, just reply to this email.</p>"),
  } } },
  email_list = senders,
  daily_limit = 50,
  email_gap = 10,
  stop_on_reply = true,
  stop_on_auto_reply = true,
  open_tracking = true,
  link_tracking = false,
}
if not campaign then fail("cannot create the campaign", err) end
print(string.format("Created campaign %q (%s)", campaign.name, campaign.id))

-- 3. Leads from the CSV, with a progress bar on a terminal.
local bar = progress.new { label = "import", unit = "rows" }
local summary
summary, err = client.leads:import {
  leads = path, campaign_id = campaign.id, skip_if_in_workspace = true, batch_size = 100,
  on_progress = function(s) bar:update(s.rows, nil, s.uploaded .. " uploaded") end,
}
bar:finish()
if not summary then fail("import failed", err) end
print(tostring(summary))
if not summary.ok then fail("import incomplete", summary.failed_batches[1].error) end

-- 4. Preflight: what would stop sending or hurt deliverability.
local report
report, err = campaign:preflight()
if not report then fail("preflight failed", err) end
print(tostring(report))

-- 5. Activate (after the preflight passes). Against the real API only with --live.
if real_api and not live then
  print("Not activated: this is the real API and --live was not given. The campaign stays a draft.")
  return
end
local launched
launched, err = campaign:launch { preflight = true }
if not launched then fail("not launched", err) end
print(string.format("Activated: status %s", tostring(launched.status)))

-- 6. Sending status and analytics.
local status = assert(client.campaigns:sending_status(campaign.id))
local rows = assert(client.analytics:campaign { id = campaign.id })
local stats = {}
for _, r in ipairs(rows) do
  if r.campaign_id == campaign.id then stats = r end
end
local current = assert(client.campaigns:get(campaign.id))

-- While sending, the reason is in diagnostics.status; for a campaign that
-- is not running, in summary.status (e.g. "out_of_schedule").
local state = (type(status.diagnostics) == "table" and status.diagnostics.status)
  or (type(status.summary) == "table" and status.summary.status) or "unknown"
local STATUS = { [0] = "draft", [1] = "active", [2] = "paused", [3] = "completed" }

print("")
print("Summary")
print(string.format("  campaign   %s (%s)", current.name, STATUS[current.status] or tostring(current.status)))
print(string.format("  senders    %d: %s", #senders, table.concat(senders, ", ")))
print(string.format("  sequence   3 steps, weekdays 09:00-17:00 America/Chicago, %d emails a day at most",
  current.daily_limit or 0))
print(string.format("  leads      %d uploaded, %d duplicates skipped, %d invalid rows",
  summary.uploaded, summary.duplicates, summary.invalid_count))
print(string.format("  preflight  %d error(s), %d warning(s)", report.errors, report.warnings))
print(string.format("  sending    %s", tostring(state):gsub("_", " ")))
print(string.format("  so far     %d leads, %d sent, %d opened, %d replied",
  tonumber(stats.leads_count) or 0, tonumber(stats.emails_sent_count) or 0,
  tonumber(stats.open_count) or 0, tonumber(stats.reply_count) or 0))
