--- Campaign preflight: what would make sending fail or hurt
-- deliverability, checked before a launch, or before the campaign exists.
--
-- `preflight(client, id)` reads the campaign, each of its sending accounts
-- (concurrently) and whether it has any lead, and reports problems with a
-- severity: "error" (sending would fail or cannot start), "warning" (it
-- would send, but deliverability or volume suffers) or "info".
-- `preflight(client, params)` checks a parameter table for
-- `campaigns:create` the same way before anything is created: schedule,
-- sequence, daily limit, the sending accounts (read), and whether a
-- campaign of that name exists already. `launch(client, id, {preflight =
-- true})` activates only when the report has no errors (and, with
-- `strict = true`, no warnings).
--
-- Problem codes: no_accounts, accounts_by_tag, account_missing,
-- account_unhealthy, account_paused, account_maintenance,
-- account_setup_pending, account_warmup_problem, account_warming,
-- low_warmup_score, no_usable_accounts, no_leads, no_schedule,
-- schedule_no_days, schedule_bad_days, schedule_bad_time,
-- schedule_empty_window, schedule_no_timezone, schedule_bad_timezone,
-- schedule_ended, schedule_not_started, empty_sequence,
-- step_without_variants, empty_subject, empty_body, template_syntax,
-- daily_limit_zero, campaign_suspended, campaign_unhealthy,
-- campaign_bounce_protect, campaign_completed, already_active,
-- tracking_without_custom_domain; for a parameter table also no_name and
-- name_taken.
-- @module instantly.workflows.preflight

local core = require "instantly.core"
local Err = require "instantly.request.error"
local enums = require "instantly.enums"
local gather = require "instantly.workflows.gather"
local schedule = require "instantly.workflows.schedule"
local find = require "instantly.workflows.find"
local wait = require "instantly.workflows.wait"

local type, pairs, ipairs, tostring, error, setmetatable, getmetatable =
  type, pairs, ipairs, tostring, error, setmetatable, getmetatable
local fmt, concat = string.format, table.concat
local mtype = math.type
local ostime, osdate = os.time, os.date
local null = core.null

local M = {}

M.DEFAULTS = { min_warmup_days = 14, min_warmup_score = 70 }

