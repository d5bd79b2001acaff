--- Waiting for asynchronous work: background jobs, email verifications,
-- OAuth sessions and SuperSearch enrichments.
--
-- Every wait polls an ordinary SDK call (so retries, the rate limiter and
-- errors behave as usual) and sleeps through the client's scheduler hook:
-- inside `client:gather` a waiting task yields to the others instead of
-- blocking them.
--
-- Results: the final object on success. On a terminal failure state
-- `nil, err` with `err.kind == "failed"`, `err.state` (e.g. "failed",
-- "cancelled", "expired") and the object attached (`err.job`,
-- `err.verification`, `err.session` or `err.enrichment`, and always
-- `err.result`). When the time runs out, `nil, err` with
-- `err.kind == "timeout"` and the last object seen attached the same way.
-- A failed poll returns its own error with the last object attached.
-- @module instantly.workflows.wait

local core = require "instantly.core"
local Err = require "instantly.request.error"
local pipeline = require "instantly.request.pipeline"

local type, tostring, pairs, ipairs, error, getmetatable, setmetatable, tonumber =
  type, tostring, pairs, ipairs, error, getmetatable, setmetatable, tonumber

local monotime, plain_sleep = core.monotime, core.sleep
local ostime, osdate, fmt = os.time, os.date, string.format
local null = core.null

local M = {}

--- Default poll intervals and timeouts in seconds, per kind of wait.
M.DEFAULTS = {
  job = { interval = 2, timeout = 600 },
  verification = { interval = 2, timeout = 180 },
  oauth = { interval = 5, timeout = 660 },
  enrichment = { interval = 5, timeout = 1800 },
}

--- Background-job states that end a wait, and whether they succeeded.
-- The catalog's model lists pending, in-progress, success, failed,
-- draining, paused and cancelled; the vendor's own helper also accepts
-- completed and error. Any other state (pending, in-progress, draining,
-- paused, or one the API adds later) is waited through until the timeout.
M.JOB_TERMINAL = {
  success = true, completed = true,
  failed = false, error = false, cancelled = false, canceled = false,
}

--- OAuth session states that end a wait.
M.OAUTH_TERMINAL = { success = true, error = false, expired = false }

local function client_sleep(_, seconds)
  if seconds <= 0 then return end
  local s = pipeline.scheduler()
  if s then s:sleep(seconds) else plain_sleep(seconds) end
end
M.sleep = client_sleep

local WAIT_OPTS = { timeout = true, interval = true, on_progress = true }

-- Misuse is found by the checks below, which return the message, and
-- raised by the public functions at the end of this file at their
-- caller's line; the functions doing the waiting get checked arguments.

-- Checks wait options: opts (never nil) or nil, message.
-- @tparam string fname name shown in errors
-- @param opts nil or a table
-- @tparam[opt] table extra more accepted keys
local function check_opts(fname, opts, extra)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    return nil, fmt("instantly: %s: options must be a table, got %s", fname, type(opts))
  end
  for k in pairs(opts) do
    if not WAIT_OPTS[k] and not (extra and extra[k]) then
      return nil, fmt("instantly: %s: unknown option '%s'", fname, tostring(k))
    end
  end
  for _, k in pairs({ "timeout", "interval" }) do
    local v = opts[k]
    if v ~= nil and (type(v) ~= "number" or v ~= v or v < 0) then
      return nil, fmt("instantly: %s: option '%s' must be a non-negative number of seconds", fname, k)
    end
  end
  if opts.interval == 0 then
    return nil, fmt("instantly: %s: option 'interval' must be more than 0", fname)
  end
  if opts.on_progress ~= nil and type(opts.on_progress) ~= "function" then
    return nil, fmt("instantly: %s: option 'on_progress' must be a function", fname)
  end
  return opts
end

local function attach(err, field, obj)
  if Err.is(err) and obj ~= nil then
    err[field] = err[field] or obj
    err.result = err.result or obj
  end
  return err
