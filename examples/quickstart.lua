#!/usr/bin/env lua5.4
-- quickstart.lua - the README's Quickstart, as a file that runs.
--
-- From the repository root, after `make`:
--   export LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;;" LUA_CPATH="$PWD/build/?.so;;"
--   lua5.4 examples/quickstart.lua
-- With INSTANTLY_API_KEY unset it starts a local mock of the API for
-- itself (a seeded workspace on a free port of 127.0.0.1) and stops it at
-- the end; with a key (and INSTANTLY_BASE_URL unset) it talks to your
-- workspace: it creates a draft campaign and imports the example leads,
-- but activates the campaign only on a mock. `make test` runs it.

local instantly = require "instantly"

local mock, opts = nil, {}
if (os.getenv("INSTANTLY_API_KEY") or "") == "" then
  mock = assert(require("instantly.mock").start{})
  opts = { base_url = mock.url, api_key = mock.api_key }
end
local on_mock = mock ~= nil or (os.getenv("INSTANTLY_BASE_URL") or "") ~= ""
local client = instantly.new(opts)        -- the key comes from INSTANTLY_API_KEY

-- One call: the value, or nil and an error that prints as one readable line.
local workspace, err = client.workspaces:get()
if not workspace then
  io.stderr:write("cannot read the workspace: ", tostring(err), "\n")
  os.exit(1)
end
print("workspace: " .. workspace.name)

-- Every page of a list, one page in memory at a time.
local senders = {}
for account in client.accounts:each{} do
  if account.status == 1 then senders[#senders + 1] = account.email end
end
print(("%d active sending accounts"):format(#senders))

-- Create a campaign, import a CSV into it, check it, launch it.
local campaign = assert(client.campaigns:create{
  name = "Quickstart " .. os.date("!%Y-%m-%d %H:%M"),
  campaign_schedule = { schedules = { {
    name = "Weekdays", timezone = "America/Chicago",
    timing = { from = "09:00", to = "17:00" },
    days = { ["1"] = true, ["2"] = true, ["3"] = true, ["4"] = true, ["5"] = true },
  } } },
  sequences = { { steps = { { type = "email", delay = 0, variants = {
    { subject = "Hi {{firstName}}", body = "<p>Short and useful.</p>" } } } } } },
  email_list = senders,
})
local summary = assert(client.leads:import{ leads = "examples/data/leads.csv", campaign_id = campaign.id })
print(summary)                            -- import: N rows read, N uploaded, ...
local report = assert(campaign:preflight())
print(report)                             -- what would stop sending or hurt deliverability
if on_mock then
  local launched = assert(campaign:launch{ preflight = true })   -- only if the preflight passes
  print("launched: status " .. tostring(launched.status))
end

-- Replies and analytics.
local replies = assert(client.emails:list{ email_type = "received", limit = 5 })
print(("%d recent replies"):format(#replies.items))
for _, row in ipairs(assert(client.analytics:campaign{ id = campaign.id })) do
  if row.campaign_id == campaign.id then
    print(("analytics: %d leads, %d sent, %d replies"):format(row.leads_count, row.emails_sent_count, row.reply_count))
  end
end

client:close()
if mock then mock:stop() end
