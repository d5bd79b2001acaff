#!/usr/bin/env lua5.4
-- triage_replies.lua - read unread replies, label the leads' interest,
-- mark the threads read and answer one interested lead.
--
-- Shows: the Unibox (`client.emails:list`, limited by the API to 20 calls
-- a minute - the client's rate limiter keeps to it), interest values and
-- labels from the catalog (`instantly.enums`), concurrent calls with
-- `client:gather`, and replying in a thread (`emails:reply`).
--
--   sh tools/run-examples.sh triage_replies             (against a local mock)
--   INSTANTLY_API_KEY=... lua5.4 examples/triage_replies.lua [--dry]
-- Against the real API it changes interest statuses, marks threads read and
-- SENDS one reply; --dry only prints what it would do.

local instantly = require("instantly")
local enums = instantly.enums
local INTEREST = enums.lead.interest_status

local dry = arg and arg[1] == "--dry"
local client = instantly.new {}

-- A deliberately simple classifier: the first matching phrase wins.
local RULES = {
  { "out of office", "out_of_office" }, { "on vacation", "out_of_office" }, { "not interested", "not_interested" },
  { "unsubscribe", "not_interested" }, { "remove me", "not_interested" }, { "no thanks", "not_interested" },
  { "wrong person", "wrong_person" }, { "no longer", "wrong_person" }, { "booked", "meeting_booked" },
  { "calendar invite", "meeting_booked" }, { "pricing", "interested" }, { "interested", "interested" },
  { "tell me more", "interested" }, { "call", "interested" }, { "demo", "interested" },
}
local function classify(email)
  local body = type(email.body) == "table" and email.body.text or email.content_preview or ""
  body = tostring(body):lower()
  for _, r in ipairs(RULES) do
    if body:find(r[1], 1, true) then return INTEREST[r[2]], body end
  end
  return nil, body
end

-- 1. Unread received replies: one page of up to 50.
local page = assert(client.emails:list { is_unread = true, email_type = "received", limit = 50 })
print(string.format("%d unread repl%s.", #page.items, #page.items == 1 and "y" or "ies"))

-- 2. Classify (the first ten are shown) and collect the calls to make.
local tasks, threads, counts, interested = {}, {}, {}, nil
for i, e in ipairs(page.items) do
  local value, text = classify(e)
  local label = value and enums.label("lead.interest_status", value) or "(unclear)"
  counts[label] = (counts[label] or 0) + 1
  if i <= 10 then print(string.format("  %-40s %-16s %s", e.lead, label, text:gsub("%s+", " "):sub(1, 50))) end
  if value then
    tasks[#tasks + 1] = function()
      return client.leads:update_interest_status { lead_email = e.lead, interest_value = value,
                                                   campaign_id = e.campaign_id }
    end
  end
  if value == INTEREST.interested then interested = interested or e end
  if e.thread_id and not threads[e.thread_id] then
    threads[e.thread_id] = true
    tasks[#tasks + 1] = function() return client.emails:mark_thread_read(e.thread_id) end
  end
end
local by = {}
for label, n in pairs(counts) do by[#by + 1] = n .. " " .. label end
table.sort(by)
print("By interest: " .. table.concat(by, ", "))
if dry then return print(string.format("--dry: would make %d call(s).", #tasks)) end

-- 3. Label and mark read, concurrently.
local _, errs, failed = client:gather(tasks, { concurrency = 4 })
for i = 1, #tasks do if errs[i] then io.stderr:write("  failed: ", tostring(errs[i]), "\n") end end
print(string.format("Made %d call(s), %d failed.", #tasks, failed))

-- 4. Answer the first interested lead in its thread.
if interested then
  local e = interested
  local subject = tostring(e.subject or ""):match("^[Rr][Ee]:") and e.subject or ("Re: " .. tostring(e.subject))
  local text = "Thanks for getting back to me! Would Tuesday or Wednesday work for a 20-minute call?"
  assert(client.emails:reply { eaccount = e.eaccount, reply_to_uuid = e.id, subject = subject,
                               body = { text = text, html = "<p>" .. text .. "</p>" } })
  print(string.format("Replied to %s from %s: %q", e.lead, tostring(e.eaccount), subject))
end