end

--- The generic poller every wait is built on.
-- @tparam table client
-- @tparam table spec `fetch()` -> object | nil, err; `classify(obj)` ->
--   true (done), false (terminal failure) or nil (keep waiting), plus a
--   state name; `first` (an object already in hand, checked before any
--   request); `field` (name the object is attached under in errors);
--   `what` (e.g. "background job 42", for messages); `describe(obj)`
--   (state text for messages); `timeout`, `interval`, `on_progress`;
--   `deadline` (a monotime after which waiting is pointless, e.g. an
--   expiry) and `deadline_text`.
-- @return the final object, or nil, err
function M.poll(client, spec)
  local start = monotime()
  local limit = start + spec.timeout
  local expired_by_deadline = false
  if spec.deadline and spec.deadline < limit then
    limit = spec.deadline
    expired_by_deadline = true
  end
  local field, on_progress = spec.field, spec.on_progress
  local obj, polls = spec.first, 0
  while true do
    if obj == nil then
      local got, err = spec.fetch()
      polls = polls + 1
      if got == nil then
        return nil, attach(err, field, obj)
      end
      obj = got
      if on_progress then on_progress(obj) end
    end
    local verdict, state = spec.classify(obj)
    if verdict == true then return obj end
    if verdict == false then
      local e = Err.new {
        kind = "failed", state = state, polls = polls,
        message = fmt("%s ended %s%s", spec.what, tostring(state),
          spec.reason and spec.reason(obj) and (": " .. spec.reason(obj)) or ""),
      }
      return nil, attach(e, field, obj)
    end
    local now = monotime()
    if now >= limit then
      local e = Err.new {
        kind = "timeout", state = state, polls = polls, waited = now - start,
        message = expired_by_deadline and fmt("%s %s (still %s)", spec.what, spec.deadline_text or "expired",
            spec.describe and spec.describe(obj) or tostring(state))
          or fmt("%s still %s after %.1f s (timeout %g s)", spec.what,
            spec.describe and spec.describe(obj) or tostring(state), now - start, spec.timeout),
      }
      return nil, attach(e, field, obj)
    end
    -- Sleep one interval, or up to the limit for one last look.
    local nap = spec.interval
    if now + nap > limit then nap = limit - now end
    client_sleep(client, nap)
    obj = nil
  end
end

-- id, the object it came from (or nil) | nil, nil, message
local function id_of(v, key, fname)
  if type(v) == "string" and v ~= "" then return v, nil end
  if type(v) == "table" then
    local id = v[key]
    if type(id) == "string" and id ~= "" then return id, v end
    return nil, nil, fmt("instantly: %s: the object has no '%s'", fname, key)
  end
  return nil, nil, fmt("instantly: %s: expected a %s string or an object with one, got %s", fname, key,
    v == nil and "nothing" or type(v))
end

local function pick(opts, kind, name)
  local v = opts[name]
  if v == nil then v = M.DEFAULTS[kind][name] end
  return v
end

-------------------------------------------------------------------------------
-- Background jobs
-------------------------------------------------------------------------------

local function job_state(job)
  local st = job.status
  if st == nil or st == null then return nil, "unknown" end
  st = tostring(st)
  return M.JOB_TERMINAL[st], st
end

local function job_describe(job)
  local st = tostring(job.status)
  local p = tonumber(job.progress)
  if p then return fmt("%s (%g%%)", st, p) end
  return st
end

local function job_reason(job)
  local d = job.data
  if type(d) == "table" then
    local e = d.error or d.message or d.reason
    if e ~= nil and e ~= null then return tostring(e) end
  end
  return nil
end

