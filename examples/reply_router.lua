#!/usr/bin/env lua5.4
-- reply_router.lua - receive reply webhooks, label the lead's interest and
-- answer in the thread, all in one script.
--
-- Shows: a webhook receiver served from a script (`instantly.webhook`,
-- `receiver:step`), registering it with a shared secret
-- (`client.webhooks:create{headers = ...}`), and acting on an event through
-- the API (`event:set_interest`, `event:reply`).
--
-- Against the local mock (what `make test` does): the mock delivers to the
-- receiver on 127.0.0.1, and its control plane makes a lead reply.
--   make BUILD=build && sh tools/run-examples.sh reply_router
-- Against the real API, Instantly must reach your receiver: run
-- `instantly webhooks listen --port 8090 --secret S` behind a public HTTPS
-- URL and register that URL instead (this script only drives the mock).

local instantly = require("instantly")
local webhook = require("instantly.webhook")
local socket = require("socket")
local http = require("socket.http")
local ltn12 = require("ltn12")
local json = require("instantly.core")

local client = instantly.new {}
local base = (os.getenv("INSTANTLY_BASE_URL") or ""):gsub("/+$", "")

-- The mock's control plane (plain HTTP, no key): make something happen.
local function control(path, value)
  local out = {}
  local body = assert(json.json_encode(value))
  local _, code = http.request {
    url = base .. path, method = "POST", sink = ltn12.sink.table(out),
    source = ltn12.source.string(body),
    headers = { ["content-type"] = "application/json", ["content-length"] = tostring(#body) },
  }
  return code == 200 and json.json_decode(table.concat(out)) or nil, code
end

if base == "" or not control("/__mock/webhooks/settings", {}) then
  print("reply_router drives the local mock (INSTANTLY_BASE_URL); see the header for the real API.")
  return
end

-- A deliberately simple classifier: first matching rule wins.
local RULES = {
  { "not interested", -1, "Understood - I won't follow up. All the best!" },
  { "unsubscribe", -1, "Done - you won't hear from us again." },
  { "pricing", 1, "Great to hear! Pricing is attached; does Tuesday suit for a call?" },
  { "interested", 1, "Great to hear! Does Tuesday suit for a call?" },
}

local handled
local secret = string.format("%08x%08x", math.random(0, 0x7fffffff), math.floor(socket.gettime() * 1000) % 0x7fffffff)

local function route(ev)
  local text = (ev.text or ""):lower()
  for _, rule in ipairs(RULES) do
    if text:find(rule[1], 1, true) then
      -- raising here answers 500 and the sender retries: assert is fine
      assert(ev:set_interest(client, rule[2]))
      local sent = assert(ev:reply(client, { text = rule[3] }))
      print(string.format("  %s said %q", ev.lead_email, ev.text))
      print(string.format("  -> interest %d, replied from %s: %q", rule[2], sent.eaccount, rule[3]))
      handled = ev
      return
    end
  end
  print("  no rule for " .. tostring(ev.lead_email) .. "; left for a person")
  handled = ev
end

-- 1. Listen on a free loopback port, and register the receiver.
local receiver <close> = assert(webhook.receiver {
  path = "/instantly", secret = secret,
  on_event = function(ev) if ev.type == "reply_received" then route(ev) end end,
})
local hook = assert(client.webhooks:create {
  name = "reply router", target_hook_url = receiver.url, event_type = "reply_received",
  headers = { [webhook.SECRET_HEADER] = secret },
})
print("Listening on " .. receiver.url .. " (webhook " .. hook.id .. ")")

-- 2. A lead replies (the mock's control plane stands in for the prospect).
local lead = assert(client.leads:list { limit = 1, in_campaign = true }).items[1]
assert(control("/__mock/events/reply", {
  lead_email = lead.email, text = "Sounds interesting - could you send pricing?",
}))
print("Waiting for " .. lead.email .. "'s reply to arrive ...")

-- 3. Serve until the event was handled (bounded: 10 seconds).
local deadline = socket.gettime() + 10
while not handled and socket.gettime() < deadline do receiver:step(0.1) end
assert(hook:delete())
if not handled then
  io.stderr:write("no reply_received delivery within 10 s\n")
  os.exit(1)
end

-- 4. The API agrees: the lead is labelled.
local after = assert(handled:lead(client))
print(string.format("Lead %s now has interest status %s; webhook removed.", after.email,
  tostring(after.lt_interest_status)))