local CAMPAIGN, ACCOUNT = enums.campaign.status, enums.account.status
local WARMUP = enums.account.warmup_status

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
  local what = self.campaign_id and "campaign" or "new campaign"
  local head = fmt("preflight of %s %s: %s (%d error%s, %d warning%s)", what,
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

-- Records a problem (codes the caller listed in `ignore` become "info").
function Report:add(severity, code, message, extra)
  if self._ignore[code] then severity = "info" end
  local p = { severity = severity, code = code, message = message }
  for k, v in pairs(extra or {}) do p[k] = v end
  self.problems[#self.problems + 1] = p
  if severity == "error" then self.errors = self.errors + 1 end
  if severity == "warning" then self.warnings = self.warnings + 1 end
  self.ok = self.errors == 0
end

local function new_report(fields, opts)
  local ignore = {}
  for _, c in ipairs(opts.ignore or {}) do ignore[c] = true end
  fields.ok, fields.problems, fields.errors, fields.warnings, fields.accounts = true, {}, 0, 0, {}
  fields._ignore = ignore
  return setmetatable(fields, Report)
end

local PREFLIGHT_OPTS = { min_warmup_days = "number", min_warmup_score = "number", ignore = "table" }
local LAUNCH_OPTS = { preflight = "boolean", strict = "boolean" }

-- Misuse raises at the caller of M.preflight / M.launch (level 3).
local function check_opts(fname, opts, allowed)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(fmt("instantly: %s: options must be a table, got %s", fname, type(opts)), 3)
  end
  for k, v in pairs(opts) do
    local want = allowed[k] or PREFLIGHT_OPTS[k]
    if not want then error(fmt("instantly: %s: unknown option '%s'", fname, tostring(k)), 3) end
    if type(v) ~= want then
      error(fmt("instantly: %s: option '%s' must be a %s, got %s", fname, k, want, type(v)), 3)
    end
  end
  for _, c in ipairs(opts.ignore or {}) do
    if type(c) ~= "string" then error(fmt("instantly: %s: ignore lists problem codes (strings)", fname), 3) end
  end
  return opts
end

-- A campaign id, or a parameter table (plain, without id) for a campaign
-- not created yet.
local function target_of(v, fname)
  if type(v) == "string" and v ~= "" then return v end
  if type(v) == "table" and type(v.id) == "string" and v.id ~= "" then return v.id end
  if type(v) == "table" and v.id == nil and getmetatable(v) == nil then return nil, v end
  error(fmt("instantly: %s: expected a campaign id, a campaign record or create parameters, got %s", fname,
    v == nil and "nothing" or type(v)), 3)
end

-- "YYYY-MM-DD" of today, in UTC.
local function today()
  return osdate("!%Y-%m-%d", ostime())
end

-- -----------------------------------------------------------------------------
-- The checks: each adds the problems of one part of a campaign.
-- -----------------------------------------------------------------------------

local function check_state(r, camp)
  local st = camp.status
  if st == CAMPAIGN.account_suspended then
    r:add("error", "campaign_suspended", "the campaign is suspended (account suspended)")
  elseif st == CAMPAIGN.accounts_unhealthy then
    r:add("warning", "campaign_unhealthy", "the campaign is marked 'accounts unhealthy'")
  elseif st == CAMPAIGN.bounce_protect then
    r:add("warning", "campaign_bounce_protect", "bounce protection has stopped the campaign")
  elseif st == CAMPAIGN.completed then
    r:add("warning", "campaign_completed", "the campaign has completed")
  elseif st == CAMPAIGN.active then
    r:add("info", "already_active", "the campaign is already active")
  end
  if mtype(camp.daily_limit) == "integer" and camp.daily_limit <= 0 then
    r:add("error", "daily_limit_zero", "the campaign's daily limit is " .. camp.daily_limit .. ": nothing will be sent")
  end
end

-- The days of one window: false when none is on; bad keys are reported.
local function check_days(r, days, label, i)
  local any = false
  for k, on in pairs(type(days) == "table" and days or {}) do
    if schedule.day_key(k) ~= k then
      r:add("error", "schedule_bad_days", fmt("%s has day key %q; the API wants \"0\"..\"6\" (0 = Sunday)", label,
        tostring(k)), { schedule = i })
    elseif on == true then
      any = true
    end
  end
  if not any then r:add("error", "schedule_no_days", label .. " has no sending day", { schedule = i }) end
end

local function check_window(r, s, label, i)
  check_days(r, s.days, label, i)
  local t = type(s.timing) == "table" and s.timing or {}
  local from, to = schedule.time(t.from), schedule.time(t.to)
  if (t.from and not from) or (t.to and not to) or (from and from ~= t.from) or (to and to ~= t.to) then
    r:add("error", "schedule_bad_time", fmt("%s has times %s-%s; the API wants HH:MM", label, tostring(t.from),
      tostring(t.to)), { schedule = i })
  elseif not from or not to or from >= to then
    r:add("error", "schedule_empty_window", fmt("%s has no sending window (from %s to %s)", label,
      tostring(t.from), tostring(t.to)), { schedule = i })
  end
  if not present(s.timezone) then
    r:add("error", "schedule_no_timezone", label .. " has no timezone", { schedule = i })
  elseif not schedule.is_timezone(s.timezone) then
    r:add("error", "schedule_bad_timezone", fmt("%s has timezone %q, which is not in the API's list", label,
      tostring(s.timezone)), { schedule = i })
  end
end

local function check_schedule(r, sched)
  local schedules = type(sched) == "table" and sched.schedules
  if type(schedules) ~= "table" or #schedules == 0 then
    r:add("error", "no_schedule", "the campaign has no sending schedule")
    return
  end
  for i, s in ipairs(schedules) do
    check_window(r, type(s) == "table" and s or {},
      fmt("schedule %d%s", i, type(s) == "table" and present(s.name) and fmt(" (%q)", s.name) or ""), i)
  end
  local d = today()
  if present(sched.end_date) and tostring(sched.end_date):sub(1, 10) < d then
    r:add("error", "schedule_ended", "the schedule ended on " .. tostring(sched.end_date))
  end
  if present(sched.start_date) and tostring(sched.start_date):sub(1, 10) > d then
    r:add("warning", "schedule_not_started", "sending starts only on " .. tostring(sched.start_date))
  end
end

local function check_variant(r, v, i, j)
  local where, at = fmt("step %d, variant %d", i, j), { step = i, variant = j }
  if text_of(v.body) == "" then r:add("error", "empty_body", where .. " has an empty body", at) end
  if i == 1 and text_of(v.subject) == "" then
    r:add("error", "empty_subject", where .. " has an empty subject (the first email needs one)", at)
  end
  if not balanced(v.subject) or not balanced(v.body) then
    r:add("warning", "template_syntax", where .. " has unbalanced {{ }} in its variables", at)
  end
end

local function check_sequence(r, seqs)
  local steps = type(seqs) == "table" and type(seqs[1]) == "table" and seqs[1].steps
  if type(steps) ~= "table" or #steps == 0 then
    r:add("error", "empty_sequence", "the campaign's sequence has no steps")
    return
  end
  for i, step in ipairs(steps) do
    local variants, active = type(step) == "table" and step.variants, 0
    for j, v in ipairs(type(variants) == "table" and variants or {}) do
      if type(v) == "table" and v.v_disabled ~= true then
        active = active + 1
        check_variant(r, v, i, j)
      end
    end
    if active == 0 then
      r:add("error", "step_without_variants", fmt("step %d has no enabled variant", i), { step = i })
    end
  end
end

-- The health of one sending account; true when it can send.
local function check_account(r, email, acc, limits)
  local s, at = acc.status, { account = email }
  if s == ACCOUNT.connection_error or s == ACCOUNT.soft_bounce_error or s == ACCOUNT.sending_error then
    local detail = type(acc.status_message) == "table" and (acc.status_message.e_message
      or acc.status_message.response) or nil
    r:add("error", "account_unhealthy", fmt("%s has a %s%s", email, enums.label("account.status", s):lower(),
      present(detail) and (": " .. tostring(detail)) or ""), at)
  elseif s == ACCOUNT.paused then
    r:add("warning", "account_paused", email .. " is paused and will not send", at)
  elseif s == ACCOUNT.maintenance then
    r:add("warning", "account_maintenance", email .. " is in maintenance (resumes by itself)", at)
  end
  local ok = s == ACCOUNT.active or s == ACCOUNT.maintenance
  if acc.setup_pending == true then
    ok = false
    r:add("warning", "account_setup_pending", email .. " has not finished setup", at)
  end
  local ws = acc.warmup_status
  if ws == WARMUP.banned or ws == WARMUP.spam_folder_unknown or ws == WARMUP.permanent_suspension then
    r:add("warning", "account_warmup_problem", fmt("%s warmup is %s", email, enums.label("account.warmup_status",
      ws):lower()), at)
  end
  local started, now = wait.parse_time(acc.timestamp_warmup_start), ostime()
  if ws == WARMUP.active and started and (now - started) < limits.days * 86400 then
    r:add("warning", "account_warming", fmt("%s started warming up %.0f days ago (less than %g)", email,
      (now - started) / 86400, limits.days), at)
  end
  local score = acc.stat_warmup_score
  if type(score) == "number" and score < limits.score then
    r:add("warning", "low_warmup_score", fmt("%s has a warmup score of %g (below %g)", email, score, limits.score), at)
  end
  return ok
end

-- The sending accounts, read concurrently with `extra` (more tasks); returns
-- the values of the extra tasks in order, or nil, err on a read failure
-- other than a 404.
local function check_accounts(r, client, camp, limits, extra, call_opts)
  local emails, tasks = {}, {}
  for _, e in ipairs(type(camp.email_list) == "table" and camp.email_list or {}) do
    if present(e) then
      emails[#emails + 1] = e
      tasks[#emails] = function() return client.accounts:get(e, nil, call_opts) end
    end
  end
  for _, t in ipairs(extra) do tasks[#tasks + 1] = t end
  local values, errs = gather.gather(client, tasks, { concurrency = 8 })
  local extra_values = {}
  for i = #emails + 1, #tasks do
    if values[i] == nil then return nil, errs[i] end
    extra_values[i - #emails] = values[i]
  end
  if #emails == 0 then
    if type(camp.email_tag_list) == "table" and #camp.email_tag_list > 0 then
      r:add("warning", "accounts_by_tag",
        "sending accounts are chosen by tag at send time; their health was not checked")
    else
      r:add("error", "no_accounts", "the campaign has no sending accounts")
    end
  end
  local usable, untracked = 0, 0
  for i, email in ipairs(emails) do
    local acc, info = values[i], { email = email }
    r.accounts[i] = info
    if acc == nil then
      if not (Err.is(errs[i]) and errs[i].status == 404) then return nil, errs[i] end
      info.missing = true
      r:add("error", "account_missing", email .. " is not a sending account of this workspace", { account = email })
    else
      info.status, info.warmup_status, info.warmup_score = acc.status, acc.warmup_status, acc.stat_warmup_score
      info.usable = check_account(r, email, acc, limits)
      if info.usable then usable = usable + 1 end
      if not present(acc.tracking_domain_name) then untracked = untracked + 1 end
    end
  end
  if #emails > 0 and usable == 0 then
    r:add("error", "no_usable_accounts", "none of the campaign's sending accounts can send")
  end
  if (camp.open_tracking == true or camp.link_tracking == true) and untracked > 0 then
    r:add("warning", "tracking_without_custom_domain", fmt("open/link tracking is on but %d sending account%s " ..
      "no custom tracking domain (shared tracking domains hurt deliverability)", untracked,
      untracked == 1 and " has" or "s have"))
  end
  return extra_values
end

local function limits_of(opts)
  return { days = opts.min_warmup_days or M.DEFAULTS.min_warmup_days,
           score = opts.min_warmup_score or M.DEFAULTS.min_warmup_score }
end

-- The preflight of create parameters: nothing exists yet, so there are no
-- leads to look for; a campaign of the same name is looked for instead.
local function preflight_params(client, params, opts, call_opts)
  local r = new_report({ campaign_name = params.name, campaign = params }, opts)
  if not present(params.name) then r:add("error", "no_name", "the parameters have no name") end
  check_state(r, params)
  check_schedule(r, params.campaign_schedule)
  check_sequence(r, params.sequences)
  local extra = {}
  if type(params.name) == "string" and params.name ~= "" then
    extra[1] = function()
      local found, count = find.find(client.campaigns, { name = params.name }, call_opts)
      if found == nil and count ~= 0 then return nil, count end
      return { found = found or false, count = count }
    end
  end
  local values, err = check_accounts(r, client, params, limits_of(opts), extra, call_opts)
  if not values then return nil, err end
  local taken = values[1]
  if taken and taken.found then
    r:add("warning", "name_taken", fmt("a campaign named %q exists already (%s%s); create would add another",
      params.name, tostring(taken.found.id), taken.count > 1 and fmt(", and %d more", taken.count - 1) or ""),
      { campaign_id = taken.found.id })
  end
  return r
end

--- Check a campaign before launch, or create parameters before create.
-- @tparam table client
-- @param campaign a campaign id or record, or a parameter table for
--   `campaigns:create` (a plain table without `id`)
-- @tparam[opt] table opts `min_warmup_days` (default 14),
--   `min_warmup_score` (default 70), `ignore` (problem codes to report as
--   "info" instead)
-- @tparam[opt] table call_opts per-call options for the reads
-- @return report, or nil, err when the campaign (or an account, other
--   than by 404) cannot be read
function M.preflight(client, campaign, opts, call_opts)
  opts = check_opts("campaigns:preflight", opts, {})
  local id, params = target_of(campaign, "campaigns:preflight")
  if params then return preflight_params(client, params, opts, call_opts) end
  local camp, err = client.campaigns:get(id, nil, call_opts)
  if camp == nil then return nil, err end
  local r = new_report({ campaign_id = id, campaign_name = camp.name, campaign = camp }, opts)
  check_state(r, camp)
  check_schedule(r, camp.campaign_schedule)
  check_sequence(r, camp.sequences)
  local leads = function() return client.leads:list({ campaign = id, limit = 1 }, call_opts) end
  local values
  values, err = check_accounts(r, client, camp, limits_of(opts), { leads }, call_opts)
  if not values then return nil, err end
  local page = values[1]
  r.has_leads = type(page.items) == "table" and #page.items > 0
  if not r.has_leads then r:add("error", "no_leads", "the campaign has no leads") end
  return r
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
function M.launch(client, campaign, opts, call_opts)
  opts = check_opts("campaigns:launch", opts, LAUNCH_OPTS)
  local id = target_of(campaign, "campaigns:launch")
  if not id then error("instantly: campaigns:launch: expected a campaign id or a campaign record, got create " ..
    "parameters (create the campaign first)", 2) end
  local report
  if opts.preflight ~= false then
    local popts = { min_warmup_days = opts.min_warmup_days, min_warmup_score = opts.min_warmup_score,
                    ignore = opts.ignore }
    local err
    report, err = M.preflight(client, id, popts, call_opts)
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
