#!/usr/bin/env lua5.4
-- warmup_health.lua - find sending accounts in poor health and warm them up.
--
-- Shows: iterating a paginated collection (`client.accounts:each`), a
-- POST analytics call (warmup health per account), warmup states from the
-- catalog (`instantly.enums`), starting a background job
-- (`accounts:enable_warmup`) and waiting for it with a progress line
-- (`client.background_jobs:wait`), and the `nil, err` error rule.
--
-- Against the local mock (what `make test` does):
--   make BUILD=build && sh tools/run-examples.sh warmup_health
-- Against the real API (changes warmup settings of the weak accounts):
--   INSTANTLY_API_KEY=... lua5.4 examples/warmup_health.lua [min_score]
-- Accounts whose health score is below min_score (default 80) or that are
-- not warming up at all are listed; those not warming up get warmup
-- enabled.

local instantly = require("instantly")
local progress = require("instantly.cli.progress")
local enums = instantly.enums

local min_score = tonumber(arg and arg[1]) or 80
local client = instantly.new {}      -- key and base URL from INSTANTLY_API_KEY / INSTANTLY_BASE_URL
local function warmup_label(a) return enums.label("account.warmup_status", a.warmup_status) or "?" end

-- 1. Every sending account (all pages).
local accounts = {}
for account in client.accounts:each { limit = 100 } do accounts[#accounts + 1] = account end
if #accounts == 0 then return print("No sending accounts in this workspace.") end

-- 2. Warmup health per account, up to 100 accounts a call.
local aggregate = {}
for first = 1, #accounts, 100 do
  local emails = {}
  for i = first, math.min(first + 99, #accounts) do emails[#emails + 1] = accounts[i].email end
  local health = assert(client.analytics:warmup { emails = emails })
  for email, h in pairs(health.aggregate_data or {}) do aggregate[email] = h end
end

-- 3. The weak ones: a low health score, or no warmup running.
local weak, to_enable = {}, {}
for _, a in ipairs(accounts) do
  local h = aggregate[a.email] or {}
  local score = tonumber(h.health_score) or tonumber(a.stat_warmup_score) or 0
  local warming = a.warmup_status == enums.account.warmup_status.active
  if score < min_score or not warming then
    weak[#weak + 1] = { email = a.email, score = score, label = h.health_score_label or "", warmup = warmup_label(a) }
    if not warming then to_enable[#to_enable + 1] = a.email end
  end
end
table.sort(weak, function(x, y) return x.score < y.score end)
print(string.format("%d accounts, %d below a health score of %d or not warming up:", #accounts, #weak, min_score))
print(string.format("  %-32s %6s  %-10s %s", "ACCOUNT", "SCORE", "LABEL", "WARMUP"))
for _, w in ipairs(weak) do print(string.format("  %-32s %6d  %-10s %s", w.email, w.score, w.label, w.warmup)) end
if #to_enable == 0 then return print("Every weak account is already warming up; nothing to change.") end

-- 4. Enable warmup for those not warming up: the API answers with a
-- background job, which we wait for (a progress bar on a terminal).
print(string.format("Enabling warmup for %d account(s)...", #to_enable))
local job = assert(client.accounts:enable_warmup { emails = to_enable })
local bar = progress.new { label = "warmup job", unit = "%" }
local done, err = job:wait { on_progress = function(j) bar:update(tonumber(j.progress) or 0, 100, j.status) end }
bar:finish()
if not done then
  io.stderr:write("the warmup job did not succeed: ", tostring(err), "\n")
  os.exit(1)
end
print(string.format("Job %s finished: %s.", done.id, tostring(done.status)))

-- 5. Check the result.
for _, email in ipairs(to_enable) do
  print(string.format("  %-32s warmup %s", email, warmup_label(assert(client.accounts:get(email)))))
end
