#!/usr/bin/env lua5.4
-- launch_campaign.lua - a guarded launch of a cold-email campaign.
--
-- Pick healthy sending accounts, build the campaign's parameters (a
-- weekday schedule from day names, a three-step sequence), check them
-- BEFORE anything is created, create it (or find the one an earlier run
-- left behind), import leads, run the preflight, activate, and print a
-- summary with the first analytics. `make demo` runs it against a mock.
--
--   make demo                                  (against a local mock)
--   INSTANTLY_API_KEY=... lua5.4 examples/launch_campaign.lua [--live] [file.csv]
-- Against the real API the campaign is only activated with --live. The
-- default leads (examples/data/leads.csv) use reserved .example addresses.

local instantly = require("instantly")
local schedule = require("instantly").schedule
local progress = require("instantly.cli.progress")
local enums = instantly.enums

local live, path = false, nil
for _, a in ipairs(arg or {}) do
  if a == "--live" then live = true else path = a end
end
path = path or ((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/data/leads.csv")
local client = instantly.new {}
local function fail(what, err) io.stderr:write(what, ": ", tostring(err), "\n") os.exit(1) end

-- 1. Sending accounts: active, warming up, with a good warmup score.
local senders = {}
for a in client.accounts:each { limit = 100 } do
  if a.status == enums.account.status.active and a.warmup_status == enums.account.warmup_status.active
     and (tonumber(a.stat_warmup_score) or 0) >= 80 then
    senders[#senders + 1] = a.email
  end
end
print("Senders: " .. table.concat(senders, ", "))

-- 2. The parameters, checked before anything exists.
local function step(delay, subject, body)
  return { type = "email", delay = delay, delay_unit = "days", variants = { { subject = subject, body = body } } }
end
local params = {
  name = "Lua SDK launch " .. os.date("!%Y-%m-%d"),
  campaign_schedule = schedule.new { days = "weekdays", from = "9:00", to = "17:00", timezone = "America/Chicago" },
  sequences = { { steps = {
    step(0, "{{companyName}} and cold email", "<p>Hi {{firstName}}, teams like {{companyName}} book meetings"
      .. " with us without the busywork. Worth a short call?</p><p>{{sendingAccountFirstName}}</p>"),
    step(3, "Re: {{companyName}} and cold email", "<p>Hi {{firstName}}, bumping this in case it got buried.</p>"),
    step(4, "Closing the loop", "<p>Hi {{firstName}}, I will stop here. Just reply if timing is better later.</p>"),
  } } },
  email_list = senders, daily_limit = 50, email_gap = 10, stop_on_reply = true, open_tracking = false,
}
local check = assert(client.campaigns:preflight(params, { ignore = { "name_taken" } }))
if not check.ok then fail("the parameters would not send", check) end

-- 3. Create it, or take the draft an earlier (failed) run left behind.
local campaign, created = client.campaigns:find_or_create(params)
if not campaign then fail("cannot create the campaign", created) end
print(string.format("%s campaign %q (%s)", created and "Created" or "Found", campaign.name, campaign.id))

-- 4. Leads, with a progress bar on a terminal.
local bar = progress.new { label = "import", unit = "rows" }
local summary, err = client.leads:import { leads = path, campaign_id = campaign.id, skip_if_in_workspace = true,
  batch_size = 100, on_progress = function(s) bar:update(s.rows, nil, s.uploaded .. " uploaded") end }
bar:finish()
if not (summary and summary.ok) then fail("import failed", err or summary.failed_batches[1].error) end
print(tostring(summary))

-- 5. Preflight and activate (against the real API only with --live).
print(tostring(assert(campaign:preflight())))
if (os.getenv("INSTANTLY_BASE_URL") or "") == "" and not live then
  return print("Not activated: this is the real API and --live was not given.")
end
local launched, report = campaign:launch { preflight = true }
if not launched then fail("not launched", report) end
print("Activated: status " .. enums.label("campaign.status", launched.status))

-- 6. Summary.
local current = assert(client.campaigns:get(campaign.id))
local stats = assert(client.analytics:by_campaign { ids = { campaign.id } })[1]
print("\nSummary")
print(string.format("  campaign   %s (%s)", current.name, enums.label("campaign.status", current.status):lower()))
print(string.format("  sequence   %d steps, weekdays 09:00-17:00 America/Chicago, %d emails a day at most",
  #current.sequences[1].steps, current.daily_limit))
print(string.format("  leads      %d uploaded, %d duplicates skipped, %d invalid rows",
  summary.uploaded, summary.duplicates, summary.invalid_count))
print(string.format("  preflight  %d error(s), %d warning(s)", report.errors, report.warnings))
print(string.format("  so far     %d leads, %d sent, reply rate %s", stats.leads, stats.sent,
  require("instantly").stats.percent(stats.reply_rate)))
