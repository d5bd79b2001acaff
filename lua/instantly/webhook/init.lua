--- Receive Instantly's webhook deliveries: parse, check, de-duplicate, serve.
--
-- Instantly POSTs a JSON object per event to the webhook's
-- `target_hook_url`. It does **not sign** deliveries: the only way to tell a
-- real delivery from a forged one is a secret you put in the webhook's own
-- `headers` (`client.webhooks:create{..., headers = {["X-Webhook-Secret"] = s}}`)
-- and check on receipt with `verify` (constant-time). Failed deliveries are
-- retried, so the same event can arrive twice: `dedupe` remembers what was
-- handled, in bounded memory.
--
-- `receiver{...}` is a small HTTP server for these deliveries, on the same
-- LuaSocket server core as the mock; `listen{...}` runs one until stopped.
-- It answers 2xx only after `on_event` returned, 5xx when it raised (so the
-- sender retries), 4xx for anything malformed, oversized or unauthenticated
-- (which never reaches `on_event`), and never logs the secret.
-- @module instantly.webhook
-- @usage
-- local webhook = require "instantly.webhook"
-- webhook.listen{ port = 8090, path = "/hooks", secret = os.getenv("HOOK_SECRET"),
--   on_event = function(ev) print(ev.type, ev.lead_email) end }

local core = require "instantly.core"
local errors = require "instantly.request.error"
local http = require "instantly.server.http"

local json_decode, json_encode = core.json_decode, core.json_encode
local type, pairs, ipairs, tostring, pcall, error = type, pairs, ipairs, tostring, pcall, error
local byte, fmt = string.byte, string.format

local M = {}

--- Header carrying the shared secret unless `secret_header` says otherwise.
M.SECRET_HEADER = "x-webhook-secret"

--- Largest delivery the receiver reads (bytes); larger ones get 413.
M.MAX_BODY = 1024 * 1024

--- Events a default `dedupe` filter remembers.
M.DEDUPE_SIZE = 10000

local function fail(reason, message, status)
  return nil, errors.new{ kind = "webhook", reason = reason, message = message, status = status }
end

-- Header lookup, whatever the case of the names.
local function header(headers, name)
  if type(headers) ~= "table" then return nil end
  local v = headers[name]
  if v ~= nil then return v end
  for k, val in pairs(headers) do
    if type(k) == "string" and k:lower() == name then return val end
  end
  return nil
end

local function str(v)
  if type(v) == "string" then return v end
  return nil
end

-- The event catalog ---------------------------------------------------------------

--- The event catalog (catalog/webhook-events.json, generated into
-- `instantly.webhook.catalog`; JSON null is an absent key).
-- @treturn table `{events = {{subscription, event_type, fields, interest_value, ...}}, fields, base, delivery, ...}`
function M.catalog()
  return require "instantly.webhook.catalog"
end

--- The `event_type` a delivery carries for a subscription name
-- (`"email_link_clicked"` → `"link_clicked"`), or nil if unknown.
function M.event_type_for(subscription)
  for _, e in ipairs(M.catalog().events) do
    if e.subscription == subscription then return e.event_type end
  end
  return nil
end

--- The subscription name for a delivered `event_type`
-- (`"link_clicked"` → `"email_link_clicked"`); nil for custom labels and
-- types only `all_events` receives.
function M.subscription_for(event_type)
  for _, e in ipairs(M.catalog().events) do
    if e.event_type == event_type then return e.subscription end
  end
  return nil
end

-- Events ---------------------------------------------------------------------------

local Event = {}
Event.__index = Event
Event.__name = "instantly.webhook.Event"

local function check_client(client, method)
  if type(client) ~= "table" or type(client.leads) ~= "table" then
    error("event:" .. method .. ": client must be an instantly client", 3)
  end
end

local function need(self, field, method)
  local v = self[field]
  if type(v) ~= "string" or v == "" then
    error(fmt("event:%s: this %s event has no %s", method, tostring(self.type), field), 3)
  end
  return v
end

--- The lead the event is about, looked up by email (and campaign).
-- @return the lead record, or nil and an error (`reason = "not_found"` when none matches)
function Event:lead(client)
  check_client(client, "lead")
  local email = need(self, "lead_email", "lead")
  local page, err = client.leads:list{ search = email, campaign = self.campaign_id, limit = 10 }
  if not page then return nil, err end
  for _, l in ipairs(page.items) do
    if type(l.email) == "string" and l.email:lower() == email:lower() then return l end
  end
  return fail("not_found", "no lead with email " .. email .. " in campaign " .. tostring(self.campaign_id))
end

--- The campaign the event belongs to (`client.campaigns:get`).
function Event:campaign(client)
  check_client(client, "campaign")
  local id = need(self, "campaign_id", "campaign")
  return client.campaigns:get(id)
