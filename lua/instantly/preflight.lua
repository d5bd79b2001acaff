--- Campaign preflight: what would make sending fail or hurt
-- deliverability, checked before a launch.
--
-- `preflight(client, id)` reads the campaign, each of its sending accounts
-- (concurrently) and whether it has any lead, and reports problems with a
-- severity: "error" (sending would fail or cannot start), "warning" (it
-- would send, but deliverability or volume suffers) or "info".
-- `launch(client, id, {preflight = true})` activates only when the report
-- has no errors (and, with `strict = true`, no warnings).
--
-- Problem codes: no_accounts, accounts_by_tag, account_missing,
-- account_unhealthy, account_paused, account_maintenance,
-- account_setup_pending, account_warmup_problem, account_warming,
-- low_warmup_score, no_usable_accounts, no_leads, no_schedule,
-- schedule_no_days, schedule_empty_window, schedule_no_timezone,
-- schedule_ended, schedule_not_started, empty_sequence,
-- step_without_variants, empty_subject, empty_body, template_syntax,
-- daily_limit_zero, campaign_suspended, campaign_unhealthy,
-- campaign_bounce_protect, campaign_completed, already_active,
-- tracking_without_custom_domain.
-- @module instantly.preflight

local core = require "instantly.core"
local Err = require "instantly.error"
local gather = require "instantly.gather"
local wait = require "instantly.wait"

local type, pairs, ipairs, tostring, error, setmetatable =
  type, pairs, ipairs, tostring, error, setmetatable
local fmt, concat = string.format, table.concat
local mtype = math.type
local ostime, osdate = os.time, os.date
local null = core.null

local M = {}

M.DEFAULTS = { min_warmup_days = 14, min_warmup_score = 70 }

local ACCOUNT_STATUS = {
  [1] = "active", [2] = "paused", [3] = "maintenance", [-1] = "connection error",
  [-2] = "soft bounce error", [-3] = "sending error",
}
local WARMUP_STATUS = {
  [0] = "paused", [1] = "active", [-1] = "banned from the warmup pool", [-2] = "spam folder unknown",
  [-3] = "permanently suspended",
}

local function present(v)
  return v ~= nil and v ~= null and v ~= ""
end

local function text_of(v)
  if not present(v) then return "" end
  -- Bodies are HTML: tags and entities for spaces do not make content.
  local s = tostring(v):gsub("<[^>]*>", " "):gsub("&nbsp;", " ")
  return (s:match("^%s*(.-)%s*$"))
end

local function balanced(s)
  if type(s) ~= "string" then return true end
  local _, open = s:gsub("{{", "")
  local _, close = s:gsub("}}", "")
  return open == close
end

local Report = {}
Report.__index = Report
Report.__name = "instantly.PreflightReport"

