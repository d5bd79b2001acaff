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
-- `session:request(req)` returns, and `s:sleep(seconds)`; otherwise it
-- calls `session:request(req)` and `core.sleep(seconds)`. A scheduler
-- registers itself for each coroutine it runs (`pipeline.attach(co, s)`)
-- and can then suspend that coroutine while its transfer runs or its wait
-- elapses. The lookup is by coroutine, not by client, so one scheduler
-- drives the calls of every client a task uses. The rate limiter is shared
-- by all coroutines of a client; it takes its slots without yielding and
-- re-checks after every sleep (see `instantly.request.ratelimit`).
-- @module instantly.request.pipeline

local core = require "instantly.core"
local Err = require "instantly.request.error"
local ratelimit = require "instantly.request.ratelimit"
local redact = require "instantly.request.redact"

local type, tostring, tonumber, pcall = type, tostring, tonumber, pcall
local getmetatable, setmetatable = getmetatable, setmetatable
local running, random, min = coroutine.running, math.random, math.min
local ostime, osdate = os.time, os.date
local concat = table.concat

local monotime, sleep_plain = core.monotime, core.sleep
local parse_headers, json_decode = core.parse_headers, core.json_decode
local rawget, rawset, next = rawget, rawset, next

local M = {}

-- coroutine -> scheduler; weak keys, so a finished coroutine is forgotten.
local schedulers = setmetatable({}, { __mode = "k" })

--- Register (or with nil, forget) the scheduler that runs coroutine `co`.
-- @tparam thread co
-- @tparam table|nil s an object with `request(session, req)` and `sleep(seconds)`
function M.attach(co, s)
  schedulers[co] = s
end

--- The scheduler of coroutine `co` (default: the running one), or nil.
-- @tparam[opt] thread co
-- @treturn table|nil
function M.scheduler(co)
  return schedulers[co or running()]
end

