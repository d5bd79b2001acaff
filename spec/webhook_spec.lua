-- instantly.webhook: parse, verify, dedupe, the receiver against hostile
-- input, and the mock delivering events to a receiver on loopback.

local socket = require "socket"
local core = require "instantly.core"
local webhook = require "instantly.webhook"
local instantly = require "instantly"
local mock = require "instantly.mock"
local mock_webhooks = require "instantly.mock.webhooks"

local encode, decode = core.json_encode, core.json_decode

local REPLY = {
  timestamp = "2026-03-01T10:00:00.000Z", event_type = "reply_received",
  workspace = "11111111-1111-4111-8111-111111111111",
  campaign_id = "22222222-2222-4222-8222-222222222222", campaign_name = "Q1",
  lead_email = "ada@example.com", email_account = "jane@sender.example",
  email_id = "33333333-3333-4333-8333-333333333333",
  email_subject = "Quick question", email_text = "Hi Ada", email_html = "<p>Hi Ada</p>",
  reply_subject = "Re: Quick question", reply_text = "Tell me more", reply_html = "<p>Tell me more</p>",
  reply_text_snippet = "Tell me more", unibox_url = "https://app.instantly.ai/app/unibox",
  step = 1, variant = 2, is_first = true, first_name = "Ada", custom_field = "kept",
}

-- Serve `r` until pred() holds; bounded (a missing delivery fails the
-- assertion after it, it never hangs the suite).
local function serve_until(r, pred, limit)
  local stop = socket.gettime() + (limit or 10)
  while not pred() and socket.gettime() < stop do r:step(0.02) end
  return pred()
end

