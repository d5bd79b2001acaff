--- The request pipeline: rate limiting, sending, retrying, decoding and
-- turning failures into `instantly.Error` values.
--
-- The client makes one sender with `pipeline.new{...}` and hands it to the
-- builder; nothing here reads the client itself.
--
-- Scheduler hook (the contract coroutine concurrency builds on): every
-- network call and every wait in here asks `pipeline.scheduler()` for the
-- scheduler of the running coroutine. When there is one `s`, the pipeline
-- calls `s:request(session, req)`, which must return exactly what
-- `session:request(req)` returns (all of it: with `req.decode`, the core
-- may answer `status, value, headers, true`), and `s:sleep(seconds)`; otherwise it
-- calls `session:request(req)` and `core.sleep(seconds)`. `request` must
-- take what it needs from `req` before it suspends the coroutine: the
-- sender fills the same table for the next call, of any coroutine. A
-- scheduler registers itself for each coroutine it runs
-- (`pipeline.attach(co, s)`, and forgets it with `pipeline.attach(co,
-- nil)` when it is done with it) and can then suspend that coroutine
-- while its transfer runs or its wait elapses. The lookup is by coroutine, not by client, so one scheduler
-- drives the calls of every client a task uses. The rate limiter is shared
-- by all coroutines of a client; it takes its slots without yielding and
-- re-checks after every sleep (see `instantly.request.ratelimit`).
-- @module instantly.request.pipeline

local core = require "instantly.core"
local Err = require "instantly.request.error"
local ratelimit = require "instantly.request.ratelimit"
local redact = require "instantly.request.redact"

local type, tostring, tonumber = type, tostring, tonumber
local getmetatable, setmetatable = getmetatable, setmetatable
local running, random, min = coroutine.running, math.random, math.min
local ostime, osdate = os.time, os.date
local concat = table.concat

local monotime, sleep_plain = core.monotime, core.sleep
local parse_headers, json_decoder = core.parse_headers, core.json_decoder
local rawget, rawset, next = rawget, rawset, next
local array_mt = core.array_mt

local M = {}

-- coroutine -> scheduler; weak keys, so a finished coroutine is forgotten.
local schedulers = setmetatable({}, { __mode = "k" })
-- How many coroutines are attached now (an upper bound: one collected
-- while attached is never counted down). While none is, `send` does not
-- look for a scheduler (no call to coroutine.running per request).
local nattached = 0

--- `attached.map`: the coroutine -> scheduler table while some coroutine
-- is attached, false while none is. The builder takes the short way of
-- `send` itself (see `send`) and looks the running coroutine up in it
-- only when it is not false, so a call after a gather has ended costs
-- what it cost before any gather.
M.attached = { map = false }
local attached = M.attached

--- Register (or with nil, forget) the scheduler that runs coroutine `co`.
-- @tparam thread co
-- @tparam table|nil s an object with `request(session, req)` and `sleep(seconds)`
function M.attach(co, s)
  local old = schedulers[co]
  if s ~= nil and old == nil then
    nattached = nattached + 1
  elseif s == nil and old ~= nil then
    nattached = nattached - 1
  end
  schedulers[co] = s
  attached.map = nattached > 0 and schedulers
end

--- The scheduler of coroutine `co` (default: the running one), or nil.
-- @tparam[opt] thread co
-- @treturn table|nil
function M.scheduler(co)
  return schedulers[co or running()]
end