--- A sender: what `send` needs from a client, fixed when it is made.
-- @tparam table cfg `session` (an object with `request(req)`, and
--   `submit`/`poll` for concurrency), `max_retries`, `timeout`,
--   `connect_timeout` (nil: the session's), `retry` (`{base =, cap =,
--   max_retry_after =}`), `limiter` (nil: no client-side rate limit, else
--   `{global = windows, max_wait =}`), `on_request`, `on_response`,
--   `on_wait` (hooks or nil), `raw_headers` (true: the session is a core
--   session; ask it for the header block as a string and parse it only
--   when a header is read)
-- @treturn table the sender (a plain table with those fields)
function M.new(cfg)
  return {
    session = cfg.session, max_retries = cfg.max_retries, timeout = cfg.timeout,
    connect_timeout = cfg.connect_timeout, retry = cfg.retry, limiter = cfg.limiter,
    on_request = cfg.on_request, on_response = cfg.on_response, on_wait = cfg.on_wait,
    raw_headers = cfg.raw_headers or nil,
  }
end

-- Response headers parsed on first use: a core session asked for
-- raw_headers answers with the header block as a string; it becomes a
-- table that fills itself from the block the first time it is indexed,
-- assigned to or walked with pairs (then the metatable is gone and it is
-- a plain table). Building the table costs a tenth of a small request;
-- most calls never read a header.
-- The block rides in the table's own metatable (no side table, which
-- the collector would have to treat as an ephemeron table).
local function fill(t)
  local mt = getmetatable(t)
  local raw = type(mt) == "table" and mt.raw
  if raw then
    setmetatable(t, nil)
    parse_headers(raw, t)
  end
  return t
end
local function lazy_index(t, k) return rawget(fill(t), k) end
local function lazy_newindex(t, k, v) rawset(fill(t), k, v) end
local function lazy_pairs(t) return next, fill(t), nil end
local function lazy_headers(h)
  if type(h) ~= "string" then return h end
  return setmetatable({}, { __index = lazy_index, __newindex = lazy_newindex, __pairs = lazy_pairs,
                            __name = "instantly.headers", raw = h })
end

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

-- The JSON decoder raises only when memory runs out (malformed input is
-- `nil, msg`); a response too big to decode is an expected failure.
local function decode_json(text, opts)
  local ok, v, msg = pcall(json_decode, text, opts)
  if ok then return v, msg end
  return nil, "cannot decode " .. #text .. " bytes: " .. tostring(v), true
end

-- Decode an error body as far as possible: JSON when it parses, the raw
-- text (trimmed) otherwise.
local function error_body(text, key)
  if text == nil or text == "" then return nil end
  local v = decode_json(text)
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

--- Send one logical request with rate limiting and retries.
--
-- `spec` fields: `method`, `url`, `path` (shown in errors and hooks),
-- `body` (string or nil), `headers` (table, not modified), `windows`
-- (the operation's rate-limit windows or nil), `label` (operation name for
-- hooks), `opts` (per-call `timeout`, `connect_timeout`, `max_retries`).
--
-- Returns `status, body_text, headers, attempts` for any HTTP response
-- that is final (2xx or an error not worth retrying is returned as
-- `nil, err`), i.e. on success `status, text, headers`; on failure
-- `nil, instantly.Error`.
-- @tparam table p a sender (`pipeline.new`)
-- @tparam table spec
-- @return status, text, headers | nil, err
function M.send(p, spec)
  local sched = schedulers[running()]
  local session = p.session
  local opts = spec.opts
  local max_retries, timeout, connect_timeout = p.max_retries, p.timeout, p.connect_timeout
  if opts then
    if opts.max_retries ~= nil then max_retries = opts.max_retries end
    if opts.timeout ~= nil then timeout = opts.timeout end
    if opts.connect_timeout ~= nil then connect_timeout = opts.connect_timeout end
  end
  local method, path = spec.method, spec.path
  local idempotent = IDEMPOTENT[method]
  local retry = p.retry
  local on_request, on_response, on_wait = p.on_request, p.on_response, p.on_wait
  local limiter = p.limiter
  local req = { method = method, url = spec.url, headers = spec.headers, body = spec.body,
                raw_headers = p.raw_headers,
                timeout = timeout, connect_timeout = connect_timeout }
  local attempt = 0
  local sleeper, notify
  if limiter then
    sleeper = sched and function(s) sched:sleep(s) end or sleep_plain
    notify = on_wait and function(seconds, window)
      on_wait { reason = "rate_limit", seconds = seconds, limit = window.label,
                operation = spec.label, method = method, path = path, attempt = attempt }
    end
  end
  while true do
    attempt = attempt + 1
    if limiter then
      local ok, need, window = ratelimit.acquire(limiter.global, spec.windows, monotime, sleeper,
                                                 limiter.max_wait, notify)
      if not ok then
        return nil, Err.new("rate_limited", {
          method = method, path = path, url = spec.url, attempts = attempt - 1,
          retry_after = need,
          message = "client-side rate limit " .. tostring(window and window.label) ..
            " would need a wait of " .. string.format("%.1f", need) .. "s (more than rate_limit.max_wait)",
        })
      end
    end
    local t0
    if on_request then
      on_request { method = method, url = spec.url, path = path, operation = spec.label,
                   headers = redact.headers(spec.headers), body = spec.body, attempt = attempt }
    end
    if on_response then t0 = monotime() end
    local status, text, headers
    if sched then
      status, text, headers = sched:request(session, req)
    else
      status, text, headers = session:request(req)
    end
    if status then headers = lazy_headers(headers) end
    local err, retryable
    if status == nil then
      err = transport_error(text, spec, attempt)
      local tk = err.transport_kind
      retryable = RETRY_TRANSPORT[tk] and (idempotent or NEVER_SENT[tk])
    elseif status >= 200 and status < 300 then
      if on_response then
        on_response { method = method, url = spec.url, path = path, operation = spec.label, status = status,
                      headers = redact.headers(M.headers(headers), spec.key), attempt = attempt,
                      elapsed = monotime() - t0 }
      end
      return status, text, headers, attempt
    else
      headers = M.headers(headers)
      err = http_error(status, text, headers, spec, attempt)
      retryable = RETRY_STATUS[status] and (idempotent or status == 429)
    end
    if on_response then
      on_response { method = method, url = spec.url, path = path, operation = spec.label, status = status,
                    headers = err.headers, attempt = attempt, elapsed = monotime() - t0, error = err }
    end
    if not retryable or attempt > max_retries then return nil, err end
    local delay = err.retry_after
    if delay then
      if delay > retry.max_retry_after then return nil, err end
    else
      delay = M.backoff(retry, attempt)
    end
    if on_wait then
      on_wait { reason = "retry", seconds = delay, operation = spec.label, method = method, path = path,
                attempt = attempt, error = err }
    end
    do_sleep(sched, delay)
  end
end

--- Decode a successful response body.
-- Empty bodies (204, some 202) give `true`; `text` responses give the
-- string; JSON that cannot be decoded is a `decode` error; a JSON object
-- with an `error` string (and no declared `error` field) is an `api` error.
-- @tparam integer status
-- @tparam string text
-- @tparam table headers
-- @tparam table how `{kind =, error_field =}`
-- @tparam integer attempts
-- @tparam table where `{method =, path =, key =}` for errors
-- @return value | nil, err
function M.decode(status, text, headers, how, attempts, where, null_tables)
  if text == nil or text == "" or status == 204 then return true end
  if how.kind == "text" then return text end
  local v, msg, oom = decode_json(text, null_tables and { null_tables = null_tables })
  if v == nil then
    return nil, new_error("decode", {
      status = status, method = where.method, path = where.path, url = where.url, attempts = attempts,
      message = oom and msg or ("response is not valid JSON: " .. tostring(msg)),
      body = raw_text(text, where.key), request_id = request_id(headers), headers = headers,
    }, where.key)
  end
  if type(v) == "table" and not how.error_field and type(v.error) == "string"
     and getmetatable(v) ~= core.array_mt then
    local m = v.message
    return nil, new_error("api", {
      status = status, code = v.error, method = where.method, path = where.path, url = where.url,
      message = (type(m) == "string" or type(m) == "table") and message_of(v) or nil,
      body = v, attempts = attempts, request_id = request_id(headers), headers = headers,
    }, where.key)
  end
  return v
end

return M