-- One raw HTTP exchange with a receiver served in this process.
local function exchange(r, raw)
  local c = assert(socket.connect("127.0.0.1", r.port))
  c:settimeout(5)
  assert(c:send(raw))
  local stop = socket.gettime() + 10
  while socket.gettime() < stop do
    r:step(0.01)
    local ready = socket.select({ c }, nil, 0)
    if ready[1] then break end
  end
  local resp = {}
  for _ = 1, 20 do
    r:step(0)
    local data, err, part = c:receive(8192)
    data = data or part
    if data and data ~= "" then resp[#resp + 1] = data end
    if err == "closed" then break end
    local whole = table.concat(resp)
    local len = tonumber(whole:match("[Cc]ontent%-[Ll]ength:%s*(%d+)"))
    local head_end = whole:find("\r\n\r\n", 1, true)
    if head_end and len and #whole >= head_end + 3 + len then break end
  end
  c:close()
  local text = table.concat(resp)
  return tonumber(text:match("^HTTP/1%.1 (%d+)")), text:match("\r\n\r\n(.*)$"), text
end

local function post(path, body, headers)
  local h = { "POST " .. path .. " HTTP/1.1", "Host: 127.0.0.1", "Connection: close",
    "Content-Length: " .. #body }
  for k, v in pairs(headers or { ["Content-Type"] = "application/json" }) do h[#h + 1] = k .. ": " .. v end
  return table.concat(h, "\r\n") .. "\r\n\r\n" .. body
end

describe("webhook.parse", function()
  it("gives the event's fields, the reply's subject/text/html and the payload as given", function()
    local ev = assert(webhook.parse(encode(REPLY), { ["Content-Type"] = "application/json" }))
    assert.are.equal("reply_received", ev.type)
    assert.are.equal(REPLY.timestamp, ev.timestamp)
    assert.are.equal(REPLY.workspace, ev.workspace)
    assert.are.equal(REPLY.campaign_id, ev.campaign_id)
    assert.are.equal("ada@example.com", ev.lead_email)
    assert.are.equal(REPLY.email_id, ev.email_id)
    assert.are.equal("Re: Quick question", ev.subject)
    assert.are.equal("Tell me more", ev.text)
    assert.are.equal("<p>Tell me more</p>", ev.html)
    assert.are.equal("kept", ev.payload.custom_field)
    assert.are.equal("reply_received", ev:subscription())
  end)

  it("uses the campaign email's subject/text/html for other events; maps link_clicked back", function()
    local ev = assert(webhook.parse(encode{ event_type = "link_clicked", email_subject = "S", email_text = "T" }))
    assert.are.equal("S", ev.subject)
    assert.are.equal("T", ev.text)
    assert.is_nil(ev.html)
    assert.are.equal("email_link_clicked", ev:subscription())
  end)

  local BAD = {
    { "{not json", nil, "json" },
    { "[1,2]", nil, "shape" },
    { '"a string"', nil, "shape" },
    { "{}", nil, "shape" },
    { '{"event_type": 5}', nil, "shape" },
    { '{"event_type": ""}', nil, "shape" },
    { encode(REPLY), { ["content-type"] = "text/plain" }, "content_type" },
  }
  for _, case in ipairs(BAD) do
    it("refuses " .. case[1]:sub(1, 20) .. " (" .. case[3] .. ")", function()
      local ev, err = webhook.parse(case[1], case[2])
      assert.is_nil(ev)
      assert.are.equal("webhook", err.kind)
      assert.are.equal(case[3], err.reason)
      assert.is_true(err.status >= 400 and err.status < 500)
      assert.truthy(tostring(err):find("instantly:", 1, true))
    end)
  end

  it("event methods raise when the event lacks what they need, or on a bad client/options", function()
    local ev = assert(webhook.parse('{"event_type":"campaign_completed","campaign_id":"c1"}'))
    local fake = { leads = {} }
    assert.has.error(function() ev:reply(fake, { text = "x" }) end,
      "event:reply: this campaign_completed event has no email_id")
    assert.has.error(function() ev:lead(fake) end, "event:lead: this campaign_completed event has no lead_email")
    assert.has.error(function() ev:email(fake) end, "event:email: this campaign_completed event has no email_id")
    assert.has.error(function() ev:campaign("nope") end, "event:campaign: client must be an instantly client")
    local r = assert(webhook.parse(encode(REPLY)))
    assert.has.error(function() r:reply(fake, {}) end, "event:reply: opts.text or opts.html must be a string")
    assert.has.error(function() r:reply(fake, { text = "x", cc = "y" }) end, "event:reply: unknown option 'cc'")
    assert.has.error(function() r:set_interest(fake, "1") end, "event:set_interest: value must be a number")
  end)

  it("raises on misuse", function()
    assert.has.error(function() webhook.parse(nil) end, "webhook.parse: body must be a string")
    assert.has.error(function() webhook.parse("{}", "x") end, "webhook.parse: headers must be a table")
  end)
end)

describe("webhook.verify", function()
  local S = "s3cret-value"
  it("accepts the exact secret under any header case, refuses anything else", function()
    assert.is_true(webhook.verify({ ["X-Webhook-Secret"] = S }, S))
    assert.is_true(webhook.verify({ ["x-webhook-secret"] = S }, S))
    assert.is_false(webhook.verify({ ["x-webhook-secret"] = S .. "x" }, S))
    assert.is_false(webhook.verify({ ["x-webhook-secret"] = S:sub(1, -2) }, S))
    assert.is_false(webhook.verify({ ["x-webhook-secret"] = "" }, S))
    assert.is_false(webhook.verify({ ["x-webhook-secret"] = ("S3cret-value") }, S))
    assert.is_false(webhook.verify({}, S))
    assert.is_false(webhook.verify(nil, S))
  end)
  it("takes another header name, and Bearer values for authorization", function()
    assert.is_true(webhook.verify({ ["X-Hook"] = S }, S, "X-Hook"))
    assert.is_false(webhook.verify({ ["x-webhook-secret"] = S }, S, "X-Hook"))
    assert.is_true(webhook.verify({ Authorization = "Bearer " .. S }, S, "authorization"))
    assert.is_false(webhook.verify({ Authorization = "Bearer nope" }, S, "authorization"))
  end)
  it("raises on misuse", function()
    assert.has.error(function() webhook.verify({}, "") end, "webhook.verify: secret must be a non-empty string")
    assert.has.error(function() webhook.verify({}, S, 5) end, "webhook.verify: name must be a string")
  end)
end)

describe("webhook.dedupe", function()
  it("remembers handled events by key, and only the last `size` of them", function()
    local d = webhook.dedupe{ size = 3 }
    local evs = {}
    for i = 1, 5 do
      evs[i] = assert(webhook.parse(encode{ event_type = "email_opened", timestamp = "t" .. i, lead_email = "a@b.c" }))
    end
    assert.is_false(d:seen(evs[1]))
    for i = 1, 5 do d:add(evs[i]) end
    d:add(evs[5])
    assert.are.equal(3, #d)
    assert.is_false(d:seen(evs[1]))
    assert.is_false(d:seen(evs[2]))
    for i = 3, 5 do assert.is_true(d:seen(evs[i])) end
    -- a retry is the same payload: same key
    local again = assert(webhook.parse(encode{ event_type = "email_opened", timestamp = "t5", lead_email = "a@b.c" }))
    assert.is_true(d:seen(again))
  end)
  it("raises on misuse", function()
    assert.has.error(function() webhook.dedupe{ size = 0 } end, "webhook.dedupe: size must be a positive integer")
    assert.has.error(function() webhook.dedupe{ max = 1 } end, "webhook.dedupe: unknown option 'max'")
  end)
end)

describe("the webhook event catalog", function()
  local cat = webhook.catalog()
  it("maps subscriptions to delivered types where they differ", function()
    assert.are.equal("link_clicked", webhook.event_type_for("email_link_clicked"))
    assert.are.equal("reply_received", webhook.event_type_for("reply_received"))
    assert.are.equal("email_link_clicked", webhook.subscription_for("link_clicked"))
    assert.is_nil(webhook.subscription_for("auto_reply_received"))
  end)
  it("covers every subscription the API's Webhook.event_type enum allows", function()
    local E = require "instantly.entities.webhooks"
    for _, f in ipairs(E.fields) do
      if f.name == "event_type" then
        for _, sub in ipairs(f.enum) do
          assert(sub == "all_events" or webhook.event_type_for(sub), "no catalog entry for " .. sub)
        end
      end
    end
  end)
  it("is the table docs/webhooks.md shows", function()
    local doc = assert(io.open("docs/webhooks.md")):read("a")
    local rows = {}
    for sub, et, fields in doc:gmatch("\n| ([^|]-) | `([%w_]+)` | ([^|]-) | [%w-]+ |") do
      rows[et] = { sub = sub, fields = fields }
    end
    for _, e in ipairs(cat.events) do
      local row = assert(rows[e.event_type], "docs table lacks " .. e.event_type)
      local sub = e.subscription and ("`" .. e.subscription .. "`") or "(all_events only)"
      assert.are.equal(sub, row.sub)
      assert.are.equal(#e.fields > 0 and table.concat(e.fields, ", ") or "(base only)", row.fields)
      rows[e.event_type] = nil
    end
    assert.are.same({}, rows)
  end)

  it("is generated from catalog/webhook-events.json (run tools/gen-webhook-events.lua)", function()
    assert.is_true(os.execute("lua5.4 tools/gen-webhook-events.lua --check") == true)
  end)

  it("names only fields it defines", function()
    for _, name in ipairs(cat.base) do assert(cat.fields[name], name) end
    for _, e in ipairs(cat.events) do
      for _, name in ipairs(e.fields) do assert(cat.fields[name], e.event_type .. ": " .. name) end
    end
  end)
end)

describe("webhook.receiver", function()
  local SECRET = "hunter2-very-secret"
  local r, got, lines, mode
  before_each(function()
    got, lines, mode = {}, {}, "ok"
    r = assert(webhook.receiver{
      path = "/hooks", secret = SECRET, max_body = 4096,
      log = function(l) lines[#lines + 1] = l end,
      on_event = function(ev)
        if mode == "raise" then error("handler broke while holding " .. SECRET) end
        got[#got + 1] = ev
      end,
    })
  end)
  after_each(function() r:close() end)

  local function auth(extra)
    local h = { ["Content-Type"] = "application/json", ["X-Webhook-Secret"] = SECRET }
    for k, v in pairs(extra or {}) do h[k] = v end
    return h
  end

  it("answers 200 after on_event ran, and gives it the parsed event", function()
    local status, body = exchange(r, post("/hooks", encode(REPLY), auth()))
    assert.are.equal(200, status)
    assert.are.same({ ok = true }, decode(body))
    assert.are.equal(1, #got)
    assert.are.equal("ada@example.com", got[1].lead_email)
    assert.truthy(r.url:match("^http://127%.0%.0%.1:%d+/hooks$"))
  end)

  it("refuses a wrong or missing secret with 401 before on_event", function()
    assert.are.equal(401, (exchange(r, post("/hooks", encode(REPLY), auth{ ["X-Webhook-Secret"] = "guess" }))))
    assert.are.equal(401, (exchange(r, post("/hooks", encode(REPLY)))))
    assert.are.equal(0, #got)
  end)

  it("refuses malformed deliveries with 4xx and never calls on_event", function()
    assert.are.equal(400, (exchange(r, post("/hooks", "{nope", auth()))))
    assert.are.equal(400, (exchange(r, post("/hooks", "[]", auth()))))
    assert.are.equal(400, (exchange(r, post("/hooks", '{"no_type":1}', auth()))))
    assert.are.equal(415, (exchange(r, post("/hooks", encode(REPLY), auth{ ["Content-Type"] = "text/plain" }))))
    assert.are.equal(404, (exchange(r, post("/other", encode(REPLY), auth()))))
    assert.are.equal(405, (exchange(r, "GET /hooks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")))
    assert.are.equal(400, (exchange(r, "BLAH\r\n\r\n")))
    assert.are.equal(0, #got)
  end)

  it("refuses oversized deliveries (declared or chunked) with 413, headers with 431", function()
    local big = encode{ event_type = "reply_received", reply_text = ("x"):rep(5000) }
    assert.are.equal(413, (exchange(r, post("/hooks", big, auth()))))
    local chunked = "POST /hooks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
      .. "X-Webhook-Secret: " .. SECRET .. "\r\nContent-Type: application/json\r\n\r\n"
      .. string.format("%x\r\n%s\r\n0\r\n\r\n", #big, big)
    assert.are.equal(413, (exchange(r, chunked)))
    local huge_header = "POST /hooks HTTP/1.1\r\nHost: x\r\nX-Pad: " .. ("p"):rep(40000) .. "\r\n\r\n"
    local status = exchange(r, huge_header)
    assert.is_true(status == 431 or status == 414)
    assert.are.equal(0, #got)
  end)

  it("answers 500 when on_event raises, so the retry is handled; a later duplicate is not", function()
    mode = "raise"
    assert.are.equal(500, (exchange(r, post("/hooks", encode(REPLY), auth()))))
    assert.are.equal(0, #got)
    mode = "ok"
    assert.are.equal(200, (exchange(r, post("/hooks", encode(REPLY), auth()))))
    assert.are.equal(1, #got)
    local status, body = exchange(r, post("/hooks", encode(REPLY), auth()))
    assert.are.equal(200, status)
    assert.is_true(decode(body).duplicate)
    assert.are.equal(1, #got)
    assert.are.same({ received = 3, handled = 1, duplicates = 1, rejected = 0, failed = 1 }, r.stats)
  end)

  it("never logs the secret, not even from an on_event error that contains it", function()
    mode = "raise"
    exchange(r, post("/hooks", encode(REPLY), auth()))
    exchange(r, post("/hooks", encode(REPLY), auth{ ["X-Webhook-Secret"] = SECRET .. "-wrong" }))
    exchange(r, post("/hooks", "{bad", auth()))
    assert.is_true(#lines >= 3)
    local all = table.concat(lines, "\n")
    assert.falsy(all:find(SECRET, 1, true))
    assert.truthy(all:find("[REDACTED]", 1, true))
  end)

  it("raises on misuse and reports a port it cannot bind", function()
    assert.has.error(function() webhook.receiver{} end, "webhook.receiver: option 'on_event' is required")
    assert.has.error(function() webhook.receiver{ on_event = print, prot = 1 } end,
      "webhook.receiver: unknown option 'prot'")
    assert.has.error(function() webhook.receiver{ on_event = print, secret = "" } end,
      "webhook.receiver: option 'secret' must not be empty")
    assert.has.error(function() webhook.receiver{ on_event = print, path = "x" } end,
      "webhook.receiver: option 'path' must start with /")
    local r2, err = webhook.receiver{ on_event = print, port = r.port }
    assert.is_nil(r2)
    assert.truthy(err:find("cannot listen", 1, true))
  end)
end)

describe("mock webhook targets", function()
  local OK = { "http://127.0.0.1:8090/hooks", "http://localhost:8090", "http://127.1.2.3/x", "http://[::1]:9/" }
  local REFUSED = { "https://127.0.0.1/hooks", "http://hooks.example/x", "http://10.0.0.1:8090/",
    "http://127.0.0.1.evil.example/", "http://localhost.evil.example/", "http://user@127.0.0.1/",
    "http://[::ffff:10.0.0.1]/", "ftp://127.0.0.1/", "http://0.0.0.0:8090/", "http://127.0.0.1:0/" }
  for _, u in ipairs(OK) do
    it("delivers to " .. u, function() assert.truthy((mock_webhooks.target(u))) end)
  end
  for _, u in ipairs(REFUSED) do
    it("refuses " .. u, function()
      local ip, why = mock_webhooks.target(u)
      assert.is_nil(ip)
      assert.is_string(why)
    end)
  end
end)

describe("the mock delivers webhooks", function()
  local srv, client, r, got
  local SECRET = "mock-delivery-secret"
  setup(function()
    srv = assert(mock.start{ rate_limits = false })
    client = instantly.new{ base_url = srv.url, api_key = srv.api_key, max_retries = 0 }
  end)
  teardown(function() srv:stop() end)
  before_each(function()
    srv:reset()
    got = {}
    r = assert(webhook.receiver{ path = "/in", secret = SECRET,
      on_event = function(ev) got[#got + 1] = ev end })
  end)
  after_each(function() r:close() end)

  local function hook(sub, extra)
    local body = { target_hook_url = r.url, event_type = sub, headers = { ["X-Webhook-Secret"] = SECRET } }
    for k, v in pairs(extra or {}) do body[k] = v end
    return assert(client.webhooks:create(body))
  end

  local function a_lead()
    return assert(client.leads:list{ limit = 1, in_campaign = true }).items[1]
  end

  local function control(path, body)
    return assert(srv:_call("POST", path, body))
  end

  -- The mock records an attempt once the receiver's answer is back, a
  -- moment after on_event ran: wait (bounded) for `n` of them.
  local function deliveries(n)
    local d
    local stop = socket.gettime() + 10
    repeat
      r:step(0.01)
      d = assert(srv:_call("GET", "/__mock/webhooks/deliveries")).items
    until #d >= n or socket.gettime() > stop
    return d
  end

  it("posts a reply with the documented payload; the API answers it through the event", function()
    hook("reply_received")
    local lead = a_lead()
    local res = control("/__mock/events/reply", { lead_email = lead.email, text = "Pricing please" })
    assert.are.equal(1, res.deliveries)
    assert.is_true(serve_until(r, function() return #got == 1 end))
    local ev = got[1]
    assert.are.equal("reply_received", ev.type)
    assert.are.equal(lead.email, ev.lead_email)
    assert.are.equal(lead.campaign, ev.campaign_id)
    assert.are.equal("Pricing please", ev.text)
    assert.are.equal(res.email_id, ev.email_id)
    for _, name in ipairs(webhook.catalog().base) do assert.is_not_nil(ev.payload[name], name) end
    assert.are.equal(lead.first_name, ev.payload.first_name)
    assert.are.equal(lead.id, assert(ev:lead(client)).id)
    assert.are.equal(res.email_id, assert(ev:email(client)).id)
    assert(ev:set_interest(client, -2))
    assert.are.equal(-2, assert(client.leads:get(lead.id)).lt_interest_status)
    assert.are.equal(lead.campaign, assert(ev:campaign(client)).id)
    local sent = assert(ev:reply(client, { text = "Here it is" }))
    assert.are.equal(ev.email_account, sent.eaccount)
    assert.are.equal(lead.email, sent.to_address_email_list)
    -- the delivery is in the request log (secret header redacted) and the API's delivery log
    deliveries(1)
    local out
    for _, e in ipairs(srv:requests()) do if e.headers[mock_webhooks.LOG_HEADER] then out = e end end
    assert.are.equal(r.url, out.path)
    local how = out.headers[mock_webhooks.LOG_HEADER]
    assert.truthy(how:find("attempt=1; status=200; event_type=reply_received", 1, true))
    assert.are.equal("[REDACTED]", out.headers["x-webhook-secret"])
    local logged = assert(client.webhook_events:list{ search = lead.email }).items[1]
    assert.is_true(logged.success)
    assert.are.equal("reply_received", logged.payload.event_type)
  end)

  it("delivers opens, clicks (as link_clicked), bounces, unsubscribes, interest, account errors, completion", function()
    hook("all_events")
    local lead = a_lead()
    local n = 0
    for _, kind in ipairs{ "open", "click", "bounce", "unsubscribe" } do
      n = n + control("/__mock/events/" .. kind, { lead_email = lead.email }).deliveries
    end
    assert(client.leads:update_interest_status{ lead_email = lead.email, interest_value = 1,
      campaign_id = lead.campaign })
    local acct = assert(client.accounts:list{ limit = 1 }).items[1]
    n = n + control("/__mock/events/account_error", { email = acct.email }).deliveries
    n = n + control("/__mock/campaigns/advance", { campaign_id = lead.campaign }).deliveries
    assert.are.equal(6, n)
    assert.is_true(serve_until(r, function() return #got == 7 end))
    local types = {}
    for _, ev in ipairs(got) do types[ev.type] = ev end
    for _, t in ipairs{ "email_opened", "link_clicked", "email_bounced", "lead_unsubscribed", "lead_interested",
                        "account_error", "campaign_completed" } do
      assert(types[t], "missing " .. t)
    end
    assert.are.equal(acct.email, types.account_error.email_account)
    assert.are.equal(lead.campaign, types.campaign_completed.campaign_id)
    assert.are.equal(3, assert(client.campaigns:get(lead.campaign)).status)
  end)

  it("delivers every interest change the docs mark, and auto replies to all_events only", function()
    hook("all_events")
    hook("reply_received")
    local lead = a_lead()
    -- start from -3 (lost: no event), so every value below is a change
    assert(client.leads:update_interest_status{ lead_email = lead.email, interest_value = -3 })
    local want = {}
    for _, e in ipairs(webhook.catalog().events) do
      if math.type(e.interest_value) == "integer" then
        want[#want + 1] = e.event_type
        assert(client.leads:update_interest_status{ lead_email = lead.email, interest_value = e.interest_value,
          campaign_id = lead.campaign })
      end
    end
    assert.are.equal(8, #want)
    -- -3 (lost) has no event
    assert(client.leads:update_interest_status{ lead_email = lead.email, interest_value = -3 })
    assert.are.equal(1, control("/__mock/events/reply", { lead_email = lead.email, auto = true }).deliveries)
    assert.is_true(serve_until(r, function() return #got == #want + 1 end))
    serve_until(r, function() return #got > #want + 1 end, 0.3)
    assert.are.equal(#want + 1, #got)
    -- deliveries run side by side: compare as sets
    local types = {}
    for _, ev in ipairs(got) do types[ev.type] = (types[ev.type] or 0) + 1 end
    for _, t in ipairs(want) do assert.are.equal(1, types[t], t) end
    assert.are.equal(1, types.auto_reply_received)
  end)

  it("filters by subscription and campaign; custom labels arrive under the label's name", function()
    local lead = a_lead()
    hook("email_link_clicked")
    local labels = assert(client.lead_labels:list{}).items
    hook(core.null, { custom_interest_value = labels[1].interest_status })
    control("/__mock/events/open", { lead_email = lead.email })
    control("/__mock/events/click", { lead_email = lead.email })
    assert(client.leads:update_interest_status{ lead_email = lead.email, interest_value = labels[1].interest_status })
    assert.is_true(serve_until(r, function() return #got == 2 end))
    serve_until(r, function() return #got > 2 end, 0.3)
    assert.are.equal(2, #got)
    local seen = { [got[1].type] = true, [got[2].type] = true }
    assert.is_true(seen.link_clicked)
    assert.is_true(seen[labels[1].label])
  end)

  it("retries a failed delivery after the configured delays and logs each attempt", function()
    control("/__mock/webhooks/settings", { retry_delays = { 0.05, 0.05, 0.05 } })
    r:close()
    local calls = 0
    r = assert(webhook.receiver{ path = "/in", secret = SECRET, on_event = function(ev)
      calls = calls + 1
      if calls < 3 then error("not yet") end
      got[#got + 1] = ev
    end })
    hook("email_opened")
    local lead = a_lead()
    control("/__mock/events/open", { lead_email = lead.email })
    assert.is_true(serve_until(r, function() return #got == 1 end))
    assert.are.equal(3, calls)
    local d = deliveries(3)
    assert.are.equal(3, #d)
    assert.are.same({ 500, 500, 200 }, { d[1].status, d[2].status, d[3].status })
    assert.are.same({ 1, 2, 3 }, { d[1].attempt, d[2].attempt, d[3].attempt })
    local events = assert(client.webhook_events:list{ search = lead.email }).items
    local by_try = {}
    for _, e in ipairs(events) do by_try[e.retry_count] = e end
    assert.is_true(by_try[0].will_retry)
    assert.is_true(by_try[2].retry_successful)
    assert.are.equal(by_try[0].retry_group_id, by_try[2].retry_group_id)
  end)

  it("disables a webhook whose events keep failing, until resumed", function()
    control("/__mock/webhooks/settings", { retry_delays = {}, disable_after = 2 })
    r:close()
    local w = assert(client.webhooks:create{ target_hook_url = r.url, event_type = "email_opened" })
    local lead = a_lead()
    control("/__mock/events/open", { lead_email = lead.email })
    control("/__mock/events/open", { lead_email = lead.email })
    local d
    local stop = socket.gettime() + 10
    repeat
      socket.sleep(0.02)
      d = assert(srv:_call("GET", "/__mock/webhooks/deliveries")).items
    until #d >= 2 or socket.gettime() > stop
    assert.are.equal(2, #d)
    assert.truthy(tostring(d[1].error):find("connect", 1, true))
    assert.are.equal(-1, assert(client.webhooks:get(w.id)).status)
    assert.are.equal(0, control("/__mock/events/open", { lead_email = lead.email }).deliveries)
    assert.are.equal(1, assert(client.webhooks:resume(w.id)).status)
  end)

  it("never contacts a target off loopback: the refusal is recorded, nothing goes out", function()
    assert(client.webhooks:create{ target_hook_url = "http://hooks.example/in", event_type = "reply_received" })
    assert(client.webhooks:create{ target_hook_url = "https://127.0.0.1:" .. r.port .. "/in",
      event_type = "reply_received" })
    local lead = a_lead()
    local takers = 0 -- the seed's hooks.example webhooks count too
    for _, w in ipairs(assert(client.webhooks:list{}).items) do
      if (w.event_type == "reply_received" or w.event_type == "all_events")
         and (w.campaign == nil or w.campaign == lead.campaign) then takers = takers + 1 end
    end
    assert.is_true(takers >= 2)
    assert.are.equal(0, control("/__mock/events/reply", { lead_email = lead.email }).deliveries)
    local d = assert(srv:_call("GET", "/__mock/webhooks/deliveries")).items
    assert.are.equal(takers, #d)
    for _, e in ipairs(d) do
      assert.is_true(e.refused)
      assert.truthy(e.error:find("loopback", 1, true))
    end
    for _, e in ipairs(srv:requests()) do assert.is_nil(e.headers[mock_webhooks.LOG_HEADER]) end
    serve_until(r, function() return #got > 0 end, 0.2)
    assert.are.equal(0, #got)
    -- {success = false, error = ...} in a 200: the client reports it as an error
    local res, err = client.webhooks:test(d[1].webhook_id)
    assert.is_nil(res)
    assert.truthy(tostring(err):find("loopback", 1, true))
  end)

  it("webhooks:test posts a sample event to the target and reports its answer", function()
    local w = hook("email_link_clicked")
    -- the test call waits for the receiver, so send it raw and serve meanwhile
    local c = assert(socket.connect("127.0.0.1", srv.port))
    c:settimeout(10)
    c:send("POST /api/v2/webhooks/" .. w.id .. "/test HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
      .. srv.api_key .. "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    assert.is_true(serve_until(r, function() return #got == 1 end))
    local text = c:receive("*a")
    c:close()
    assert.are.equal("link_clicked", got[1].type)
    local body = decode(text:match("\r\n\r\n(.*)$"))
    assert.is_true(body.success)
    assert.are.equal(200, body.status_code)
  end)

  it("validates the webhook settings", function()
    local res, err = srv:_call("POST", "/__mock/webhooks/settings", { retry_delays = { -1 } })
    assert.is_nil(res)
    assert.truthy(err:find("retry_delays", 1, true))
    res, err = srv:_call("POST", "/__mock/webhooks/settings", { retry_delays = { a = 1 } })
    assert.is_nil(res)
    assert.truthy(err:find("retry_delays must be a list", 1, true))
    res, err = srv:_call("POST", "/__mock/webhooks/settings", { nope = 1 })
    assert.is_nil(res)
    assert.truthy(err:find("unknown webhook setting", 1, true))
    res, err = srv:_call("POST", "/__mock/events/reply", { lead_email = "nobody@nowhere.example" })
    assert.is_nil(res)
    assert.truthy(err:find("no lead", 1, true))
  end)
end)
