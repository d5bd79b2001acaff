--- Bulk lead import and export, streaming in constant memory.
--
-- `import` reads leads from an array, an iterator or a CSV file, checks
-- each one locally (rows that would make the API reject a whole batch are
-- reported with their row numbers instead of being sent), and uploads them
-- with POST /leads/add in batches of at most 1000, several batches in
-- flight at once (`client:gather` underneath). With a checkpoint file a
-- run that was killed resumes where it stopped: accepted batches are
-- skipped, their counts carried over.
--
-- `export` pages through POST /leads/list and writes every lead to a CSV
-- or JSON Lines file, one page in memory at a time.
-- @module instantly.bulk

local core = require "instantly.core"
local Err = require "instantly.error"
local csv = require "instantly.csv"
local gather = require "instantly.gather"

local type, pairs, ipairs, tostring, tonumber, error, pcall, setmetatable, getmetatable =
  type, pairs, ipairs, tostring, tonumber, error, pcall, setmetatable, getmetatable
local mtype, tointeger, max = math.type, math.tointeger, math.max
local fmt, concat, sort = string.format, table.concat, table.sort
local io_open, os_rename, os_remove = io.open, os.rename, os.remove
local monotime, csv_format = core.monotime, core.csv_format
local null = core.null
local json_encode, json_decode = core.json_encode, core.json_decode

local M = {}

--- The API's limit of leads per POST /leads/add.
M.MAX_BATCH = 1000

-------------------------------------------------------------------------------
-- Lead fields and column names
-------------------------------------------------------------------------------

-- Fields a lead may carry in POST /leads/add, from the catalog.
local LEAD_FIELDS = {}
-- Read-only (or per-import) fields of the Lead schema: a column named
-- after one is ignored on import, so an exported file imports cleanly.
local IGNORED_FIELDS = { campaign = true, list_id = true, campaign_id = true }

do
  local def = require "instantly.entities.leads"
  for _, op in ipairs(def.operations) do
    if op.id == "bulkAddLeads" then
      for _, f in ipairs(op.body.fields) do
        if f.name == "leads" then
          for _, lf in ipairs(f.fields) do LEAD_FIELDS[lf.name] = lf end
        end
      end
    end
  end
  for _, f in ipairs(def.fields) do
    if not LEAD_FIELDS[f.name] then IGNORED_FIELDS[f.name] = true end
  end
end
M.LEAD_FIELDS, M.IGNORED_FIELDS = LEAD_FIELDS, IGNORED_FIELDS

local function squash(name)
  return (name:lower():gsub("[%s_%-%.]+", ""))
end

local function trim(s)
  return (s:match("^%s*(.-)%s*$"))
end

-- Column names (squashed: lower case, no spaces, underscores, dashes or
-- dots) that mean a lead field.
local ALIASES = {
  email = "email", emailaddress = "email", mail = "email", email1 = "email",
  firstname = "first_name", first = "first_name", givenname = "first_name", fname = "first_name",
  lastname = "last_name", last = "last_name", surname = "last_name", familyname = "last_name",
  lname = "last_name",
  company = "company_name", companyname = "company_name", organisation = "company_name",
  organizationname = "company_name", account = "company_name", accountname = "company_name",
  jobtitle = "job_title", title = "job_title", position = "job_title", role = "job_title",
  phone = "phone", phonenumber = "phone", telephone = "phone", tel = "phone", mobile = "phone",
  website = "website", url = "website", websiteurl = "website", web = "website", domain = "website",
  companywebsite = "website",
  personalization = "personalization", personalisation = "personalization",
  ltintereststatus = "lt_interest_status", intereststatus = "lt_interest_status",
  plvaluelead = "pl_value_lead", leadvalue = "pl_value_lead",
  assignedto = "assigned_to",
}
M.ALIASES = ALIASES

for name in pairs(LEAD_FIELDS) do ALIASES[squash(name)] = name end

local IGNORED_SQUASHED = {}
for name in pairs(IGNORED_FIELDS) do
  if not ALIASES[squash(name)] then IGNORED_SQUASHED[squash(name)] = name end
end

--- What a column name means on import.
-- @tparam string name a CSV header or a lead table key
-- @treturn string "field", "custom" or "ignore"
-- @treturn string the lead field, or the custom variable name
function M.column_meaning(name)
  local trimmed = name:match("^%s*(.-)%s*$")
  local sq = squash(trimmed)
  local f = ALIASES[sq]
  if f then return "field", f end
  if IGNORED_SQUASHED[sq] then return "ignore", IGNORED_SQUASHED[sq] end
  return "custom", trimmed
end

