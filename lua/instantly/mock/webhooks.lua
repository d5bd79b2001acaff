--- The mock delivers webhooks.
--
-- Events the mock's state produces (a lead replies, opens, clicks,
-- bounces or unsubscribes, an interest status changes, an account errors,
-- a campaign completes) are POSTed, with the payload shape of
-- catalog/webhook-events.json, to every active webhook that subscribes to
-- them. Only http:// targets on loopback are ever contacted; any other
-- target is refused and the refusal recorded. Each delivery runs as a task
-- of the server's loop (the mock keeps answering API calls while a
-- receiver works, even one that calls back into the mock). A failed
-- attempt (no 2xx, refused connection, timeout) is retried after each of
-- `retry_delays`; every attempt lands in the request log (`direction =
-- "out"`), in the webhook delivery log (`GET /webhook-events`) and in
-- `GET /__mock/webhooks/deliveries`. A webhook whose events keep failing
-- is disabled (status -1) until `POST /webhooks/{id}/resume`.
--
-- Control plane (JSON bodies; `lead_email` finds the lead, `campaign_id`
-- narrows it): `POST /__mock/events/reply` (`text`, `html`, `subject`,
-- `auto`), `/open`, `/click` (`url`), `/bounce`, `/unsubscribe`,
-- `/account_error` (`email`, `error`), `POST /__mock/campaigns/advance`
-- (`campaign_id`: the campaign clock runs to the end of the sequence),
-- `GET /__mock/webhooks/deliveries`, `POST /__mock/webhooks/settings`
-- (`retry_delays`, `timeout`, `disable_after`).
-- @module instantly.mock.webhooks

local socket = require "socket"
local http = require "instantly.server.http"
local json = require "instantly.mock.json"
local util = require "instantly.mock.util"
local webhook = require "instantly.webhook"

local encode, null, array = json.encode, json.null, json.array
local gettime = socket.gettime
local fmt = string.format

local M = {}

-- Defaults; the retry schedule is an assumption (see catalog/README.md).
M.DEFAULTS = { retry_delays = { 5, 10, 15 }, timeout = 10, disable_after = 5 }

--- Deliveries remembered by GET /__mock/webhooks/deliveries.
M.KEEP = 1000

--- Pseudo-header on the request-log entry of each outgoing attempt (whose
-- path is the target URL): "webhook=ID; attempt=N; status=S; event_type=T".
M.LOG_HEADER = "x-mock-webhook-delivery"

-- Per-state data (settings, delivery list) lives beside the store, so a
-- reset starts it afresh.
local function state(app)
  local store = app.store
  local st = store.webhook_delivery
  if not st then
    st = { settings = util.deep_copy(M.DEFAULTS), list = {}, first = 1, next = 1, failures = {}, queued = 0 }
    store.webhook_delivery = st
  end
  return st
end

local function s_or_null(v)
  if type(v) == "string" then return v end
  return null
end

-- Targets ---------------------------------------------------------------------------

--- Where a target URL may be delivered: host, port, path; or nil and why not.
function M.target(url)
  if type(url) ~= "string" then return nil, "target is not a string" end
  local scheme, rest = url:match("^(%a+)://(.*)$")
  if not scheme then return nil, "target is not an absolute URL" end
  if scheme:lower() ~= "http" then return nil, "only http:// targets on loopback are delivered by the mock" end
  local authority, path = rest:match("^([^/?#]*)(.*)$")
  if authority:find("@", 1, true) then return nil, "target has user info" end
  local host, port = authority:match("^%[([^%]]+)%]:?(%d*)$")
  if not host then host, port = authority:match("^([^:]+):?(%d*)$") end
  if not host then return nil, "target has no host" end
  host = host:lower()
  local ip
  if host == "localhost" or host == "127.0.0.1" then
    ip = "127.0.0.1"
  elseif host == "::1" then
    ip = "::1"
  elseif host:match("^127%.%d+%.%d+%.%d+$") then
    ip = host
  else
    return nil, "target " .. host .. " is not on loopback: the mock never delivers elsewhere"
  end
  port = math.tointeger(tonumber(port ~= "" and port or "80"))
  if not port or port < 1 or port > 65535 then return nil, "target port is out of range" end
  path = path ~= "" and path or "/"
  if path:sub(1, 1) ~= "/" then path = "/" .. path end
  return ip, port, path:gsub("#.*$", "")