--- Wait for a background job to reach a terminal state.
-- @tparam table client
-- @tparam string id the job id
-- @tparam table|nil rec the job record it came from
-- @tparam table opts (checked) `timeout` (seconds, default 600), `interval`
--   (default 2), `on_progress` (`fn(job)` after every poll)
-- @tparam[opt] table call_opts per-call options for the polls
-- @return the finished job, or nil, err (err.job is the last job seen)
local function job_at(client, id, rec, opts, call_opts)
  local first
  if rec and rec.status ~= nil and M.JOB_TERMINAL[tostring(rec.status)] ~= nil then first = rec end
  local jobs = client.background_jobs
  return M.poll(client, {
    what = "background job " .. id, field = "job", first = first,
    fetch = function() return jobs:get(id, nil, call_opts) end,
    classify = job_state, describe = job_describe, reason = job_reason,
    timeout = pick(opts, "job", "timeout"), interval = pick(opts, "job", "interval"),
    on_progress = opts.on_progress,
  })
end

-------------------------------------------------------------------------------
-- Email verification
-------------------------------------------------------------------------------

local function pending(v)
  return v == "pending"
end

local function verification_state(v)
  if v.status == "error" then return false, "error" end
  local vs = v.verification_status
  if vs == nil or vs == null or pending(vs) or pending(v.catch_all) then
    return nil, "pending"
  end
  return true, tostring(vs)
end

local function verification_reason(v)
  local m = v.message or v.error
  if m ~= nil and m ~= null then return tostring(m) end
  return nil
end

--- Wait for the verdict on an email address (verification_status no
-- longer "pending", catch_all known). "invalid" is a verdict, not an error.
-- @tparam table client
-- @tparam string email the address
-- @tparam table|nil rec the result of a verification call it came from
-- @tparam table opts (checked) `timeout` (default 180), `interval`
--   (default 2), `on_progress`
-- @tparam[opt] table call_opts
-- @return the verification, or nil, err (err.verification attached)
local function verification_at(client, email, rec, opts, call_opts)
  local ev = client.email_verification
  return M.poll(client, {
    what = "email verification of " .. email, field = "verification", first = rec,
    fetch = function() return ev:get(email, nil, call_opts) end,
    classify = verification_state, reason = verification_reason,
    describe = function() return "pending" end,
    timeout = pick(opts, "verification", "timeout"), interval = pick(opts, "verification", "interval"),
    on_progress = opts.on_progress,
  })
end

local VERIFY_OPTS = { wait = true, webhook_url = true }

--- Verify an address; with `wait = true`, poll until the verdict.
-- @tparam table client
-- @tparam string email (checked)
-- @tparam table opts (checked) `wait` (default false), `webhook_url`,
--   `timeout`, `interval`, `on_progress` (the last three for the wait)
-- @tparam[opt] table call_opts
local function verify_at(client, email, opts, call_opts)
  local res, err = client.email_verification:create({ email = email, webhook_url = opts.webhook_url }, call_opts)
  if res == nil then return nil, err end
  if type(res) ~= "table" then return res end
  if opts.on_progress then opts.on_progress(res) end
  if not opts.wait then return res end
  local verdict = verification_state(res)
  if verdict == true then return res end
  if verdict == false then
    return M.poll(client, { what = "email verification of " .. email, field = "verification", first = res,
      classify = verification_state, reason = verification_reason, timeout = 0, interval = 1 })
  end
  local wopts = { timeout = opts.timeout, interval = opts.interval, on_progress = opts.on_progress }
  return verification_at(client, email, nil, wopts, call_opts)
end

-------------------------------------------------------------------------------
-- OAuth sessions
-------------------------------------------------------------------------------

