#!/usr/bin/env lua5.4
-- triage_replies.lua - read unread replies, label the leads' interest,
-- mark the threads read and answer one interested lead.
--
-- Shows: filtering the Unibox (`client.emails:list`, which the API limits
-- to 20 calls a minute - the client's rate limiter keeps to it), concurrent
-- calls with `client:gather` (interest updates and mark-as-read run side
-- by side), a 202-Accepted call (`leads:update_interest_status`) and
-- replying in a thread (`emails:reply`).
--
-- Against the local mock (what `make test` does):
--   make BUILD=build && sh tools/run-examples.sh triage_replies
-- Against the real API (changes interest statuses, marks threads read and
-- SENDS one reply; pass --dry to only print what it would do):
--   INSTANTLY_API_KEY=... lua5.4 examples/triage_replies.lua [--dry]

local instantly = require("instantly")

local dry = arg and arg[1] == "--dry"
local client = instantly.new {}

-- Interest values (the catalog's lt_interest_status enum).
local INTEREST = { interested = 1, meeting = 2, out_of_office = 0, not_interested = -1, wrong_person = -2 }
local NAMES = { [1] = "interested", [2] = "meeting booked", [0] = "out of office",
                [-1] = "not interested", [-2] = "wrong person" }

-- A deliberately simple classifier: first matching rule wins.
local RULES = {
  { "out of office", INTEREST.out_of_office }, { "on vacation", INTEREST.out_of_office },
  { "not interested", INTEREST.not_interested }, { "unsubscribe", INTEREST.not_interested },
  { "remove me", INTEREST.not_interested }, { "no thanks", INTEREST.not_interested },
  { "wrong person", INTEREST.wrong_person }, { "no longer", INTEREST.wrong_person },
  { "booked", INTEREST.meeting }, { "calendar invite", INTEREST.meeting },
  { "pricing", INTEREST.interested }, { "interested", INTEREST.interested },
  { "tell me more", INTEREST.interested }, { "call", INTEREST.interested }, { "demo", INTEREST.interested },
}

local function classify(text)
  text = tostring(text or ""):lower()
  for _, r in ipairs(RULES) do
    if text:find(r[1], 1, true) then return r[2] end
  end
  return nil
end

local function text_of(email)
  local body = email.body
  if type(body) == "table" and type(body.text) == "string" then return body.text end
  return email.content_preview or ""
end

-- 1. Unread received replies: one page of up to 50.
local page, err = client.emails:list { is_unread = true, email_type = "received", limit = 50 }
if not page then
  io.stderr:write("cannot list replies: ", tostring(err), "\n")
  os.exit(1)
end
local replies = page.items
print(string.format("%d unread repl%s.", #replies, #replies == 1 and "y" or "ies"))
if #replies == 0 then return end

-- 2. Classify each reply (the first ten are shown).
local labelled, threads, seen, counts = {}, {}, {}, {}
for i, e in ipairs(replies) do
  local value = classify(text_of(e))
  local lead = e.lead or e.from_address_email
  local name = value and NAMES[value] or "(unclear)"
  counts[name] = (counts[name] or 0) + 1
  if i <= 10 then
    print(string.format("  %-40s %-16s %s", lead, name, (text_of(e):gsub("%s+", " "):sub(1, 50))))
  elseif i == 11 then
    print(string.format("  ... and %d more", #replies - 10))
  end
  if value ~= nil and lead then labelled[#labelled + 1] = { email = e, lead = lead, value = value } end
  if e.thread_id and not seen[e.thread_id] then
    seen[e.thread_id] = true
    threads[#threads + 1] = e.thread_id
  end
end

local names = {}
for name in pairs(counts) do names[#names + 1] = name end
table.sort(names)
for i, name in ipairs(names) do names[i] = string.format("%d %s", counts[name], name) end
print("By interest: " .. table.concat(names, ", "))

if dry then
  print(string.format("--dry: would label %d lead(s) and mark %d thread(s) read.", #labelled, #threads))
  return
end

-- 3. Label interest and mark threads read, concurrently.
local tasks = {}
for _, l in ipairs(labelled) do
  tasks[#tasks + 1] = function()
    return client.leads:update_interest_status {
      lead_email = l.lead, interest_value = l.value, campaign_id = l.email.campaign_id,
    }
  end
end
for _, thread in ipairs(threads) do
  tasks[#tasks + 1] = function() return client.emails:mark_thread_read(thread) end
end
local _, errs, failed = client:gather(tasks, { concurrency = 4 })
for i = 1, #tasks do
  if errs[i] then io.stderr:write("  failed: ", tostring(errs[i]), "\n") end
end
print(string.format("Labelled %d lead(s), marked %d thread(s) read, %d call(s) failed.",
  #labelled, #threads, failed))

-- 4. Answer the first interested lead in its thread.
for _, l in ipairs(labelled) do
  if l.value == INTEREST.interested then
    local e = l.email
    local subject = tostring(e.subject or "")
    if not subject:lower():match("^re:") then subject = "Re: " .. subject end
    local first = tostring(e.from_address_json and e.from_address_json[1] and e.from_address_json[1].name or "")
    local greeting = first ~= "" and ("Hi " .. first .. ",") or "Hi,"
    local text = greeting .. "\n\nThanks for getting back to me! Would Tuesday or Wednesday "
      .. "work for a 20-minute call?\n\nBest,\n" .. tostring(e.eaccount)
    local sent, rerr = client.emails:reply {
      eaccount = e.eaccount, reply_to_uuid = e.id, subject = subject,
      body = { text = text, html = "<p>" .. text:gsub("\n\n", "</p><p>"):gsub("\n", "<br>") .. "</p>" },
    }
    if not sent then
      io.stderr:write("reply failed: ", tostring(rerr), "\n")
      os.exit(1)
    end
    print(string.format("Replied to %s from %s: %q", l.lead, tostring(e.eaccount), subject))
    break
  end
end