end

--- The email the event refers to (`client.emails:get(email_id)`).
function Event:email(client)
  check_client(client, "email")
  local id = need(self, "email_id", "email")
  return client.emails:get(id)
end

--- Answer in the thread: `client.emails:reply` with `reply_to_uuid` = the
-- event's `email_id` and `eaccount` = its `email_account`.
-- @tparam table client the client to answer through
-- @tparam table opts `text` and/or `html` (required), `subject` (default
-- "Re: " + the reply's subject), `eaccount` (default the event's account)
function Event:reply(client, opts)
  check_client(client, "reply")
  if type(opts) ~= "table" then error("event:reply: opts must be a table", 2) end
  for k in pairs(opts) do
    if k ~= "text" and k ~= "html" and k ~= "subject" and k ~= "eaccount" then
      error("event:reply: unknown option '" .. tostring(k) .. "'", 2)
    end
  end
  if type(opts.text) ~= "string" and type(opts.html) ~= "string" then
    error("event:reply: opts.text or opts.html must be a string", 2)
  end
  local id = need(self, "email_id", "reply")
  local eaccount = opts.eaccount or need(self, "email_account", "reply")
  local subject = opts.subject or self.subject or ""
  if not subject:lower():match("^re:") then subject = "Re: " .. subject end
  return client.emails:reply{
    reply_to_uuid = id, eaccount = eaccount, subject = subject,
    body = { text = opts.text, html = opts.html },
  }
end

--- Label the lead's interest (`client.leads:update_interest_status`,
-- scoped to the event's campaign).
-- @tparam table client the client to label through
-- @tparam number value an `lt_interest_status` value (1 interested, -1 not interested, ...)
function Event:set_interest(client, value)
  check_client(client, "set_interest")
  if type(value) ~= "number" then error("event:set_interest: value must be a number", 2) end
  local email = need(self, "lead_email", "set_interest")
  return client.leads:update_interest_status{
    lead_email = email, interest_value = value, campaign_id = self.campaign_id,
  }
end

--- The subscription name that receives this event (see `subscription_for`).
function Event:subscription()
  return M.subscription_for(self.type)
end

--- A string naming the event: equal for the retries of one delivery.
-- Built from the type, time, campaign, lead and email ids.
function Event:key()
  return table.concat({ tostring(self.type), tostring(self.timestamp), tostring(self.campaign_id),
    tostring(self.lead_email), tostring(self.email_id), tostring(self.email_account) }, "\0")
end

function Event:__tostring()
  return fmt("instantly.webhook.Event(%s %s %s)", tostring(self.type), tostring(self.lead_email or "-"),
    tostring(self.timestamp))
end