-- "2026-11-26T06:10:00.000Z" (or with an offset) -> epoch seconds.
local function parse_time(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d, h, mi, sec, rest = s:match("^(%d+)-(%d+)-(%d+)[Tt ](%d+):(%d+):(%d+)(.*)$")
  if not y then return nil end
  local frac = tonumber(rest:match("^(%.%d+)") or "0") or 0
  local offset = 0
  local sign, oh, om = rest:match("([%+%-])(%d%d):?(%d%d)$")
  if sign then
    offset = (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "+" and 1 or -1)
  elseif not rest:match("[Zz]$") then
    return nil
  end
  local t = { year = tonumber(y), month = tonumber(mo), day = tonumber(d),
              hour = tonumber(h), min = tonumber(mi), sec = tonumber(sec), isdst = false }
  local now = ostime()
  local zone = ostime(osdate("*t", now)) - ostime(osdate("!*t", now))
  return ostime(t) + zone - offset + frac
end
M.parse_time = parse_time

-- Seconds the server's clock may differ from ours before we call a
-- session expired without asking.
M.EXPIRY_GRACE = 15

local function oauth_state(s)
  local st = s.status
  if st == nil or st == null then return nil, "pending" end
  st = tostring(st)
  return M.OAUTH_TERMINAL[st], st
end

local function oauth_reason(s)
  local d = s.error_description
  if d == nil or d == null then d = s.error end
  if d ~= nil and d ~= null then return tostring(d) end
  return nil
end

--- Wait for an OAuth session to be completed by the user.
-- Sessions expire (about 10 minutes) and their final status can be read
-- only once (404 afterwards): this returns that one read. Pass the init
-- response to honour its `expires_at`; with only an id the wait is
-- bounded by `timeout`. A 404 while waiting means the session is gone
-- (already read, or expired): `nil, err` with `err.kind == "failed"`,
-- `err.state == "gone"` and the HTTP error as `err.cause`.
-- @tparam table client
-- @tparam string id the session id
-- @tparam table|nil rec the init response ({session_id, expires_at, ...}) it came from
-- @tparam table opts (checked) `timeout` (default 660 s), `interval` (default 5), `on_progress`
-- @tparam[opt] table call_opts
-- @return the final session status ({status = "success", email, ...}), or nil, err
local function oauth_at(client, id, rec, opts, call_opts)
  local deadline, deadline_text
  if rec then
    local exp = parse_time(rec.expires_at)
    if exp then
      deadline = monotime() + (exp - ostime()) + M.EXPIRY_GRACE
      deadline_text = "expired at " .. tostring(rec.expires_at)
    end
  end
  local last
  local oauth = client.oauth
  return M.poll(client, {
    what = "OAuth session " .. id, field = "session",
    fetch = function()
      local s, err = oauth:session_status(id, nil, call_opts)
      if s == nil and Err.is(err) and err.status == 404 then
        return nil, Err.new {
          kind = "failed", state = "gone", status = 404, cause = err, session = last,
          message = "OAuth session " .. id .. " is gone: its result was already read " ..
            "(sessions are read-once) or it expired",
        }
      end
      last = s
      return s, err
    end,
    classify = oauth_state, reason = oauth_reason,
    timeout = pick(opts, "oauth", "timeout"), interval = pick(opts, "oauth", "interval"),
    deadline = deadline, deadline_text = deadline_text,
    on_progress = opts.on_progress,
  })
end

-------------------------------------------------------------------------------
-- SuperSearch enrichments
-------------------------------------------------------------------------------

local function enrichment_state(e)
  local ip = e.in_progress
  if ip == true then return nil, "in progress" end
  return true, "done"
end

local ENRICH_OPTS = { ai = true }

--- Wait for the enrichments of a list or campaign to finish.
-- Accepts the resource id, an enrichment object with `resource_id`, or
-- the response of `enrich_leads` (whose `background_job_id` is then
-- waited for as a background job). With `ai = true` it also waits until
-- no AI enrichment is in progress on the resource.
-- The response of `enrich_leads`, whose background job is waited for.
local function enrichment_job(target)
  if type(target) == "table" and type(target.background_job_id) == "string" and target.background_job_id ~= "" then
    return target.background_job_id
  end
end

-- @tparam table client
-- @tparam string rid the resource id
-- @tparam table opts (checked) `timeout` (default 1800), `interval` (default 5), `on_progress`, `ai`
-- @tparam[opt] table call_opts
-- @return the enrichment state of the resource, or nil, err
local function enrichment_at(client, rid, opts, call_opts)
  local se = client.supersearch_enrichment
  local ai = opts.ai
  return M.poll(client, {
    what = "enrichment of " .. rid, field = "enrichment",
    fetch = function()
      local e, err = se:get(rid, nil, call_opts)
      if e == nil or not ai or type(e) ~= "table" then return e, err end
      if e.in_progress == true then return e end
      local list, err2 = se:get_ai_in_progress(rid, nil, call_opts)
      if list == nil then return nil, err2 end
      -- The list may carry rows that just finished (status other than 1).
      local running_ai = {}
      for _, r in ipairs(type(list) == "table" and list or {}) do
        if type(r) == "table" and (r.status == nil or r.status == null or r.status == 1) then
          running_ai[#running_ai + 1] = r
        end
      end
      if #running_ai > 0 then
        list = running_ai
        -- Report the AI work as in progress without touching the record.
        local copy = {}
        for k, v in pairs(e) do copy[k] = v end
        copy.in_progress, copy.ai_in_progress = true, list
        return setmetatable(copy, getmetatable(e))
      end
      return e
    end,
    classify = enrichment_state, describe = function() return "in progress" end,
    timeout = pick(opts, "enrichment", "timeout"), interval = pick(opts, "enrichment", "interval"),
    on_progress = opts.on_progress,
  })
end

-- The public functions check their arguments and raise misuse at their
-- caller's line (the extension methods tail-call them, so that is the
-- user's line), then hand the checked values to the functions above.

-- The options and the id (a string, or a record's `key` field) of a wait
-- on one object; misuse raises at the caller of the public function.
local function checked(fname, opts, v, key)
  local o, msg = check_opts(fname, opts)
  if not o then error(msg, 3) end
  local id, rec, msg2 = id_of(v, key, fname)
  if not id then error(msg2, 3) end
  return o, id, rec
end

--- Poll a background job until it reaches a terminal state (see job_at above).
-- @function job
function M.job(client, job_or_id, opts, call_opts)
  local o, id, rec = checked("background_jobs:wait", opts, job_or_id, "id")
  return job_at(client, id, rec, o, call_opts)
end

--- Poll an email verification until the verdict is in.
-- @function verification
function M.verification(client, email_or_result, opts, call_opts)
  local o, email, rec = checked("email_verification:wait", opts, email_or_result, "email")
  return verification_at(client, email, rec, o, call_opts)
end

--- Start an email verification, optionally waiting for the verdict.
-- @function verify
function M.verify(client, email, opts, call_opts)
  local o, msg = check_opts("email_verification:verify", opts, VERIFY_OPTS)
  if not o then error(msg, 2) end
  if type(email) ~= "string" or email == "" then
    error("instantly: email_verification:verify: email must be a non-empty string, got " ..
      (email == nil and "nothing" or type(email)), 2)
  end
  return verify_at(client, email, o, call_opts)
end

--- Poll an OAuth session until the user finished, it failed or expired.
-- @function oauth
function M.oauth(client, session_or_id, opts, call_opts)
  local o, id, rec = checked("oauth:wait", opts, session_or_id, "session_id")
  return oauth_at(client, id, rec, o, call_opts)
end

--- Poll until the enrichments of a list or campaign are done.
-- @function enrichment
function M.enrichment(client, target, opts, call_opts)
  local o, msg = check_opts("supersearch_enrichment:wait", opts, ENRICH_OPTS)
  if not o then error(msg, 2) end
  local job = enrichment_job(target)
  if job then
    return job_at(client, job, nil,
      { timeout = pick(o, "enrichment", "timeout"), interval = o.interval, on_progress = o.on_progress },
      call_opts)
  end
  local rid, _, msg2 = id_of(target, "resource_id", "supersearch_enrichment:wait")
  if not rid then error(msg2, 2) end
  return enrichment_at(client, rid, o, call_opts)
end

return M