--- A sender: what `send` needs from a client, fixed when it is made.
-- @tparam table cfg `session` (an object with `request(req)`, and
--   `submit`/`poll` for concurrency), `key` (the API key: errors are
--   redacted with it), `max_retries`, `timeout`, `connect_timeout` (nil:
--   the session's), `retry` (`{base =, cap =, max_retry_after =}`),
--   `limiter` (nil: no client-side rate limit, else `{global = windows,
--   max_wait =}`), `on_request`, `on_response`, `on_wait` (hooks or nil)
-- @treturn table the sender (a plain table with those fields)
function M.new(cfg)
  local session = cfg.session
  -- A core session (the SDK's own, or one shared with a workspace view)
  -- answers with the header block as a string, parsed only when a header
  -- is read; it copies what it needs from a request table before it
  -- returns, so one table per sender carries every request. An injected
  -- transport gets a fresh table per request (it may keep it) and answers
  -- with a headers table.
  local mt = type(session) == "userdata" and getmetatable(session)
  local is_core = type(mt) == "table" and mt.__name == "instantly.Session"
  -- That table carries the sender's timeouts from the start and never a
  -- body: a request with a body, or with timeouts of its own, gets a
  -- table of its own (see `send`), so the common call writes three
  -- fields and no absent key.
  local req = is_core and {
    raw_headers = true, timeout = cfg.timeout, connect_timeout = cfg.connect_timeout,
  } or false
  local limiter, on_request, on_response = cfg.limiter or false, cfg.on_request or false,
    cfg.on_response or false
  -- (what is absent is false, not nil: `send` reads every field on every
  -- call, and a key that is there reads faster than one that is not)
  return {
    session = session, key = cfg.key, max_retries = cfg.max_retries, timeout = cfg.timeout,
    connect_timeout = cfg.connect_timeout, retry = cfg.retry, limiter = limiter,
    on_request = on_request, on_response = on_response, on_wait = cfg.on_wait or false,
    req = req,
    -- the table again when a call may take the short way (see `send`):
    -- a core session, no client-side rate limit, no request hooks
    fast = not limiter and not on_request and not on_response and req,
    -- and the generated methods' own for the same calls, which also
    -- carries the decoder (`decode`) of the call's answer: the core
    -- decodes a 2xx body from its buffer, without a Lua string of it
    -- (see instantly.request.builder's `finish`)
    fast_decode = not limiter and not on_request and not on_response and is_core and {
      raw_headers = true, timeout = cfg.timeout, connect_timeout = cfg.connect_timeout, decode = false,
    },
  }
end

-- Response headers parsed on first use: a core session asked for
-- raw_headers answers with the header block as a string; it becomes a
-- table that fills itself from the block the first time it is indexed,
-- assigned to or walked with pairs (then the metatable is gone and it is
-- a plain table). Building the table costs a tenth of a small request;
-- most calls never read a header. The block waits in the table at [1]
-- (header names are strings), so the metatable is one for every response
-- and a response costs one small table with no hash part until it is
-- filled (a private table as the key cost ~550 instructions more a call).
-- Only raw access sees the block: rawget, next, and ipairs (whose first
-- step is raw); `#` fills the table first.
local RAW = 1
local LAZY = { __name = "instantly.headers" }
local function fill(t)
  if getmetatable(t) == LAZY then
    local raw = rawget(t, RAW)
    setmetatable(t, nil)
    t[RAW] = nil
    parse_headers(raw, t)
  end
  return t
end
function LAZY.__index(t, k) return rawget(fill(t), k) end
function LAZY.__newindex(t, k, v) rawset(fill(t), k, v) end
function LAZY.__pairs(t) return next, fill(t), nil end
function LAZY.__len(t) return #fill(t) end
-- (the builder's copy of the short way wraps the block the same way)
M.LAZY = LAZY

--- The headers table of a response as a plain table (parsed now if it
-- was parsed lazily); for code that walks it with `next`.
-- @tparam table|nil h
-- @treturn table|nil
function M.headers(h)
  if type(h) == "table" then fill(h) end
  return h
end

-- Methods that may be repeated after the request may have reached the
-- server. POST and PATCH are only repeated when the request provably never
-- reached it (connect/dns failure) or the server refused it with 429.
local IDEMPOTENT = { GET = true, HEAD = true, OPTIONS = true, PUT = true, DELETE = true }
M.IDEMPOTENT = IDEMPOTENT

local RETRY_STATUS = { [429] = true, [502] = true, [503] = true, [504] = true }
-- Transport failures worth another attempt; tls (certificates), too_large
-- and internal errors will not heal by themselves.
local RETRY_TRANSPORT = { connect = true, dns = true, timeout = true, protocol = true, aborted = true }
local NEVER_SENT = { connect = true, dns = true }

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6,
                 Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

--- Seconds to wait from a Retry-After value (delta seconds or HTTP date).
-- @tparam string|nil v header value
-- @tparam[opt] number now wall-clock epoch seconds (default `os.time()`)
-- @treturn number|nil seconds (>= 0), nil when absent or unreadable
function M.retry_after(v, now)
  if v == nil then return nil end
  v = tostring(v)
  local n = tonumber(v:match("^%s*([%d%.]+)%s*$"))
  if n then return n end
  -- IMF-fixdate: "Wed, 21 Oct 2015 07:28:00 GMT"
  local d, mon, y, h, mi, s = v:match("^%s*%a+,%s*(%d+)%s+(%a+)%s+(%d+)%s+(%d+):(%d+):(%d+)%s+GMT%s*$")
  if not d or not MONTHS[mon] then return nil end
  now = now or ostime()
  -- os.time reads a local-time table; find the zone offset to read UTC.
  local t = { year = tonumber(y), month = MONTHS[mon], day = tonumber(d),
              hour = tonumber(h), min = tonumber(mi), sec = tonumber(s), isdst = false }
  local local_now = ostime(osdate("*t", now))
  local utc_now = ostime(osdate("!*t", now))
  local epoch = ostime(t) + (local_now - utc_now)
  local delta = epoch - now
  return delta > 0 and delta or 0
end

local function header(headers, name)
  return headers and headers[name]
end

local function request_id(headers)
  if not headers then return nil end
  return headers["x-request-id"] or headers["request-id"] or headers["x-amzn-requestid"]
    or headers["x-amz-request-id"] or headers["cf-ray"]
end

local function message_of(body)
  if type(body) ~= "table" then return nil end
  local m = body.message
  if type(m) == "table" then
    local parts = {}
    for i = 1, #m do parts[i] = tostring(m[i]) end
    m = concat(parts, "; ")
  end
  if m == nil and type(body.error) == "string" then m = body.error end
  return m ~= nil and tostring(m) or nil
end

local MAX_RAW = 2000

-- Every error the pipeline builds goes through here, so one redaction
-- rule covers everything an error carries: message, code, body at any
-- depth (keys too), the raw text, and the response headers (secret header
-- names always; the key anywhere else when it is known).
local function new_error(kind, fields, key)
  local h = fields.headers
  fields.headers = nil
  if key then redact.deep(fields, key) end
  if h then fields.headers = redact.headers(h, key) end
  return Err.new(kind, fields)
end
M.new_error = new_error

-- Raw text shown in an error: the key removed first, then cut short, so a
-- key straddling the cut cannot leave a prefix behind.
local function raw_text(text, key)
  text = redact.scrub(text, key)
  return #text > MAX_RAW and text:sub(1, MAX_RAW) .. "…" or text
end

-- The decoder of every body that does not become records. Running out of
-- memory is `nil, "not enough memory", true` (not raised): a response
-- too big to decode is an expected failure.
local decode_plain = json_decoder { memory_error = "return" }
M.decode_plain = decode_plain

-- Decode an error body as far as possible: JSON when it parses, the raw
-- text (trimmed) otherwise.
local function error_body(text, key)
  if text == nil or text == "" then return nil end
  local v = decode_plain(text)
  if v ~= nil then return v end
  return raw_text(text, key)
end

local function http_error(status, text, headers, spec, attempts)
  local key = spec.key
  local body = error_body(text, key)
  local code = type(body) == "table" and type(body.error) == "string" and body.error or nil
  local message = message_of(body) or (type(body) == "string" and body) or nil
  return new_error(status == 429 and "rate_limited" or "http", {
    status = status, code = code, message = message,
    method = spec.method, path = spec.path, url = spec.url, body = body,
    retry_after = M.retry_after(header(headers, "retry-after")),
    request_id = request_id(headers), attempts = attempts, headers = headers,
  }, key)
end

local function transport_error(e, spec, attempts)
  local tk = type(e) == "table" and e.kind or "internal"
  return new_error(tk == "timeout" and "timeout" or "transport", {
    transport_kind = tk,
    curl_code = type(e) == "table" and e.curl_code or nil,
    message = type(e) == "table" and tostring(e.message or tk) or tostring(e),
    method = spec.method, path = spec.path, url = spec.url, attempts = attempts,
  }, spec.key)
end

--- Full-jitter exponential backoff: uniform in [0, min(cap, base * 2^(attempt-1))].
-- @tparam table retry `{base =, cap =}`
-- @tparam integer attempt the attempt that just failed (1-based)
-- @treturn number seconds
function M.backoff(retry, attempt)
  local ceiling = min(retry.cap, retry.base * 2 ^ (attempt - 1))
  return random() * ceiling
end

local function do_sleep(sched, seconds)
  if seconds <= 0 then return end
  if sched then sched:sleep(seconds) else sleep_plain(seconds) end
end

-- Where an error happened, for the error value: built only on a failure.
local function where_of(p, op, url, path)
  return { method = op.method, path = path, url = url, key = p.key }
end

--- Send one logical request with rate limiting and retries.
--
-- `op` is what does not change between calls of one operation: `method`,
-- `label` (the operation's name in hooks), `windows` (its rate-limit
-- windows or nil). `url` is the full URL, `path` the path shown in errors
-- and hooks, `body` a string or nil, `headers` a table (not modified) and
-- `opts` the per-call options (`timeout`, `connect_timeout`,
-- `max_retries`) or nil.
--
-- Returns `status, body_text, headers, attempts` for a 2xx response; any
-- other outcome (an HTTP error not worth retrying or out of retries, a
-- transport failure, the rate limiter refusing the wait) is `nil, err`.
-- @tparam table p a sender (`pipeline.new`)
-- @tparam table op
-- @tparam string url
-- @tparam string path
-- @tparam string|nil body
-- @tparam table headers
-- @tparam table|nil opts
-- @return status, text, headers, attempts | nil, err
function M.send(p, op, url, path, body, headers, opts)
  local map = attached.map
  local sched = map and map[running()] or false
  local req = p.fast
  if req and not (body or opts) then
    -- The short way (the commonest call: no body, no options, no rate
    -- limit or hook to run): the sender's table has its timeouts
    -- already and never holds a body. Under a scheduler it is filled
    -- for this call and handed to `request`, which reads it before it
    -- yields (the core copies what it needs at submit), so another task
    -- may fill it again while this transfer runs.
    req.method = op.method
    req.url = url
    req.headers = headers
    local status, text, rheaders
    if sched then
      status, text, rheaders = sched:request(p.session, req)
    else
      status, text, rheaders = p.session:request(req)
    end
    if status then
      rheaders = setmetatable({ rheaders }, LAZY) -- the block at [RAW]
      if status >= 200 and status < 300 then return status, text, rheaders, 1 end
    end
    -- a failure: judged (and maybe retried) the long way
    return M.attempts(p, op, url, path, body, headers, opts, sched, true, status, text, rheaders)
  end
  return M.attempts(p, op, url, path, body, headers, opts, sched, false)
end

--- The long way of `send` (rate limiting, hooks, retries): `sched` is the
-- running coroutine's scheduler or false; when `done` is true the first
-- attempt was made already (by `send`, which takes the short way only
-- without a limiter or hooks) and answered `status, text, rheaders`.
-- @return as `send`
function M.attempts(p, op, url, path, body, headers, opts, sched, done, status1, text1, rheaders1)
  local session = p.session
  local timeout, connect_timeout = p.timeout, p.connect_timeout
  if opts then
    if opts.timeout ~= nil then timeout = opts.timeout end
    if opts.connect_timeout ~= nil then connect_timeout = opts.connect_timeout end
  end
  local method = op.method
  local on_request, on_response = p.on_request, p.on_response
  local limiter = p.limiter
  local req = p.req
  local attempt = 0
  -- (what only a retry or the rate limiter reads is looked up there)
  local on_wait, sleeper, notify
  if limiter then
    on_wait = p.on_wait
    sleeper = sched and function(s) sched:sleep(s) end or sleep_plain
    notify = on_wait and function(seconds, window)
      on_wait { reason = "rate_limit", seconds = seconds, limit = window.label,
                operation = op.label, method = method, path = path, attempt = attempt }
    end
  end
  while true do
    attempt = attempt + 1
    local status, text, rheaders, t0
    if done then -- the first attempt, made by send
      done = false
      status, text, rheaders = status1, text1, rheaders1
    else
      if limiter then
        local ok, need, window = ratelimit.acquire(limiter.global, op.windows, monotime, sleeper,
                                                   limiter.max_wait, notify)
        if not ok then
          return nil, Err.new("rate_limited", {
            method = method, path = path, url = url, attempts = attempt - 1,
            retry_after = need,
            message = "client-side rate limit " .. tostring(window and window.label) ..
              " would need a wait of " .. string.format("%.1f", need) .. "s (more than rate_limit.max_wait)",
          })
        end
      end
      if on_request then
        on_request { method = method, url = url, path = path, operation = op.label,
                     headers = redact.headers(headers), body = body, attempt = attempt }
      end
      if on_response then t0 = monotime() end
      -- The sender's own table (a core session) when this request has
      -- no body and the sender's timeouts (it keeps those and never holds
      -- a body), else a table of its own; filled anew for every attempt:
      -- another task of a gather may have used it meanwhile.
      local r
      if req and not body and timeout == p.timeout and connect_timeout == p.connect_timeout then
        r = req
      elseif req then
        r = { raw_headers = true }
      else
        r = {}
      end
      r.method = method -- (one statement each: no copies to temporaries)
      r.url = url
      r.headers = headers
      r.body = body
      r.timeout = timeout
      r.connect_timeout = connect_timeout
      if sched then
        status, text, rheaders = sched:request(session, r)
      else
        status, text, rheaders = session:request(r)
      end
      if req and status then rheaders = setmetatable({ rheaders }, LAZY) end -- the block at [RAW]
      if status and status >= 200 and status < 300 then
        if on_response then
          on_response { method = method, url = url, path = path, operation = op.label, status = status,
                        headers = redact.headers(M.headers(rheaders), p.key), attempt = attempt,
                        elapsed = monotime() - t0 }
        end
        return status, text, rheaders, attempt
      end
    end
    local err, retryable
    if status == nil then
      err = transport_error(text, where_of(p, op, url, path), attempt)
      local tk = err.transport_kind
      retryable = RETRY_TRANSPORT[tk] and (IDEMPOTENT[method] or NEVER_SENT[tk])
    else
      err = http_error(status, text, M.headers(rheaders), where_of(p, op, url, path), attempt)
      retryable = RETRY_STATUS[status] and (IDEMPOTENT[method] or status == 429)
    end
    if on_response then
      on_response { method = method, url = url, path = path, operation = op.label, status = status,
                    headers = err.headers, attempt = attempt, elapsed = monotime() - t0, error = err }
    end
    local max_retries = p.max_retries
    if opts and opts.max_retries ~= nil then max_retries = opts.max_retries end
    if not retryable or attempt > max_retries then return nil, err end
    local delay = err.retry_after
    if delay then
      if delay > p.retry.max_retry_after then return nil, err end
    else
      delay = M.backoff(p.retry, attempt)
    end
    on_wait = p.on_wait
    if on_wait then
      on_wait { reason = "retry", seconds = delay, operation = op.label, method = method, path = path,
                attempt = attempt, error = err }
    end
    do_sleep(sched, delay)
  end
end

--- What a decoded response body comes to: the value, or `nil, err` for
-- a body that did not decode (`decode` error) or a JSON object with an
-- `error` string (and no declared `error` field: an `api` error). `v,
-- msg, oom` are what a decoder made by `core.json_decoder{memory_error =
-- "return"}` returned for `text`. The client's generated methods decode
-- themselves and come here only when the value is not a table without an
-- `error` member.
-- @tparam table p the sender (for the key errors are redacted with)
-- @tparam table how `{error_field =, method =}` (an operation)
-- @tparam string url
-- @tparam string path
-- @tparam integer status
-- @tparam string text
-- @tparam table headers
-- @tparam integer attempts
-- @param v the decoded value (nil: it did not decode)
-- @tparam[opt] string msg why it did not
-- @tparam[opt] boolean oom it did not for want of memory
-- @return value | nil, err
function M.judge(p, how, url, path, status, text, headers, attempts, v, msg, oom)
  if v == nil then
    if oom then
      msg = "cannot decode " .. #text .. " bytes: " .. tostring(msg)
    else
      msg = "response is not valid JSON: " .. tostring(msg)
    end
    return nil, new_error("decode", {
      status = status, method = how.method, path = path, url = url, attempts = attempts,
      message = msg,
      body = raw_text(text, p.key), request_id = request_id(headers), headers = M.headers(headers),
    }, p.key)
  end
  if type(v) == "table" and not how.error_field and type(v.error) == "string"
     and getmetatable(v) ~= array_mt then
    local m = v.message
    return nil, new_error("api", {
      status = status, code = v.error, method = how.method, path = path, url = url,
      message = (type(m) == "string" or type(m) == "table") and message_of(v) or nil,
      body = v, attempts = attempts, request_id = request_id(headers), headers = M.headers(headers),
    }, p.key)
  end
  return v
end
local judge = M.judge

--- Decode a successful response body.
-- Empty bodies (204, some 202) give `true`; `text` responses give the
-- string; JSON that cannot be decoded is a `decode` error; a JSON object
-- with an `error` string (and no declared `error` field) is an `api` error
-- (see `judge`). `decoder` decodes the text: for a response that becomes
-- records, `record.decode` (null members are left out of objects and
-- named in `record`'s table, see `record.nulls`); default `decode_plain`.
-- @tparam table p the sender (for the key errors are redacted with)
-- @tparam table how `{kind =, error_field =, method =}` (an operation)
-- @tparam string url
-- @tparam string path
-- @tparam integer status
-- @tparam string text
-- @tparam table headers
-- @tparam integer attempts
-- @tparam[opt] function decoder made by `core.json_decoder{memory_error = "return", ...}`
-- @return value | nil, err
function M.decode(p, how, url, path, status, text, headers, attempts, decoder)
  if text == nil or text == "" or status == 204 then return true end
  if how.kind == "text" then return text end
  return judge(p, how, url, path, status, text, headers, attempts, (decoder or decode_plain)(text))
end

return M