--- Parse a delivery.
-- @tparam string body the request body
-- @tparam[opt] table headers request headers (any case); a Content-Type,
-- when present, must be JSON
-- @return an event: `type` (the payload's `event_type`), `timestamp`,
-- `workspace`, `campaign_id`, `campaign_name`, `lead_email`,
-- `email_account`, `email_id`, `subject` / `text` / `html` (the reply's for
-- reply events, else the campaign email's), `payload` (the whole object as
-- given, lead data included); or nil and an `instantly.Error` (kind
-- `"webhook"`, `reason` `"content_type"`, `"json"` or `"shape"`).
function M.parse(body, headers)
  if type(body) ~= "string" then error("webhook.parse: body must be a string", 2) end
  if headers ~= nil and type(headers) ~= "table" then error("webhook.parse: headers must be a table", 2) end
  local ct = header(headers, "content-type")
  if ct and not tostring(ct):lower():find("json", 1, true) then
    return fail("content_type", "delivery is not JSON (Content-Type: " .. tostring(ct) .. ")", 415)
  end
  local p, err = json_decode(body)
  if p == nil then return fail("json", "delivery body is not valid JSON: " .. tostring(err), 400) end
  if type(p) ~= "table" or p[1] ~= nil then return fail("shape", "delivery body is not a JSON object", 400) end
  local t = p.event_type
  if type(t) ~= "string" or t == "" then
    return fail("shape", "delivery has no event_type string", 400)
  end
  local reply = str(p.reply_text) or str(p.reply_html) or str(p.reply_subject)
  local ev = {
    type = t, timestamp = str(p.timestamp), workspace = str(p.workspace),
    campaign_id = str(p.campaign_id), campaign_name = str(p.campaign_name),
    lead_email = str(p.lead_email), email_account = str(p.email_account), email_id = str(p.email_id),
    subject = reply and str(p.reply_subject) or str(p.email_subject),
    text = reply and str(p.reply_text) or str(p.email_text),
    html = reply and str(p.reply_html) or str(p.email_html),
    payload = p,
  }
  return setmetatable(ev, Event)
end

-- Verification ---------------------------------------------------------------------

-- Equal strings in time that depends only on the expected length.
local function same(given, expected)
  local n, m = #expected, #given
  local diff = n ~ m
  for i = 1, n do
    local a = i <= m and byte(given, i) or 0
    diff = diff | (a ~ byte(expected, i))
  end
  return diff == 0
end

--- Check the shared secret a delivery carries.
-- Instantly does not sign deliveries; this checks the header you set in the
-- webhook's `headers`, comparing in constant time.
-- @tparam table headers request headers (any case)
-- @tparam string secret the expected value
-- @tparam[opt] string name header name (default `M.SECRET_HEADER`); a
-- value of the form "Bearer <secret>" is accepted for `authorization`
-- @treturn boolean
function M.verify(headers, secret, name)
  if type(secret) ~= "string" or secret == "" then
    error("webhook.verify: secret must be a non-empty string", 2)
  end
  if name ~= nil and type(name) ~= "string" then error("webhook.verify: name must be a string", 2) end
  name = (name or M.SECRET_HEADER):lower()
  local v = header(headers, name)
  if type(v) ~= "string" then return false end
  if name == "authorization" then v = v:match("^[Bb]earer%s+(.*)$") or v end
  return same(v, secret)
end

-- Duplicates -----------------------------------------------------------------------

local Dedupe = {}
Dedupe.__index = Dedupe

--- A filter that remembers the last `size` event keys (FIFO).
-- `filter:seen(ev)` says whether `ev` was remembered; `filter:add(ev)`
-- remembers it (the receiver adds only after `on_event` succeeded, so a
-- failed event is handled again when retried).
-- @tparam[opt] table opts `size` (default `M.DEDUPE_SIZE`)
function M.dedupe(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("webhook.dedupe: opts must be a table", 2) end
  for k in pairs(opts) do
    if k ~= "size" then error("webhook.dedupe: unknown option '" .. tostring(k) .. "'", 2) end
  end
  local size = opts.size or M.DEDUPE_SIZE
  if math.type(size) ~= "integer" or size < 1 then
    error("webhook.dedupe: size must be a positive integer", 2)
  end
  return setmetatable({ size = size, ring = {}, set = {}, next = 1, count = 0 }, Dedupe)
end

local function key_of(ev)
  if type(ev) == "string" then return ev end
  if getmetatable(ev) == Event then return ev:key() end
  error("dedupe: expected an event or a key string", 3)
end

function Dedupe:seen(ev)
  return self.set[key_of(ev)] ~= nil
end

function Dedupe:add(ev)
  local k = key_of(ev)
  if self.set[k] then return end
  local old = self.ring[self.next]
  if old then self.set[old] = nil else self.count = self.count + 1 end
  self.ring[self.next] = k
  self.set[k] = true
  self.next = self.next % self.size + 1
end

--- Keys remembered now (at most `size`).
function Dedupe:__len()
  return self.count
end

-- The receiver ---------------------------------------------------------------------

local Receiver = {}
Receiver.__index = Receiver

local OPTS = {
  host = "string", port = "number", path = "string", secret = "string", secret_header = "string",
  on_event = "function", max_body = "number", dedupe = "any", log = "function", on_tick = "function",
}

local function reply(status, value)
  return { status = status, body = json_encode(value), headers = { ["Content-Type"] = "application/json" } }
end

local function scrubber(secret, log)
  if not log then return function() end end
  if not secret then return log end
  local pattern = secret:gsub("%p", "%%%0")
  return function(line)
    log((tostring(line):gsub(pattern, "[REDACTED]")))
  end
end

--- A receiver, bound and ready to serve (nothing runs until `run` or `step`).
-- @tparam table opts `on_event(event, receiver)` (required); `host`
-- ("127.0.0.1"); `port` (0: any free port); `path` ("/": only this path is
-- served); `secret` (deliveries without it get 401) and `secret_header`
-- (`M.SECRET_HEADER`); `max_body` (`M.MAX_BODY`); `dedupe` (a `dedupe()`
-- filter, or false to hand every retry to on_event; default a new filter);
-- `log(line)` (one line per delivery; never contains the secret);
-- `on_tick(now)` about once a second while running.
-- @return the receiver (`url`, `port`, `step`, `run`, `stop`, `close`,
-- `stats`), or nil and a message when the port cannot be bound
function M.receiver(opts)
  if type(opts) ~= "table" then error("webhook.receiver: opts must be a table", 2) end
  for k, v in pairs(opts) do
    local want = OPTS[k]
    if not want then error("webhook.receiver: unknown option '" .. tostring(k) .. "'", 2) end
    if want ~= "any" and type(v) ~= want then
      error("webhook.receiver: option '" .. k .. "' must be a " .. want, 2)
    end
  end
  if not opts.on_event then error("webhook.receiver: option 'on_event' is required", 2) end
  if opts.secret == "" then error("webhook.receiver: option 'secret' must not be empty", 2) end
  local dd = opts.dedupe
  if dd == nil or dd == true then
    dd = M.dedupe()
  elseif dd ~= false and getmetatable(dd) ~= Dedupe then
    error("webhook.receiver: option 'dedupe' must be a webhook.dedupe() filter or false", 2)
  end
  local path = opts.path or "/"
  if path:sub(1, 1) ~= "/" then error("webhook.receiver: option 'path' must start with /", 2) end
  local self = setmetatable({
    path = path, secret = opts.secret, secret_header = opts.secret_header or M.SECRET_HEADER,
    on_event = opts.on_event, dedupe = dd or nil,
    log = scrubber(opts.secret, opts.log),
    stats = { received = 0, handled = 0, duplicates = 0, rejected = 0, failed = 0 },
  }, Receiver)
  self.server = http.new{
    host = opts.host or "127.0.0.1", port = opts.port or 0,
    max_body = opts.max_body or M.MAX_BODY, max_header = 32 * 1024, idle_timeout = 30,
    handler = function(req) return self:_handle(req) end,
    error_body = function(_, msg) return json_encode{ error = msg } end,
    on_tick = opts.on_tick, log = self.log,
  }
  local ok, err = self.server:bind()
  if not ok then return nil, "webhook.receiver: cannot listen on " .. tostring(opts.host or "127.0.0.1")
    .. ":" .. tostring(opts.port or 0) .. ": " .. tostring(err) end
  self.port = self.server.port
  local host = self.server.host
  self.url = "http://" .. (host:find(":", 1, true) and ("[" .. host .. "]") or host) .. ":" .. self.port .. path
  return self
end

function Receiver:_reject(req, status, message)
  self.stats.rejected = self.stats.rejected + 1
  self.log(fmt("%s %s %d %s", req.method, req.path, status, message))
  return reply(status, { error = message })
end

function Receiver:_handle(req)
  self.stats.received = self.stats.received + 1
  if req.path ~= self.path then return self:_reject(req, 404, "not found") end
  if req.method ~= "POST" then
    local res = self:_reject(req, 405, "method not allowed")
    res.headers.Allow = "POST"
    return res
  end
  if self.secret and not M.verify(req.headers, self.secret, self.secret_header) then
    return self:_reject(req, 401, "missing or wrong " .. self.secret_header)
  end
  local ev, err = M.parse(req.body, req.headers)
  if not ev then return self:_reject(req, err.status or 400, err.message) end
  local dd = self.dedupe
  if dd and dd:seen(ev) then
    self.stats.duplicates = self.stats.duplicates + 1
    self.log(fmt("POST %s 200 %s duplicate", req.path, ev.type))
    return reply(200, { ok = true, duplicate = true })
  end
  local ok, herr = pcall(self.on_event, ev, self)
  if not ok then
    self.stats.failed = self.stats.failed + 1
    self.log(fmt("POST %s 500 %s on_event raised: %s", req.path, ev.type, tostring(herr)))
    return reply(500, { error = "on_event failed" })
  end
  if dd then dd:add(ev) end
  self.stats.handled = self.stats.handled + 1
  self.log(fmt("POST %s 200 %s %s", req.path, ev.type, tostring(ev.lead_email or "-")))
  return reply(200, { ok = true })
end

--- Serve for up to `timeout` seconds (default 0: only what is ready now).
-- For a script that does its own work between deliveries.
function Receiver:step(timeout)
  if timeout ~= nil and type(timeout) ~= "number" then error("receiver:step: timeout must be a number", 2) end
  if self.closed then error("receiver:step: the receiver is closed", 2) end
  self.server:step(timeout or 0)
end

--- Serve until `stop()` (from `on_event` or `on_tick`), then close.
function Receiver:run()
  if self.closed then error("receiver:run: the receiver is closed", 2) end
  local server = self.server
  while not server.stopping do server:step(1.0) end
  self:close()
end

--- Ask `run` to return after the current delivery.
function Receiver:stop()
  self.server:stop()
end

--- Close the listening socket and open connections (idempotent).
function Receiver:close()
  if self.closed then return end
  self.closed = true
  self.server:stop()
  self.server:close()
end
Receiver.__close = Receiver.close
Receiver.__gc = Receiver.close

--- Bind a receiver and serve until it is stopped.
-- Takes the options of `receiver`; `on_event(event, receiver)` may call
-- `receiver:stop()`.
-- @return true once stopped, or nil and a message if the port cannot be bound
function M.listen(opts)
  local r, err = M.receiver(opts)
  if not r then return nil, err end
  r:run()
  return true
end

M.Event = Event
return M