function Report:__tostring()
  local head = fmt("preflight of campaign %s: %s (%d error%s, %d warning%s)",
    self.campaign_name and fmt("%q", self.campaign_name) or tostring(self.campaign_id),
    self.ok and "passes" or "fails", self.errors, self.errors == 1 and "" or "s",
    self.warnings, self.warnings == 1 and "" or "s")
  local lines = { head }
  for _, p in ipairs(self.problems) do
    lines[#lines + 1] = fmt("  %-7s %-30s %s", p.severity, p.code, p.message)
  end
  return concat(lines, "\n")
end

--- Problems of one severity ("error", "warning", "info").
-- @tparam string severity
-- @treturn table array of problems
function Report:by_severity(severity)
  local out = {}
  for _, p in ipairs(self.problems) do if p.severity == severity then out[#out + 1] = p end end
  return out
end

--- Is there a problem with this code?
-- @tparam string code
-- @treturn table|nil the first such problem
function Report:has(code)
  for _, p in ipairs(self.problems) do if p.code == code then return p end end
  return nil
end

local PREFLIGHT_OPTS = { min_warmup_days = "number", min_warmup_score = "number", ignore = "table" }
local LAUNCH_OPTS = { preflight = "boolean", strict = "boolean" }

local function check_opts(fname, opts, allowed, level)
  level = level + 1
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(fmt("instantly: %s: options must be a table, got %s", fname, type(opts)), level)
  end
  for k, v in pairs(opts) do
    local want = allowed[k] or PREFLIGHT_OPTS[k]
    if not want then error(fmt("instantly: %s: unknown option '%s'", fname, tostring(k)), level) end
    if type(v) ~= want then
      error(fmt("instantly: %s: option '%s' must be a %s, got %s", fname, k, want, type(v)), level)
    end
  end
  if opts.ignore then
    for _, c in ipairs(opts.ignore) do
      if type(c) ~= "string" then error(fmt("instantly: %s: ignore lists problem codes (strings)", fname), level) end
    end
  end
  return opts
end

local function campaign_id(v, fname, level)
  if type(v) == "string" and v ~= "" then return v end
  if type(v) == "table" and type(v.id) == "string" and v.id ~= "" then return v.id end
  error(fmt("instantly: %s: expected a campaign id or a campaign record, got %s", fname,
    v == nil and "nothing" or type(v)), level + 1)
end

-- "YYYY-MM-DD" of today, in UTC.
local function today()
  return osdate("!%Y-%m-%d", ostime())
end

--- Check a campaign before launch.
-- @tparam table client
-- @param campaign a campaign id or record
-- @tparam[opt] table opts `min_warmup_days` (default 14),
--   `min_warmup_score` (default 70), `ignore` (problem codes to report as
--   "info" instead)
-- @tparam[opt] table call_opts per-call options for the reads
-- @return report, or nil, err when the campaign (or an account, other
--   than by 404) cannot be read
function M.preflight(client, campaign, opts, call_opts, level)
  level = (level or 1) + 1
  opts = check_opts("campaigns:preflight", opts, {}, level)
  local id = campaign_id(campaign, "campaigns:preflight", level)
  local min_days = opts.min_warmup_days or M.DEFAULTS.min_warmup_days
  local min_score = opts.min_warmup_score or M.DEFAULTS.min_warmup_score
  local ignore = {}
  for _, c in ipairs(opts.ignore or {}) do ignore[c] = true end

  local camp, err = client.campaigns:get(id, nil, call_opts)
  if camp == nil then return nil, err end

  local report = setmetatable({
    ok = true, campaign_id = id, campaign_name = camp.name, campaign = camp,
    problems = {}, errors = 0, warnings = 0, accounts = {}, has_leads = nil,
  }, Report)
  local function add(severity, code, message, extra)
    if ignore[code] then severity = "info" end
    local p = { severity = severity, code = code, message = message }
    for k, v in pairs(extra or {}) do p[k] = v end
    report.problems[#report.problems + 1] = p
    if severity == "error" then report.errors = report.errors + 1 end
    if severity == "warning" then report.warnings = report.warnings + 1 end
  end

  -- The campaign's own state ---------------------------------------------
  local st = camp.status
  if st == -99 then
    add("error", "campaign_suspended", "the campaign is suspended (account suspended)")
  elseif st == -1 then
    add("warning", "campaign_unhealthy", "the campaign is marked 'accounts unhealthy'")
  elseif st == -2 then
    add("warning", "campaign_bounce_protect", "bounce protection has stopped the campaign")
  elseif st == 3 then
    add("warning", "campaign_completed", "the campaign has completed")
  elseif st == 1 then
    add("info", "already_active", "the campaign is already active")
  end
  if mtype(camp.daily_limit) == "integer" and camp.daily_limit <= 0 then
    add("error", "daily_limit_zero", "the campaign's daily limit is " .. camp.daily_limit .. ": nothing will be sent")
  end

  -- Schedule ---------------------------------------------------------------
  local sched = camp.campaign_schedule
  local schedules = type(sched) == "table" and sched.schedules
  if type(schedules) ~= "table" or #schedules == 0 then
    add("error", "no_schedule", "the campaign has no sending schedule")
  else
    for i, s in ipairs(schedules) do
      local label = fmt("schedule %d%s", i, present(s.name) and fmt(" (%q)", s.name) or "")
      local days, any = s.days, false
      if type(days) == "table" then
        for _, on in pairs(days) do if on == true then any = true end end
      end
      if not any then add("error", "schedule_no_days", label .. " has no sending day", { schedule = i }) end
      local t = s.timing
      local from, to = type(t) == "table" and t.from, type(t) == "table" and t.to
      if type(from) ~= "string" or type(to) ~= "string" or from >= to then
        add("error", "schedule_empty_window", fmt("%s has no sending window (from %s to %s)", label,
          tostring(from), tostring(to)), { schedule = i })
      end
      if not present(s.timezone) then
        add("error", "schedule_no_timezone", label .. " has no timezone", { schedule = i })
      end
    end
    local d = today()
    if present(sched.end_date) and tostring(sched.end_date):sub(1, 10) < d then
      add("error", "schedule_ended", "the schedule ended on " .. tostring(sched.end_date))
    end
    if present(sched.start_date) and tostring(sched.start_date):sub(1, 10) > d then
      add("warning", "schedule_not_started", "sending starts only on " .. tostring(sched.start_date))
    end
  end

  -- Sequence ---------------------------------------------------------------
  local seqs = camp.sequences
  local steps = type(seqs) == "table" and type(seqs[1]) == "table" and seqs[1].steps
  if type(steps) ~= "table" or #steps == 0 then
    add("error", "empty_sequence", "the campaign's sequence has no steps")
  else
    for i, step in ipairs(steps) do
      local variants = type(step) == "table" and step.variants
      local active = 0
      for j, v in ipairs(type(variants) == "table" and variants or {}) do
        if v.v_disabled ~= true then
          active = active + 1
          local where = fmt("step %d, variant %d", i, j)
          if text_of(v.body) == "" then
            add("error", "empty_body", where .. " has an empty body", { step = i, variant = j })
          end
          if i == 1 and text_of(v.subject) == "" then
            add("error", "empty_subject", where .. " has an empty subject (the first email needs one)",
              { step = i, variant = j })
          end
          if not balanced(v.subject) or not balanced(v.body) then
            add("warning", "template_syntax", where .. " has unbalanced {{ }} in its variables",
              { step = i, variant = j })
          end
        end
      end
      if active == 0 then
        add("error", "step_without_variants", fmt("step %d has no enabled variant", i), { step = i })
      end
    end
  end

  -- Accounts and leads, read concurrently -----------------------------------
  local emails = {}
  if type(camp.email_list) == "table" then
    for _, e in ipairs(camp.email_list) do if present(e) then emails[#emails + 1] = e end end
  end
  local by_tag = type(camp.email_tag_list) == "table" and #camp.email_tag_list > 0
  local tasks = {}
  for i, e in ipairs(emails) do
    tasks[i] = function() return client.accounts:get(e, nil, call_opts) end
  end
  tasks[#tasks + 1] = function()
    return client.leads:list({ campaign = id, limit = 1 }, call_opts)
  end
  local values, errs = gather.gather(client, tasks, { concurrency = 8 })
  local page = values[#tasks]
  if page == nil then return nil, errs[#tasks] end
  report.has_leads = type(page.items) == "table" and #page.items > 0
  if not report.has_leads then
    add("error", "no_leads", "the campaign has no leads")
  end

  if #emails == 0 then
    if by_tag then
      add("warning", "accounts_by_tag", "sending accounts are chosen by tag at send time; their health was not checked")
    else
      add("error", "no_accounts", "the campaign has no sending accounts")
    end
  end
  local usable, untracked = 0, 0
  local now = ostime()
  for i, email in ipairs(emails) do
    local acc, aerr = values[i], errs[i]
    local info = { email = email }
    report.accounts[i] = info
    if acc == nil then
      if Err.is(aerr) and aerr.status == 404 then
        info.missing = true
        add("error", "account_missing", email .. " is not a sending account of this workspace", { account = email })
      else
        return nil, aerr
      end
    else
      info.status, info.warmup_status, info.warmup_score = acc.status, acc.warmup_status, acc.stat_warmup_score
      local s = acc.status
      local ok = s == 1 or s == 3
      if s == -1 or s == -2 or s == -3 then
        local detail = type(acc.status_message) == "table" and (acc.status_message.e_message
          or acc.status_message.response) or nil
        add("error", "account_unhealthy", fmt("%s has a %s%s", email, ACCOUNT_STATUS[s],
          present(detail) and (": " .. tostring(detail)) or ""), { account = email })
      elseif s == 2 then
        add("warning", "account_paused", email .. " is paused and will not send", { account = email })
      elseif s == 3 then
        add("warning", "account_maintenance", email .. " is in maintenance (resumes by itself)", { account = email })
      end
      if acc.setup_pending == true then
        ok = false
        add("warning", "account_setup_pending", email .. " has not finished setup", { account = email })
      end
      local ws = acc.warmup_status
      if ws == -1 or ws == -2 or ws == -3 then
        add("warning", "account_warmup_problem", fmt("%s warmup is %s", email, WARMUP_STATUS[ws]),
          { account = email })
      end
      local started = wait.parse_time(acc.timestamp_warmup_start)
      if ws == 1 and started and (now - started) < min_days * 86400 then
        add("warning", "account_warming", fmt("%s started warming up %.0f days ago (less than %g)", email,
          (now - started) / 86400, min_days), { account = email })
      end
      local score = acc.stat_warmup_score
      if type(score) == "number" and score < min_score then
        add("warning", "low_warmup_score", fmt("%s has a warmup score of %g (below %g)", email, score, min_score),
          { account = email })
      end
      if not present(acc.tracking_domain_name) then untracked = untracked + 1 end
      info.usable = ok
      if ok then usable = usable + 1 end
    end
  end
  if #emails > 0 and usable == 0 then
    add("error", "no_usable_accounts", "none of the campaign's sending accounts can send")
  end
  if (camp.open_tracking == true or camp.link_tracking == true) and untracked > 0 then
    add("warning", "tracking_without_custom_domain", fmt("open/link tracking is on but %d sending account%s " ..
      "no custom tracking domain (shared tracking domains hurt deliverability)", untracked,
      untracked == 1 and " has" or "s have"))
  end

  report.ok = report.errors == 0
  return report
end

--- Activate a campaign, after a preflight unless told otherwise.
-- @tparam table client
-- @param campaign a campaign id or record
-- @tparam[opt] table opts `preflight` (default true), `strict` (also
--   refuse on warnings), and the preflight options
-- @tparam[opt] table call_opts
-- @return the activated campaign and the report (nil without preflight),
--   or nil, err: `err.kind == "preflight"` with `err.report` when the
--   preflight failed, or the API error
function M.launch(client, campaign, opts, call_opts, level)
  level = (level or 1) + 1
  opts = check_opts("campaigns:launch", opts, LAUNCH_OPTS, level)
  local id = campaign_id(campaign, "campaigns:launch", level)
  local report
  if opts.preflight ~= false then
    local popts = { min_warmup_days = opts.min_warmup_days, min_warmup_score = opts.min_warmup_score,
                    ignore = opts.ignore }
    local err
    report, err = M.preflight(client, id, popts, call_opts, level)
    if report == nil then return nil, err end
    if not report.ok or (opts.strict and report.warnings > 0) then
      local first = {}
      for _, p in ipairs(report.problems) do
        if p.severity == "error" or (opts.strict and p.severity == "warning") then
          first[#first + 1] = p.code
        end
      end
      return nil, Err.new {
        kind = "preflight", report = report, codes = first,
        message = fmt("campaign %s was not launched: preflight found %s", id, concat(first, ", ")),
      }
    end
  end
  local camp, err = client.campaigns:activate(id, nil, call_opts)
  if camp == nil then
    if report and Err.is(err) then err.report = report end
    return nil, err
  end
  return camp, report
end

return M