end

-- Payloads --------------------------------------------------------------------------

local LEAD_DATA = { "first_name", "last_name", "company_name", "company_domain", "phone", "website",
  "personalization", "job_title" }

-- "2_1" (the mock's email.step, 0-based step and variant) -> 3, 2
local function step_of(email)
  if type(email) ~= "table" or type(email.step) ~= "string" then return nil end
  local s, v = email.step:match("^(%d+)_(%d+)$")
  if not s then return nil end
  return tonumber(s) + 1, tonumber(v) + 1
end

local function body_of(email, key)
  if type(email) == "table" and type(email.body) == "table" then return s_or_null(email.body[key]) end
  return null
end

-- A delivery payload for `event_type` from the records in `data`.
local function payload(store, event_type, data)
  local camp = data.campaign
  if type(camp) == "string" then camp = store:coll("campaigns"):get(camp) end
  local lead = data.lead
  if not camp and lead and type(lead.campaign) == "string" then camp = store:coll("campaigns"):get(lead.campaign) end
  local p = {
    timestamp = store:now_iso(), event_type = event_type, workspace = store.workspace_id,
    campaign_id = camp and camp.id or null, campaign_name = camp and camp.name or null,
  }
  if lead then
    for _, k in ipairs(LEAD_DATA) do
      if type(lead[k]) == "string" then p[k] = lead[k] end
    end
    if type(lead.payload) == "table" then
      for k, v in pairs(lead.payload) do if p[k] == nil then p[k] = v end end
    end
    p.lead_email = lead.email
  end
  local email, reply = data.email, data.reply
  if email then
    p.email_account = s_or_null(email.eaccount)
    p.step, p.variant = step_of(email)
    p.email_id = email.id
    p.email_subject = s_or_null(email.subject)
    p.email_text, p.email_html = body_of(email, "text"), body_of(email, "html")
  end
  if reply then
    -- email_id is what POST /emails/reply takes as reply_to_uuid: the reply
    p.email_id = reply.id
    p.email_account = s_or_null(reply.eaccount)
    p.unibox_url = "https://app.instantly.ai/app/unibox?thread_id=" .. tostring(reply.thread_id)
    p.reply_subject = s_or_null(reply.subject)
    p.reply_text, p.reply_html = body_of(reply, "text"), body_of(reply, "html")
    local text = p.reply_text ~= null and p.reply_text or ""
    p.reply_text_snippet = text:sub(1, 100)
  end
  if data.account then p.email_account = data.account end
  if data.error then p.error = data.error end
  if data.is_first ~= nil then p.is_first = data.is_first end
  return p
end

-- Which event a generic interest change is: the catalog's event for that
-- value, or a custom label's name; nil when none is documented.
local function interest_event(store, value)
  if value == nil or value == null then return nil end
  for _, e in ipairs(webhook.catalog().events) do
    if e.interest_value == value then return e.event_type, false end
  end
  for _, l in store:coll("lead_labels"):each() do
    if l.interest_status == value then return l.label, true end
  end
  return nil
end

local DELIVERED
local function delivered_types()
  if not DELIVERED then
    DELIVERED = {}
    for _, e in ipairs(webhook.catalog().events) do DELIVERED[e.event_type] = e end
  end
  return DELIVERED
end

-- Does webhook `w` receive event `et` (custom = a custom label's event)?
local function subscribed(w, et, custom, value, campaign_id)
  if w.status ~= 1 then return false end
  if w.campaign ~= nil and w.campaign ~= null and w.campaign ~= campaign_id then return false end
  local sub = w.event_type
  if sub == "all_events" then return true end
  if sub == nil or sub == null then
    return custom and w.custom_interest_value == value
  end
  return not custom and webhook.event_type_for(sub) == et
end

-- The last email we sent the lead, if any.
local function last_sent(store, lead)
  local last
  for _, e in store:coll("emails"):each() do
    if e.ue_type ~= 2 and e.lead == lead.email and (lead.campaign == null or e.campaign_id == lead.campaign) then
      last = e
    end
  end
  return last
end

local function an_account(store, camp)
  if camp and type(camp.email_list) == "table" and type(camp.email_list[1]) == "string" then
    return camp.email_list[1]
  end
  local first = store:coll("accounts").items[1]
  return first and first.email or "sender@mock.example"
end

-- Delivery --------------------------------------------------------------------------

-- One POST from inside a server task; returns the status code or nil and
-- a message. The response head is read (and a Content-Length body
-- drained) within `timeout` seconds.
local function post(ip, port, head, body, timeout)
  local sock = ip:find(":", 1, true) and socket.tcp6() or socket.tcp()
  local deadline = gettime() + timeout
  -- loopback connects at once (or is refused at once)
  sock:settimeout(math.min(timeout, 2))
  local ok, err = sock:connect(ip, port)
  if not ok then sock:close() return nil, "connect: " .. tostring(err) end
  sock:settimeout(0)
  local sent, serr = http.send_all(sock, head .. body)
  if not sent then sock:close() return nil, "send: " .. tostring(serr) end
  local buf, status, need = "", nil, nil
  while true do
    if not status then
      local stop = buf:find("\r\n\r\n", 1, true)
      if stop then
        status = tonumber(buf:match("^HTTP/1%.%d (%d%d%d)"))
        if not status then sock:close() return nil, "malformed status line" end
        need = stop + 3 + (tonumber(buf:sub(1, stop):match("\n[Cc]ontent%-[Ll]ength:%s*(%d+)")) or 0)
      elseif #buf > 64 * 1024 then
        sock:close()
        return nil, "response head too large"
      end
    end
    if status and #buf >= need then break end
    local data, rerr = http.receive_some(sock, deadline)
    if not data then
      sock:close()
      if status then return status end
      return nil, "no answer: " .. tostring(rerr)
    end
    buf = buf .. data
  end
  sock:close()
  return status
end

local function remember(st, entry)
  st.list[st.next] = entry
  entry.seq = st.next
  st.next = st.next + 1
  if st.next - st.first > M.KEEP then
    st.list[st.first] = nil
    st.first = st.first + 1
  end
end

-- The request for webhook `w` and payload `p`: head, body and the headers
-- as the request log shows them.
local function prepare(w, p, ip, port, path)
  local body = encode(p)
  local hdrs = {
    ["Host"] = (ip:find(":", 1, true) and ("[" .. ip .. "]") or ip) .. ":" .. port,
    ["Content-Type"] = "application/json", ["User-Agent"] = "instantly-mock-webhooks",
    ["Connection"] = "close", ["Content-Length"] = tostring(#body),
  }
  local logged = {}
  for k, v in pairs(hdrs) do logged[k:lower()] = v end
  if type(w.headers) == "table" then
    for k, v in pairs(w.headers) do
      if type(k) == "string" and not k:find("[\r\n:]") and type(v) == "string" and not v:find("[\r\n]") then
        hdrs[k] = v
        -- the log shows which headers went, not the secrets in them
        logged[k:lower()] = "[REDACTED]"
      end
    end
  end
  local lines = { "POST " .. path .. " HTTP/1.1" }
  for k, v in pairs(hdrs) do lines[#lines + 1] = k .. ": " .. v end
  return { ip = ip, port = port, path = path, body = body, logged = logged, group = nil,
    head = table.concat(lines, "\r\n") .. "\r\n\r\n" }
end

-- The request log: h-mock's app.log (a reqlog) or this branch's app:record.
local function log_request(app, entry)
  if type(app.log) == "table" and app.log.record then app.log:record(entry, true) else app:record(entry) end
end

-- One attempt, recorded everywhere; returns ok, status, error, ms.
local function attempt(app, store, st, w, p, req, n, delay)
  local t0 = gettime()
  local status, err = post(req.ip, req.port, req.head, req.body, st.settings.timeout)
  local ms = math.floor((gettime() - t0) * 1000 + 0.5)
  local ok = status ~= nil and status >= 200 and status < 300
  local more = not ok and delay ~= nil
  local next_at = more and util.iso(math.floor((gettime() + delay) * 1000)) or null
  local errmsg = ok and null or (err or ("receiver answered " .. status))
  -- outgoing: the path is the target URL; the pseudo-header says what happened
  local logged = {}
  for k, v in pairs(req.logged) do logged[k] = v end
  logged[M.LOG_HEADER] = fmt("webhook=%s; attempt=%d; status=%s; event_type=%s", w.id, n,
    status and tostring(status) or "none", p.event_type)
  log_request(app, { method = "POST", path = w.target_hook_url, raw_query = "", headers = logged, body = req.body })
  store:create("webhook_events", {
    timestamp_created_date = util.date(math.floor(t0 * 1000)), organization_id = store.workspace_id,
    payload = p, success = ok, retry_count = n - 1, will_retry = more, webhook_url = w.target_hook_url,
    status_code = status or null, error_message = errmsg, timestamp_next_retry = next_at,
    retry_group_id = req.group or null, retry_successful = n > 1 and ok or null,
    lead_email = p.lead_email or null, response_time_ms = ms,
  })
  remember(st, { webhook_id = w.id, url = w.target_hook_url, event_type = p.event_type, attempt = n,
    status = status or null, success = ok, error = errmsg, time = t0, lead_email = p.lead_email or null })
  return ok, status, errmsg, ms
end

local function deliver(app, store, st, w, p, req)
  local delays = st.settings.retry_delays
  req.group = store:uuid()
  local success = false
  for n = 1, #delays + 1 do
    local ok = attempt(app, store, st, w, p, req, n, delays[n])
    if ok then success = true break end
    if delays[n] then http.sleep(delays[n]) end
  end
  if success then
    st.failures[w.id] = 0
  else
    local n = (st.failures[w.id] or 0) + 1
    st.failures[w.id] = n
    if n >= st.settings.disable_after then
      w.status = -1
      w.timestamp_error = store:now_iso()
    end
  end
end

local function deliver_task(app, store, st, w, p, req)
  local ok, err = pcall(deliver, app, store, st, w, p, req)
  if not ok and app.log_lines then app.log_lines("webhook delivery error: " .. tostring(err)) end
end

--- Deliver `payload` to webhook `w` (a task of the server loop). Returns
-- true when queued, or false and why the target was refused.
function M.send(app, store, w, p)
  local st = state(app)
  local ip, port, path = M.target(w.target_hook_url)
  if not ip then
    remember(st, { webhook_id = w.id, url = w.target_hook_url, event_type = p.event_type, refused = true,
      error = port, success = false, time = gettime(), lead_email = p.lead_email or null })
    return false, port
  end
  if not app.http then
    return false, "the mock is not serving"
  end
  st.queued = st.queued + 1
  app.http:spawn(deliver_task, app, store, st, w, p, prepare(w, p, ip, port, path))
  return true
end

--- POST /webhooks/{id}/test: one real delivery of a sample event, made
-- while the request waits (inside the server loop, so the mock keeps
-- serving). Returns the API's answer: success, message, response_time_ms,
-- status_code, error.
function M.test(app, store, w)
  local st = state(app)
  local et = "reply_received"
  if type(w.event_type) == "string" and w.event_type ~= "all_events" then
    et = webhook.event_type_for(w.event_type) or et
  end
  local lead
  for _, l in store:coll("leads"):each() do
    if l.campaign ~= null and (w.campaign == null or w.campaign == nil or l.campaign == w.campaign) then
      lead = l
      break
    end
  end
  local data = { lead = lead, campaign = w.campaign ~= null and w.campaign or nil }
  if et == "reply_received" and lead then
    data.email = last_sent(store, lead)
    data.reply = { id = store:uuid(), eaccount = data.email and data.email.eaccount or an_account(store),
      thread_id = data.email and data.email.thread_id or store:uuid(), subject = "Re: test",
      body = { text = "This is a test reply.", html = "<p>This is a test reply.</p>" } }
  end
  local p = payload(store, et, data)
  local ip, port, path = M.target(w.target_hook_url)
  if not ip then
    remember(st, { webhook_id = w.id, url = w.target_hook_url, event_type = et, refused = true,
      error = port, success = false, time = gettime(), lead_email = p.lead_email or null })
    return { success = false, message = "Delivery refused", response_time_ms = 0, status_code = null, error = port }
  end
  local ok, status, errmsg, ms = attempt(app, store, st, w, p, prepare(w, p, ip, port, path), 1, nil)
  return { success = ok, message = ok and "Test event delivered" or "Delivery failed",
    response_time_ms = ms, status_code = status or null, error = errmsg }
end

--- An event the state of `store` produced, to every webhook there that
-- takes it. `event_type` is a delivered type of the catalog, or
-- "lead_interest_status" (the mock's seam; `data.interest_status` is mapped
-- to its event or custom label). Returns how many deliveries were queued.
function M.emit(app, store, event_type, data)
  data = data or {}
  local custom, value = false, data.interest_status
  if not delivered_types()[event_type] then
    local et, is_custom = interest_event(store, value)
    if not et then return 0 end
    event_type, custom = et, is_custom
  end
  local p = payload(store, event_type, data)
  local n = 0
  for _, w in store:coll("webhooks"):each() do
    if subscribed(w, event_type, custom, value, p.campaign_id) then
      if M.send(app, store, w, p) then n = n + 1 end
    end
  end
  return n
end

-- Control plane ---------------------------------------------------------------------

local function find_lead(store, b)
  if type(b) ~= "table" or not util.is_email(b.lead_email) then return nil, "lead_email must be an email address" end
  local want = b.lead_email:lower()
  local found
  for _, l in store:coll("leads"):each() do
    if type(l.email) == "string" and l.email:lower() == want
       and (not b.campaign_id or l.campaign == b.campaign_id) then
      if l.campaign ~= null and l.campaign ~= nil then return l end
      found = found or l
    end
  end
  if not found then return nil, "no lead " .. b.lead_email end
  return found
end

local function bump(lead, count, stamp, store)
  lead[count] = (tonumber(lead[count]) or 0) + 1
  if stamp then lead[stamp] = store:now_iso() end
  return lead[count] == 1
end

local ACTIONS = {}

ACTIONS.reply = function(store, lead, b)
  local camp = lead.campaign ~= null and store:coll("campaigns"):get(lead.campaign) or nil
  local sent = last_sent(store, lead)
  local eacc = sent and sent.eaccount or an_account(store, camp)
  local subject = b.subject or ("Re: " .. tostring(sent and sent.subject or (camp and camp.name) or "our email"))
  local text = b.text or (b.html and b.html:gsub("<[^>]*>", "")) or "Thanks - tell me more."
  local html = b.html or ("<p>" .. text .. "</p>")
  local reply = store:create("emails", {
    thread_id = sent and sent.thread_id or store:uuid(), campaign_id = camp and camp.id or null,
    list_id = null, lead = lead.email, lead_id = lead.id, eaccount = eacc, organization_id = store.workspace_id,
    step = sent and sent.step or null, timestamp_email = store:now_iso(),
    message_id = fmt("<%s@%s>", store:uuid(), lead.email:match("@(.+)$")), subject = subject,
    from_address_email = lead.email, to_address_email_list = eacc, body = { text = text, html = html },
    ue_type = 2, is_unread = 1, is_auto_reply = b.auto and 1 or 0, ai_assisted = 0, is_focused = 1,
    i_status = lead.lt_interest_status, content_preview = text:sub(1, 120), subsequence_id = null,
    ai_agent_id = null, reminder_ts = null, attachment_json = null,
    from_address_json = array{ { address = lead.email, name = lead.first_name or "" } },
    to_address_json = array{ { address = eacc, name = "" } },
  })
  local first = bump(lead, "email_reply_count", "timestamp_last_reply", store)
  return b.auto and "auto_reply_received" or "reply_received",
    { lead = lead, campaign = camp, email = sent, reply = reply, is_first = first }, { email_id = reply.id }
end

ACTIONS.open = function(store, lead)
  local sent = last_sent(store, lead)
  local first = bump(lead, "email_open_count", "timestamp_last_open", store)
  return "email_opened", { lead = lead, email = sent, is_first = first }
end

ACTIONS.click = function(store, lead, b)
  local sent = last_sent(store, lead)
  local first = bump(lead, "email_click_count", "timestamp_last_click", store)
  return "link_clicked", { lead = lead, email = sent, is_first = first, url = b.url }
end

ACTIONS.bounce = function(store, lead)
  lead.status = -1
  return "email_bounced", { lead = lead, email = last_sent(store, lead) }
end

ACTIONS.unsubscribe = function(store, lead)
  lead.status = -2
  return "lead_unsubscribed", { lead = lead, email = last_sent(store, lead) }
end

local function positive(v) return type(v) == "number" and v > 0 end

-- The store an event happened in (h-mock keeps one per sub-workspace).
local function store_of(app, data)
  local id = type(data) == "table" and data.workspace_id
  return (id and app.stores and app.stores[id]) or app.store
end

-- The store a control request acts on: x-as-workspace where the mock
-- knows sub-workspaces, else the one store.
local function control_store(app, req)
  if app.store_for_control then return app:store_for_control(req) end
  return app.store
end

--- Hook into a mock app (instantly.mock.server loads this as an extension):
-- a sink for the events its state emits, and the control routes above.
function M.install(app)
  app:add_sink(function(event_type, data, a) M.emit(a, store_of(a, data), event_type, data) end)
  local routes = app.routes

  for name, action in pairs(ACTIONS) do
    routes["POST /__mock/events/" .. name] = function(a, req, b)
      local store, code, msg = control_store(a, req)
      if not store then return code, { error = msg } end
      local lead, err = find_lead(store, b)
      if not lead then return 404, { error = err } end
      local et, data, extra = action(store, lead, b)
      data.workspace_id = store.workspace_id
      local n = M.emit(a, store, et, data)
      local out = { ok = true, event_type = et, deliveries = n }
      for k, v in pairs(extra or {}) do out[k] = v end
      return 200, out
    end
  end

  routes["POST /__mock/events/account_error"] = function(a, req, b)
    if type(b) ~= "table" or type(b.email) ~= "string" then return 400, { error = "email must be an account email" } end
    local store, code, msg = control_store(a, req)
    if not store then return code, { error = msg } end
    local acct = store:coll("accounts"):get(b.email)
    if not acct then return 404, { error = "no account " .. b.email } end
    acct.status = -1
    local n = M.emit(a, store, "account_error", { account = acct.email,
      error = type(b.error) == "string" and b.error or "Connection error: authentication failed" })
    return 200, { ok = true, event_type = "account_error", deliveries = n }
  end

  -- The campaign clock: run every step to the end; leads still in the
  -- sequence complete, and so does the campaign (app:complete_campaign,
  -- which emits "campaign_completed").
  routes["POST /__mock/campaigns/advance"] = function(a, req, b)
    if type(b) ~= "table" or type(b.campaign_id) ~= "string" then return 400, { error = "campaign_id is required" } end
    local store, code, msg = control_store(a, req)
    if not store then return code, { error = msg } end
    local camp = store:coll("campaigns"):get(b.campaign_id)
    if not camp then return 404, { error = "no campaign " .. b.campaign_id } end
    local done = 0
    for _, l in store:coll("leads"):each() do
      if l.campaign == camp.id and (l.status == 1 or l.status == 2) then
        l.status = 3
        done = done + 1
      end
    end
    local st = state(a)
    local before = st.queued
    a:complete_campaign(store, camp)
    return 200, { ok = true, event_type = "campaign_completed", leads_completed = done,
      deliveries = st.queued - before }
  end

  routes["GET /__mock/webhooks/deliveries"] = function(a, req)
    local st = state(a)
    local since = math.tointeger(tonumber(util.parse_query(req.raw_query).since)) or 0
    local out = array{}
    for i = math.max(st.first, since + 1), st.next - 1 do out[#out + 1] = st.list[i] end
    return 200, { items = out }
  end

  routes["POST /__mock/webhooks/settings"] = function(a, _, b)
    if type(b) ~= "table" then return 400, { error = "settings must be an object" } end
    local s = state(a).settings
    for k, v in pairs(b) do
      if k == "retry_delays" then
        if type(v) ~= "table" or (next(v) ~= nil and not json.is_array(v)) or #v > 10 then
          return 400, { error = "retry_delays must be a list of at most 10 numbers" }
        end
        for _, d in ipairs(v) do
          if type(d) ~= "number" or d < 0 or d > 3600 then
            return 400, { error = "retry_delays must be seconds (0-3600)" }
          end
        end
      elseif k == "timeout" or k == "disable_after" then
        if not positive(v) then return 400, { error = k .. " must be a positive number" } end
      else
        return 400, { error = "unknown webhook setting '" .. tostring(k) .. "'" }
      end
    end
    for k, v in pairs(b) do s[k] = v end
    return 200, { ok = true, settings = s }
  end
end

return M