-- Per-column plan for a header: {kind, name} per index. `columns`
-- overrides, by column number or header: a lead field name, a custom
-- variable name, or false. A column without a name (trailing empty header
-- cells are common in spreadsheet exports) is ignored.
local function plan_columns(header, columns)
  local plan, taken, ignored = {}, {}, {}
  for i, h in ipairs(header) do
    local kind, name
    local o
    if columns then
      o = columns[i]
      if o == nil then o = columns[h] end
    end
    if o == false then
      kind, name = "ignore", h
    elseif type(o) == "string" then
      if LEAD_FIELDS[o] then kind, name = "field", o else kind, name = "custom", o end
    elseif trim(h) == "" then
      kind, name = "ignore", ""
    else
      kind, name = M.column_meaning(h)
    end
    if kind == "ignore" then ignored[#ignored + 1] = trim(h) ~= "" and h or ("column " .. i) end
    if kind ~= "ignore" then
      local key = kind .. ":" .. name
      if taken[key] then
        return nil, fmt("columns %d (%q) and %d (%q) both map to %s %q", taken[key], header[taken[key]], i, h,
          kind == "field" and "lead field" or "custom variable", name)
      end
      taken[key] = i
    end
    plan[i] = { kind, name }
  end
  return plan, ignored
end
M.plan_columns = plan_columns

-------------------------------------------------------------------------------
-- Checking a lead
-------------------------------------------------------------------------------

--- A plausible address: one @, no spaces, a dot in a domain of sane shape.
-- (The server decides deliverability; this only keeps malformed rows from
-- being sent.)
function M.is_email(s)
  if type(s) ~= "string" or #s > 320 then return false end
  local loc, dom = s:match("^([^@%s]+)@([^@%s]+)$")
  if not loc or #loc > 64 then return false end
  if not dom:find(".", 1, true) or dom:find("..", 1, true) then return false end
  if dom:sub(1, 1) == "." or dom:sub(-1) == "." or dom:sub(1, 1) == "-" then return false end
  if loc:sub(1, 1) == "." or loc:sub(-1) == "." or loc:find("..", 1, true) then return false end
  return dom:match("%.[^%.]+$") ~= nil and #dom:match("%.([^%.]+)$") >= 2
end

local function scalar_ok(v)
  local t = type(v)
  return t == "string" or t == "number" or t == "boolean" or v == null
end

-- Converts and checks one field value; returns the value or nil, reason.
local function field_value(name, v)
  local f = LEAD_FIELDS[name]
  if v == null then
    if f.nullable then return v end
    return nil, name .. " cannot be null"
  end
  if type(v) == "string" then
    v = trim(v)
    if v == "" then return nil end -- an empty cell is no value
  end
  if f.type == "integer" then
    local n = v
    if type(v) == "string" then n = tonumber(v) end
    n = type(n) == "number" and tointeger(n) or nil
    if n == nil then return nil, fmt("%s must be an integer, got %q", name, tostring(v)) end
    if f.enum then
      local ok = false
      for _, e in ipairs(f.enum) do if e == n then ok = true break end end
      if not ok then return nil, fmt("%s %d is not one of the allowed values", name, n) end
    end
    return n
  end
  if type(v) == "number" then v = tostring(tointeger(v) or v) end
  if type(v) ~= "string" then return nil, fmt("%s must be a string, got %s", name, type(v)) end
  if f.format == "uuid" and not v:match("^%x+%-%x+%-%x+%-%x+%-%x+$") then
    return nil, fmt("%s must be a UUID, got %q", name, v)
  end
  return v
end

-- Final checks shared by CSV rows and tables: what the target needs.
local function finish_lead(lead, for_campaign)
  local email = lead.email
  if email ~= nil and email ~= null then
    if not M.is_email(email) then return nil, fmt("invalid email %q", email) end
  elseif for_campaign then
    return nil, "missing email"
  elseif lead.first_name == nil and lead.last_name == nil then
    return nil, "needs an email, first_name or last_name"
  end
  return lead
end

-- A lead from a CSV record and its column plan.
local function lead_from_record(rec, plan, for_campaign)
  local lead, custom = {}, nil
  for i = 1, #rec do
    local p = plan[i]
    local v = rec[i]
    if p == nil then
      if v ~= "" then return nil, fmt("%d fields, but the header names %d columns", #rec, #plan) end
    elseif p[1] == "field" then
      local val, reason = field_value(p[2], v)
      if reason then return nil, reason end
      if val ~= nil then lead[p[2]] = val end
    elseif p[1] == "custom" then
      local t = trim(v)
      if t ~= "" then
        custom = custom or {}
        custom[p[2]] = t
      end
    end
  end
  if custom then lead.custom_variables = custom end
  return finish_lead(lead, for_campaign)
end
M.lead_from_record = lead_from_record

-- A lead from a table given by the caller: keys go through the same
-- column meanings as CSV headers; unknown keys become custom variables.
local function lead_from_table(t, for_campaign)
  if type(t) ~= "table" then return nil, "a lead must be a table, got " .. type(t) end
  local lead, custom = {}, nil
  for k, v in pairs(t) do
    if type(k) ~= "string" then return nil, "lead keys must be strings, got " .. type(k) end
    if k == "custom_variables" then
      if type(v) ~= "table" then return nil, "custom_variables must be a table" end
      for ck, cv in pairs(v) do
        if type(ck) ~= "string" then return nil, "custom variable names must be strings" end
        if not scalar_ok(cv) then
          return nil, fmt("custom variable %q must be a string, number, boolean or null, got %s", ck, type(cv))
        end
        custom = custom or {}
        custom[ck] = cv
      end
    else
      local kind, name = M.column_meaning(k)
      if kind == "field" then
        local val, reason = field_value(name, v)
        if reason then return nil, reason end
        if val ~= nil then lead[name] = val end
      elseif kind == "custom" then
        if not scalar_ok(v) then
          return nil, fmt("custom variable %q must be a string, number, boolean or null, got %s", k, type(v))
        end
        custom = custom or {}
        if custom[name] == nil then custom[name] = v end
      end
    end
  end
  if custom then lead.custom_variables = custom end
  return finish_lead(lead, for_campaign)
end
M.lead_from_table = lead_from_table

-------------------------------------------------------------------------------
-- Checkpoints
-------------------------------------------------------------------------------

local function ck_error(path, msg)
  return Err.new { kind = "checkpoint", path = path, message = "checkpoint " .. path .. ": " .. msg }
end

--- Read a checkpoint file: the state table, false when there is none, or
-- nil, err when it cannot be read.
function M.load_checkpoint(path)
  local f = io_open(path, "rb")
  if not f then return false end
  local text = f:read("a")
  f:close()
  local st, msg = json_decode(text)
  if type(st) ~= "table" or st.version ~= 1 or type(st.batches) ~= "table" then
    return nil, ck_error(path, "unreadable (" .. tostring(msg or "not an import checkpoint") .. ")")
  end
  return st
end

--- Write a checkpoint atomically: a temporary file beside it, flushed and
-- closed, then renamed over the old one.
function M.save_checkpoint(path, st)
  local text, msg = json_encode(st, { sort_keys = true })
  if not text then return nil, ck_error(path, "cannot encode: " .. tostring(msg)) end
  local tmp = path .. ".tmp"
  local f, err = io_open(tmp, "wb")
  if not f then return nil, ck_error(path, tostring(err)) end
  local ok, werr = f:write(text, "\n")
  if ok then ok, werr = f:flush() end
  f:close()
  if not ok then
    os_remove(tmp)
    return nil, ck_error(path, tostring(werr))
  end
  local rok, rerr = os_rename(tmp, path)
  if not rok then
    os_remove(tmp)
    return nil, ck_error(path, tostring(rerr))
  end
  return true
end

-------------------------------------------------------------------------------
-- Import
-------------------------------------------------------------------------------

-- Response counters summed into summary.api.
local COUNTERS = { "total_sent", "leads_uploaded", "in_blocklist", "duplicated_leads", "skipped_count",
  "invalid_email_count", "incomplete_count", "duplicate_email_count" }

local function counts_of(res)
  local c = {}
  for _, k in ipairs(COUNTERS) do
    local v = type(res) == "table" and tointeger(tonumber(res[k]) or 0) or 0
    c[k] = v or 0
  end
  return c
end

local function add_counts(summary, c)
  local api = summary.api
  for _, k in ipairs(COUNTERS) do api[k] = api[k] + (c[k] or 0) end
  summary.uploaded = api.leads_uploaded
  summary.skipped = api.skipped_count
  summary.in_blocklist = api.in_blocklist
  summary.invalid_email = api.invalid_email_count
  summary.incomplete = api.incomplete_count
  -- Skipped because they already exist (skip_if_* flags) plus repeats
  -- inside one batch. duplicated_leads and skipped_count both count the
  -- first kind, so take the larger, per batch.
  summary.duplicates = summary.duplicates + max(c.duplicated_leads or 0, c.skipped_count or 0)
    + (c.duplicate_email_count or 0)
end

local IMPORT_OPTS = {
  campaign_id = "string", list_id = "string", leads = true, batch_size = "integer", concurrency = "integer",
  skip_if_in_workspace = "boolean", skip_if_in_campaign = "boolean", skip_if_in_list = "boolean",
  verify = "boolean", blocklist_id = "string", assigned_to = "string", on_progress = "function",
  checkpoint = "string", columns = "table", csv = "table", max_invalid = "integer",
  dry_run = "boolean", rejects = "string",
}

local function check_import_args(args, level)
  level = level + 1
  if type(args) ~= "table" then
    error("instantly: leads:import: expects a table of options, got " .. type(args), level)
  end
  for k, v in pairs(args) do
    local want = IMPORT_OPTS[k]
    if not want then error("instantly: leads:import: unknown option '" .. tostring(k) .. "'", level) end
    if want ~= true then
      local ok = (want == "integer" and mtype(v) == "integer") or type(v) == want
      if not ok then
        error(fmt("instantly: leads:import: option '%s' must be a%s %s, got %s", k,
          want == "integer" and "n" or "", want, type(v)), level)
      end
    end
  end
  if (args.campaign_id == nil) == (args.list_id == nil) then
    error("instantly: leads:import: give exactly one of campaign_id and list_id", level)
  end
  local tl = type(args.leads)
  if not (tl == "string" or tl == "function" or (tl == "table")) then
    error("instantly: leads:import: option 'leads' must be an array, an iterator function or a CSV path, got " ..
      (args.leads == nil and "nothing" or tl), level)
  end
  local bs = args.batch_size
  if bs ~= nil and (bs < 1 or bs > M.MAX_BATCH) then
    error("instantly: leads:import: batch_size must be between 1 and " .. M.MAX_BATCH, level)
  end
  local c = args.concurrency
  if c ~= nil and (c < 1 or c > 64) then
    error("instantly: leads:import: concurrency must be between 1 and 64", level)
  end
  if args.max_invalid ~= nil and args.max_invalid < 0 then
    error("instantly: leads:import: max_invalid must be 0 or more", level)
  end
  if args.columns then
    for k, v in pairs(args.columns) do
      local key_ok = type(k) == "string" or (mtype(k) == "integer" and k >= 1)
      if not key_ok or (v ~= false and type(v) ~= "string") then
        error("instantly: leads:import: columns maps header names or column numbers to a lead field, " ..
          "a custom variable name or false", level)
      end
    end
  end
  if args.csv and tl ~= "string" then
    error("instantly: leads:import: option 'csv' applies only when 'leads' is a CSV path", level)
  end
end

-- Builds the item source: a function returning lead, row, line, reason
-- (lead nil and reason set: an invalid row; all nil: the end), the reader
-- to close, and the ignored columns. Errors (unreadable CSV) are set in
-- state.fatal.
local function open_source(args, state, level)
  local for_campaign = args.campaign_id ~= nil
  local leads = args.leads
  local t = type(leads)
  if t == "string" or (t == "table" and getmetatable(leads) == csv.Reader) then
    local copts = { chunk_size = 64 * 1024 }
    for k, v in pairs(args.csv or {}) do
      if k == "header" then
        error("instantly: leads:import: csv.header is not an option: the first row is the header", level + 1)
      end
      copts[k] = v
    end
    local r, err
    if t == "string" then
      r, err = csv.open(leads, copts)
      if not r then return nil, err end
    else
      r = leads
    end
    if t ~= "string" and (r.header or r._want_header) then
      error("instantly: leads:import: pass a reader made without the header option", level + 1)
    end
    local function give_up(e)
      if t == "string" then r:close() end
      return nil, e
    end
    local header, hline = r:read()
    if header == nil then
      return give_up(hline or csv.new_error(r.source, "the CSV file is empty"))
    end
    local plan, ignored = plan_columns(header, args.columns)
    if not plan then return give_up(csv.new_error(r.source, ignored)) end
    local row = 0
    local src = function()
      local rec, line = r:read()
      if rec == nil then
        if line ~= nil then state.fatal = line end
        return nil
      end
      row = row + 1
      local lead, reason = lead_from_record(rec, plan, for_campaign)
      return lead, row, line, reason, rec
    end
    return src, r, ignored, header
  elseif t == "table" then
    local i = 0
    return function()
      i = i + 1
      local item = leads[i]
      if item == nil then return nil end
      local lead, reason = lead_from_table(item, for_campaign)
      return lead, i, nil, reason, nil, item
    end, nil, {}
  else
    local i = 0
    return function()
      local item = leads()
      if item == nil then return nil end
      i = i + 1
      local lead, reason = lead_from_table(item, for_campaign)
      return lead, i, nil, reason, nil, item
    end, nil, {}
  end
end

-- What identifies a lead in a batch fingerprint.
local function lead_key(l)
  return l.email or ((l.first_name or "") .. "|" .. (l.last_name or ""))
end

-- HTTP statuses after which no further batch can succeed.
local FATAL_STATUS = { [401] = true, [402] = true, [403] = true, [404] = true }

local Summary = {}
Summary.__name = "instantly.ImportSummary"
Summary.__index = Summary

function Summary.__tostring(s)
  local parts = {
    fmt("%d rows read, %d uploaded, %d duplicates skipped, %d invalid", s.rows, s.uploaded, s.duplicates,
      s.invalid_count),
  }
  if s.in_blocklist > 0 then parts[#parts + 1] = fmt("%d in the block list", s.in_blocklist) end
  if s.resumed_batches > 0 then parts[#parts + 1] = fmt("%d batches resumed from the checkpoint", s.resumed_batches) end
  if #s.failed_batches > 0 then parts[#parts + 1] = fmt("%d batches failed", #s.failed_batches) end
  return "import: " .. concat(parts, ", ")
end

--- Import leads into a campaign or a list (see the module description).
-- @tparam table client
-- @tparam table args `campaign_id` or `list_id`; `leads` (array of lead
--   tables, an iterator function returning them, or a CSV path);
--   `batch_size` (1..1000, default 1000); `concurrency` (batches in flight,
--   default 4); `skip_if_in_workspace`, `skip_if_in_campaign`,
--   `skip_if_in_list`, `verify` (verify_leads_on_import), `blocklist_id`,
--   `assigned_to`; `on_progress` (`fn(summary)` after each batch);
--   `checkpoint` (path of a resume file); `columns` (header or column
--   number -> lead field, custom variable name, or false to drop); `csv`
--   (reader options such as `sep` for a CSV path); `max_invalid` (invalid
--   rows kept in detail, default 10000; all are counted); `rejects` (path
--   of a CSV file receiving every invalid row: a CSV source's columns, or
--   the lead as JSON, plus import_row, import_line and import_error);
--   `dry_run` (read and check everything, count batches, send nothing)
-- @tparam[opt] table call_opts per-call options for every batch
-- @return summary (see README, "Workflows"), or nil, err
function M.import(client, args, call_opts, level)
  level = (level or 1) + 1
  check_import_args(args, level)
  local batch_size = args.batch_size or M.MAX_BATCH
  local concurrency = args.concurrency or 4
  local max_invalid = args.max_invalid or 10000
  local target_key = args.campaign_id and "campaign_id" or "list_id"
  local target = args.campaign_id or args.list_id
  local on_progress = args.on_progress
  local t0 = monotime()

  local summary = setmetatable({
    rows = 0, valid = 0, uploaded = 0, duplicates = 0, skipped = 0, in_blocklist = 0,
    invalid_email = 0, incomplete = 0,
    invalid = {}, invalid_count = 0, failed_batches = {},
    batches = 0, batches_sent = 0, resumed_batches = 0,
    ignored_columns = {}, api = {}, ok = false, elapsed = 0,
  }, Summary)
  for _, k in ipairs(COUNTERS) do summary.api[k] = 0 end

  local ck_path, ck = args.checkpoint, nil
  if ck_path then
    local st, err = M.load_checkpoint(ck_path)
    if st == nil then return nil, err end
    if st then
      if st.target ~= target_key .. ":" .. target or st.batch_size ~= batch_size then
        return nil, ck_error(ck_path, fmt("it belongs to another import (%s, batch_size %s); " ..
          "delete it to start over", tostring(st.target), tostring(st.batch_size)))
      end
      ck = st
    else
      ck = { version = 1, target = target_key .. ":" .. target, batch_size = batch_size, batches = {},
             complete = false }
    end
  end

  local state = {}
  local next_item, reader, ignored, header = open_source(args, state, level)
  if not next_item then return nil, reader end
  summary.ignored_columns = ignored or {}
  local dry_run = args.dry_run
  summary.dry_run = dry_run or nil

  -- Rejected rows as CSV: a CSV source's own columns (so the file can be
  -- fixed and imported again) plus import_row, import_line, import_error.
  local rejects, rejects_path = nil, args.rejects
  if rejects_path then
    local cols = {}
    for i, h in ipairs(header or {}) do cols[i] = h end
    if not header then cols[1] = "lead" end
    for _, extra in ipairs({ "import_row", "import_line", "import_error" }) do cols[#cols + 1] = extra end
    local w, werr = csv.writer(rejects_path .. ".part", { header = cols })
    if not w then
      if reader and type(args.leads) == "string" then reader:close() end
      return nil, werr
    end
    rejects = { w = w, width = #cols - 3 }
  end

  local flags = {}
  for _, k in ipairs({ "skip_if_in_workspace", "skip_if_in_campaign", "skip_if_in_list", "blocklist_id",
                       "assigned_to" }) do
    flags[k] = args[k]
  end
  if args.verify ~= nil then flags.verify_leads_on_import = args.verify end

  -- The batch body is built as JSON text while rows are read: each lead is
  -- encoded as soon as it is checked, so a batch in flight holds one string
  -- (~330 KB for 1000 leads) instead of a thousand tables. It goes through
  -- client:request, the same pipeline as leads:add_many (rate limiter,
  -- retries, scheduler hook, errors); the leads were checked above against
  -- the same catalog fields the generated method validates.
  local envelope = { [target_key] = target }
  for k, v in pairs(flags) do envelope[k] = v end
  local head = assert(json_encode(envelope))
  head = head:sub(1, -2) .. ',"leads":['
  local batch_no, issued = 0, 0
  local meta_of = {}

  local function note_invalid(row, line, reason, raw, item)
    summary.invalid_count = summary.invalid_count + 1
    if #summary.invalid < max_invalid then
      summary.invalid[#summary.invalid + 1] = { row = row, line = line, reason = reason }
    end
    if rejects then
      local out, width = {}, rejects.width
      if raw then
        for i = 1, width do out[i] = raw[i] end
      else
        local text = type(item) == "table" and json_encode(item) or tostring(item)
        out[1] = text
      end
      out[width + 1], out[width + 2], out[width + 3] = row, line, reason
      local ok, werr = rejects.w:write(out)
      if not ok then state.fatal = state.fatal or werr end
    end
  end

  local function next_task()
    while true do
      if state.fatal or state.aborted then return nil end
      local pieces, n, first_row, last_row, first_key, last_key = {}, 0, nil, nil, nil, nil
      while n < batch_size do
        local lead, row, line, reason, raw, item = next_item()
        if row == nil then break end
        summary.rows = summary.rows + 1
        local text, jerr
        if lead then
          text, jerr = json_encode(lead)
          if not text then lead, reason = nil, "cannot encode: " .. tostring(jerr) end
        end
        if lead then
          n = n + 1
          pieces[n] = text
          first_row = first_row or row
          last_row = row
          first_key = first_key or lead_key(lead)
          last_key = lead_key(lead)
        else
          note_invalid(row, line, reason, raw, item)
        end
      end
      if state.fatal or n == 0 then return nil end
      batch_no = batch_no + 1
      summary.valid = summary.valid + n
      local meta = { batch = batch_no, first_row = first_row, last_row = last_row, rows = n,
                     fp = n .. ":" .. first_key .. ":" .. last_key }
      local done = ck and ck.batches[tostring(batch_no)]
      if dry_run then
        summary.batches = summary.batches + 1
        if on_progress then on_progress(summary) end
      elseif done then
        if done.fp ~= meta.fp then
          state.fatal = ck_error(ck_path, fmt("batch %d (rows %d-%d) differs from the one recorded; the input " ..
            "changed since the checkpoint was written; delete it to start over", batch_no, first_row, last_row))
          return nil
        end
        summary.batches = summary.batches + 1
        summary.resumed_batches = summary.resumed_batches + 1
        add_counts(summary, done.c)
        if on_progress then on_progress(summary) end
      else
        issued = issued + 1
        meta_of[issued] = meta
        local body = head .. concat(pieces, ",") .. "]}"
        return function()
          return client:request("POST", "/leads/add", { body = body }, call_opts)
        end
      end
    end
  end

  local function on_result(i, res, err)
    local meta = meta_of[i]
    meta_of[i] = nil
    summary.batches = summary.batches + 1
    if res ~= nil then
      summary.batches_sent = summary.batches_sent + 1
      local c = counts_of(res)
      add_counts(summary, c)
      if ck then
        ck.batches[tostring(meta.batch)] = { fp = meta.fp, rows = { meta.first_row, meta.last_row }, c = c }
        local ok, cerr = M.save_checkpoint(ck_path, ck)
        if not ok then state.fatal = state.fatal or cerr end
      end
    else
      summary.failed_batches[#summary.failed_batches + 1] = {
        batch = meta.batch, first_row = meta.first_row, last_row = meta.last_row, rows = meta.rows, error = err,
      }
      if Err.is(err) and FATAL_STATUS[err.status] then state.aborted = state.aborted or err end
    end
    summary.elapsed = monotime() - t0
    -- A batch leaves ~1 MB of garbage (its leads, body and decoded
    -- response); collecting it now keeps the peak at the batches in flight
    -- instead of letting the heap double between GC cycles.
    collectgarbage("step", 1024)
    if on_progress then on_progress(summary) end
  end

  local ok, gerr = pcall(gather.gather, client, next_task, { concurrency = concurrency, on_result = on_result })
  if reader and type(args.leads) == "string" then reader:close() end
  if rejects then
    local cok, cerr = rejects.w:close()
    if ok and cok then
      local rok, rerr = os_rename(rejects_path .. ".part", rejects_path)
      if not rok then state.fatal = state.fatal or csv.new_error(rejects_path, tostring(rerr)) end
      summary.rejects = rejects_path
    else
      os_remove(rejects_path .. ".part")
      if ok then state.fatal = state.fatal or cerr end
    end
  end
  if not ok then error(gerr, 0) end

  summary.elapsed = monotime() - t0
  local fatal = state.fatal or state.aborted
  summary.ok = fatal == nil and #summary.failed_batches == 0
  if ck and summary.ok and not dry_run then
    ck.complete = true
    local sok, serr = M.save_checkpoint(ck_path, ck)
    if not sok then fatal = serr; summary.ok = false end
  end
  if fatal then
    if type(fatal) == "table" then fatal.summary = summary end
    return nil, fatal
  end
  return summary
end

-------------------------------------------------------------------------------
-- Export
-------------------------------------------------------------------------------

--- The columns an export writes before the custom variables.
M.EXPORT_COLUMNS = {
  "email", "first_name", "last_name", "company_name", "job_title", "phone", "website", "personalization",
  "lt_interest_status", "pl_value_lead", "status", "verification_status", "id", "campaign", "list_id",
  "timestamp_created",
}

local EXPORT_OPTS = {
  campaign_id = "string", list_id = "string", path = "string", format = "string", columns = "table",
  page_size = "integer", on_progress = "function", csv = "table", filter = "string", search = "string",
  params = "table",
}

-- Parameters of POST /leads/list the export sets itself.
local EXPORT_OWN = { limit = true, starting_after = true, campaign = true, list_id = true }

local function check_export_args(args, level)
  level = level + 1
  if type(args) ~= "table" then
    error("instantly: leads:export_file: expects a table of options, got " .. type(args), level)
  end
  for k, v in pairs(args) do
    local want = EXPORT_OPTS[k]
    if not want then error("instantly: leads:export_file: unknown option '" .. tostring(k) .. "'", level) end
    local ok = (want == "integer" and mtype(v) == "integer") or type(v) == want
    if not ok then
      error(fmt("instantly: leads:export_file: option '%s' must be a%s %s, got %s", k,
        want == "integer" and "n" or "", want, type(v)), level)
    end
  end
  if args.campaign_id and args.list_id then
    error("instantly: leads:export_file: give campaign_id or list_id, not both", level)
  end
  if not args.path or args.path == "" then
    error("instantly: leads:export_file: option 'path' is required", level)
  end
  if args.format and args.format ~= "csv" and args.format ~= "jsonl" then
    error("instantly: leads:export_file: format must be \"csv\" or \"jsonl\"", level)
  end
  if args.page_size and (args.page_size < 1 or args.page_size > 100) then
    error("instantly: leads:export_file: page_size must be between 1 and 100", level)
  end
  if args.columns then
    for i, c in ipairs(args.columns) do
      if type(c) ~= "string" then
        error("instantly: leads:export_file: columns[" .. i .. "] must be a string", level)
      end
    end
    if #args.columns == 0 then error("instantly: leads:export_file: columns must not be empty", level) end
  end
  if args.params then
    for k in pairs(args.params) do
      if EXPORT_OWN[k] then
        error("instantly: leads:export_file: params." .. tostring(k) .. " is set by the export", level)
      end
    end
  end
  if args.csv then
    for k in pairs(args.csv) do
      if k ~= "sep" and k ~= "bom" and k ~= "eol" then
        error("instantly: leads:export_file: unknown csv option '" .. tostring(k) .. "'", level)
      end
    end
  end
end

local function cell(v)
  if v == nil or v == null then return nil end
  local t = type(v)
  if t == "table" then return (json_encode(v)) end
  return v
end

local function export_error(msg, extra)
  local e = Err.new { kind = "export", message = msg }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

-- Copies file `from` onto the end of handle `to` in chunks.
local function append_file(to, from)
  local f, err = io_open(from, "rb")
  if not f then return nil, err end
  while true do
    local s = f:read(1024 * 1024)
    if not s then break end
    local ok, werr = to:write(s)
    if not ok then f:close() return nil, werr end
  end
  f:close()
  return true
end

--- Export the leads of a campaign, a list or the workspace to a file.
-- @tparam table client
-- @tparam table args `path` (required); `campaign_id` or `list_id` (none:
--   every lead); `format` ("csv" or "jsonl"; default from the path's
--   extension, .jsonl/.ndjson meaning jsonl); `columns` (CSV columns:
--   lead fields or custom variable names; default the common lead fields
--   then every custom variable met); `page_size` (1..100, default 100);
--   `filter`, `search` (as for leads:list); `params` (any other
--   leads:list parameters, e.g. `{in_campaign = true, distinct_contacts =
--   true}`; checked by leads:list); `on_progress` (`fn(count)`
--   after each page); `csv` (`sep`, `bom`, `eol`)
-- @tparam[opt] table call_opts per-call options for every page
-- @return summary `{rows, pages, path, format, columns}`, or nil, err
function M.export(client, args, call_opts, level)
  level = (level or 1) + 1
  check_export_args(args, level)
  local path = args.path
  local format = args.format or ((path:match("%.jsonl$") or path:match("%.ndjson$")) and "jsonl" or "csv")
  local params = {}
  for k, v in pairs(args.params or {}) do params[k] = v end
  params.limit, params.campaign, params.list_id = args.page_size or 100, args.campaign_id, args.list_id
  if args.filter then params.filter = args.filter end
  if args.search then params.search = args.search end
  local part = path .. ".part"
  local body_path = path .. ".part-rows"
  local fixed = args.columns
  local columns = {}
  local col_index = {}
  if format == "csv" then
    for i, c in ipairs(fixed or M.EXPORT_COLUMNS) do columns[i] = c; col_index[c] = i end
  end
  local sep = args.csv and args.csv.sep or ","
  local eol = args.csv and args.csv.eol or "\r\n"
  local bom = args.csv and args.csv.bom
  if sep == '"' or #sep ~= 1 or sep == "\r" or sep == "\n" then
    error("instantly: leads:export_file: csv.sep must be one byte other than a quote, CR or LF", level)
  end
  if eol ~= "\r\n" and eol ~= "\n" then
    error("instantly: leads:export_file: csv.eol must be \"\\r\\n\" or \"\\n\"", level)
  end

  -- With fixed columns (or JSONL) rows go straight to the part file; with
  -- discovered custom variables they go to a rows file and the header,
  -- known only at the end, is written before them.
  local direct = format == "jsonl" or fixed ~= nil
  local out, oerr = io_open(direct and part or body_path, "wb")
  if not out then return nil, export_error("cannot write " .. path .. ": " .. tostring(oerr)) end
  local function cleanup()
    out:close()
    os_remove(part)
    os_remove(body_path)
  end
  if format == "csv" and direct then
    if bom then out:write("\239\187\191") end
    out:write(csv_format(columns, #columns, sep), eol)
  end

  local rows, pages = 0, 0
  local entity = client.leads
  local seen_cursor = {}
  local row = {}
  while true do
    local page, err = entity:list(params, call_opts)
    if page == nil then
      cleanup()
      if Err.is(err) then err.exported = rows end
      return nil, err
    end
    pages = pages + 1
    local items = page.items
    if type(items) ~= "table" then
      cleanup()
      return nil, export_error("a page of POST /leads/list had no items array")
    end
    for i = 1, #items do
      local lead = items[i]
      local ok, werr
      if format == "jsonl" then
        local text, jerr = json_encode(lead)
        if not text then cleanup() return nil, export_error("cannot encode lead: " .. tostring(jerr)) end
        ok, werr = out:write(text, "\n")
      else
        local payload = lead.payload
        if type(payload) ~= "table" then payload = nil end
        if not fixed and payload then
          local names = {}
          for k in pairs(payload) do
            if not col_index[k] then names[#names + 1] = k end
          end
          sort(names)
          for _, k in ipairs(names) do
            columns[#columns + 1] = k
            col_index[k] = #columns
          end
        end
        -- A row covers the columns known so far; columns found later are
        -- absent from it (trailing empty fields to any CSV reader).
        local n = #columns
        for c = 1, n do
          local name = columns[c]
          local v = lead[name]
          if v == nil and payload then v = payload[name] end
          row[c] = cell(v)
        end
        ok, werr = out:write(csv_format(row, n, sep), eol)
        for c = 1, n do row[c] = nil end
      end
      if not ok then
        cleanup()
        return nil, export_error("cannot write " .. path .. ": " .. tostring(werr), { exported = rows })
      end
      rows = rows + 1
    end
    if args.on_progress then args.on_progress(rows) end
    local cur = page.next_starting_after
    if #items == 0 or cur == nil or cur == null or cur == "" then break end
    if seen_cursor[cur] then
      cleanup()
      return nil, export_error("the server returned cursor " .. tostring(cur) .. " twice; stopping",
        { exported = rows })
    end
    seen_cursor[cur] = true
    params.starting_after = cur
  end

  local ok, err = out:close()
  if not ok then cleanup() return nil, export_error("cannot write " .. path .. ": " .. tostring(err)) end
  if not direct then
    local f, ferr = io_open(part, "wb")
    if not f then
      os_remove(body_path)
      return nil, export_error("cannot write " .. path .. ": " .. tostring(ferr))
    end
    if bom then f:write("\239\187\191") end
    f:write(csv_format(columns, #columns, sep), eol)
    local aok, aerr = append_file(f, body_path)
    local cok, cerr = f:close()
    os_remove(body_path)
    if not (aok and cok) then
      os_remove(part)
      return nil, export_error("cannot write " .. path .. ": " .. tostring(aerr or cerr))
    end
  end
  local rok, rerr = os_rename(part, path)
  if not rok then
    os_remove(part)
    return nil, export_error("cannot rename " .. part .. " to " .. path .. ": " .. tostring(rerr))
  end
  return { rows = rows, pages = pages, path = path, format = format,
           columns = format == "csv" and columns or nil }
end

return M
