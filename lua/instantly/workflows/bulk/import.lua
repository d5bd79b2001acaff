--- Checkpointed lead import: the engine behind `client.leads:import{...}`.
--
-- Reads leads from an array, an iterator or a CSV file, checks each one
-- locally (rows that would make the API reject a whole batch are reported
-- with their row numbers instead of being sent), and uploads them with
-- POST /leads/add in batches of at most 1000, several batches in flight
-- (`client:gather` underneath). With a checkpoint file a run that was
-- killed resumes where it stopped.
-- @module instantly.workflows.bulk.import

local core = require "instantly.core"
local Err = require "instantly.request.error"
local csv = require "instantly.workflows.csv"
local gather = require "instantly.workflows.gather"
local columns = require "instantly.workflows.bulk.columns"
local checkpoint = require "instantly.workflows.bulk.checkpoint"

local type, pairs, ipairs, tostring, tonumber, error, pcall, setmetatable, getmetatable =
  type, pairs, ipairs, tostring, tonumber, error, pcall, setmetatable, getmetatable
local mtype, tointeger, max = math.type, math.tointeger, math.max
local fmt, concat = string.format, table.concat
local os_rename, os_remove = os.rename, os.remove
local monotime = core.monotime
local json_encode = core.json_encode

local M = {}

--- The API's limit of leads per POST /leads/add.
M.MAX_BATCH = 1000

-- -----------------------------------------------------------------------------
-- Options
-- -----------------------------------------------------------------------------

local OPTS = {
  campaign_id = "string", list_id = "string", leads = true, batch_size = "integer", concurrency = "integer",
  skip_if_in_workspace = "boolean", skip_if_in_campaign = "boolean", skip_if_in_list = "boolean",
  verify = "boolean", blocklist_id = "string", assigned_to = "string", on_progress = "function",
  on_batch = "function", checkpoint = "string", on_change = "string", columns = "table", csv = "table",
  max_invalid = "integer", dry_run = "boolean", rejects = "string",
}

-- Misuse raises at the caller of M.import: raise <- check_* <- M.import.
local function raise(msg, depth) error("instantly: leads:import: " .. msg, depth or 4) end

local function check_types(args)
  if type(args) ~= "table" then raise("expects a table of options, got " .. type(args), 5) end
  for k, v in pairs(args) do
    local want = OPTS[k]
    if not want then raise("unknown option '" .. tostring(k) .. "'", 5) end
    if want ~= true and not ((want == "integer" and mtype(v) == "integer") or type(v) == want) then
      raise(fmt("option '%s' must be a%s %s, got %s", k, want == "integer" and "n" or "", want, type(v)), 5)
    end
  end
end

local function check_args(args)
  check_types(args)
  if (args.campaign_id == nil) == (args.list_id == nil) then raise("give exactly one of campaign_id and list_id") end
  local tl = type(args.leads)
  if not (tl == "string" or tl == "function" or tl == "table") then
    raise("option 'leads' must be an array, an iterator function or a CSV path, got " ..
      (args.leads == nil and "nothing" or tl))
  end
  local bs, c = args.batch_size, args.concurrency
  if bs ~= nil and (bs < 1 or bs > M.MAX_BATCH) then raise("batch_size must be between 1 and " .. M.MAX_BATCH) end
  if c ~= nil and (c < 1 or c > 64) then raise("concurrency must be between 1 and 64") end
  if args.max_invalid ~= nil and args.max_invalid < 0 then raise("max_invalid must be 0 or more") end
  if args.on_change ~= nil and not checkpoint.POLICIES[args.on_change] then
    raise("on_change must be \"refuse\" or \"restart\", got " .. fmt("%q", args.on_change))
  end
  if args.on_change ~= nil and args.checkpoint == nil then raise("on_change needs a checkpoint") end
  for k, v in pairs(args.columns or {}) do
    local key_ok = type(k) == "string" or (mtype(k) == "integer" and k >= 1)
    if not key_ok or (v ~= false and type(v) ~= "string") then
      raise("columns maps header names or column numbers to a lead field, a custom variable name or false")
    end
  end
  if args.csv and tl ~= "string" then raise("option 'csv' applies only when 'leads' is a CSV path") end
  if args.csv and args.csv.header ~= nil then
    raise("csv.header is not an option: the first row is the header")
  end
  if tl == "table" and getmetatable(args.leads) == csv.Reader and args.leads:has_header() then
    raise("pass a reader made without the header option")
  end
end

-- -----------------------------------------------------------------------------
-- Sources: a function returning lead, row, line, reason, raw record, item
-- (lead nil with a reason: an invalid row; all nil: the end).
-- -----------------------------------------------------------------------------

local function open_reader(leads, args)
  if type(leads) ~= "string" then return leads end
  local copts = { chunk_size = 64 * 1024 }
  for k, v in pairs(args.csv or {}) do copts[k] = v end
  return csv.open(leads, copts)
end

local function csv_source(run, args)
  local r, err = open_reader(args.leads, args)
  if not r then return nil, err end
  if type(args.leads) == "string" then run.reader = r end
  local header, hline = r:read()
  if header == nil then return nil, hline or csv.new_error(r.source, "the CSV file is empty") end
  local plan, ignored = columns.plan_columns(header, args.columns)
  if not plan then return nil, csv.new_error(r.source, ignored) end
  run.header = header
  local s = run.summary
  s.ignored_columns, s.columns = ignored, columns.mapping(header, plan)
  for _, m in ipairs(s.columns) do
    if m.warning then s.warnings[#s.warnings + 1] = m.warning end
  end
  local row, for_campaign = 0, args.campaign_id ~= nil
  return function()
    local rec, line = r:read()
    if rec == nil then
      if line ~= nil then run.fatal = line end
      return nil
    end
    row = row + 1
    local lead, reason = columns.lead_from_record(rec, plan, for_campaign)
    return lead, row, line, reason, rec
  end
end

local function table_source(args)
  local leads, for_campaign, i = args.leads, args.campaign_id ~= nil, 0
  local is_array = type(leads) == "table"
  return function()
    local item
    if is_array then item = leads[i + 1] else item = leads() end
    if item == nil then return nil end
    i = i + 1
    local lead, reason = columns.lead_from_table(item, for_campaign)
    return lead, i, nil, reason, nil, item
  end
end

local function open_source(run, args)
  local t = type(args.leads)
  if t == "string" or (t == "table" and getmetatable(args.leads) == csv.Reader) then
    return csv_source(run, args)
  end
  return table_source(args)
end

-- -----------------------------------------------------------------------------
-- Summary
-- -----------------------------------------------------------------------------

-- Response counters summed into `api`.
local COUNTERS = { "total_sent", "leads_uploaded", "in_blocklist", "duplicated_leads", "skipped_count",
  "invalid_email_count", "incomplete_count", "duplicate_email_count" }

local function counts_of(res)
  local c = {}
  for _, k in ipairs(COUNTERS) do
    c[k] = type(res) == "table" and tointeger(tonumber(res[k]) or 0) or 0
  end
  return c
end

local function new_counts()
  local t = { uploaded = 0, duplicates = 0, skipped = 0, in_blocklist = 0, invalid_email = 0, incomplete = 0,
              api = {} }
  for _, k in ipairs(COUNTERS) do t.api[k] = 0 end
  return t
end

-- Adds one batch's response counters to a counts table (the summary's own
-- for this run, or `summary.total`).
local function add_counts(t, c)
  local api = t.api
  for _, k in ipairs(COUNTERS) do api[k] = api[k] + (c[k] or 0) end
  t.uploaded, t.skipped, t.in_blocklist = api.leads_uploaded, api.skipped_count, api.in_blocklist
  t.invalid_email, t.incomplete = api.invalid_email_count, api.incomplete_count
  -- Skipped because they already exist (skip_if_* flags) plus repeats
  -- inside one batch. duplicated_leads and skipped_count both count the
  -- first kind, so take the larger, per batch.
  t.duplicates = t.duplicates + max(c.duplicated_leads or 0, c.skipped_count or 0) + (c.duplicate_email_count or 0)
end

local Summary = {}
Summary.__name = "instantly.ImportSummary"
Summary.__index = Summary

function Summary.__tostring(s)
  if s.dry_run then
    local text = fmt("import dry run: %d rows read, %d valid, %d invalid, %d batch%s to send", s.rows, s.valid,
      s.invalid_count, s.batches, s.batches == 1 and "" or "es")
    if s.columns then text = text .. "\ncolumns:\n" .. columns.describe(s.columns) end
    for _, w in ipairs(s.warnings) do text = text .. "\nwarning: " .. w end
    return text
  end
  local parts = {
    fmt("%d rows read, %d uploaded, %d duplicates skipped, %d invalid", s.rows, s.uploaded, s.duplicates,
      s.invalid_count),
  }
  if s.in_blocklist > 0 then parts[#parts + 1] = fmt("%d in the block list", s.in_blocklist) end
  if s.resumed_batches > 0 then
    parts[#parts + 1] = fmt("%d batches resumed from the checkpoint (in total %d uploaded, %d duplicates skipped)",
      s.resumed_batches, s.total.uploaded, s.total.duplicates)
  end
  if #s.failed_batches > 0 then parts[#parts + 1] = fmt("%d batches failed", #s.failed_batches) end
  local text = "import: " .. concat(parts, ", ")
  for _, w in ipairs(s.warnings) do text = text .. "\nwarning: " .. w end
  return text
end

local function new_summary(dry_run)
  local s = new_counts()
  s.rows, s.valid, s.invalid, s.invalid_count, s.failed_batches = 0, 0, {}, 0, {}
  s.batches, s.batches_sent, s.resumed_batches = 0, 0, 0
  s.ignored_columns, s.warnings, s.ok, s.elapsed, s.dry_run = {}, {}, false, 0, dry_run or nil
  s.total = new_counts()
  return setmetatable(s, Summary)
end

-- -----------------------------------------------------------------------------
-- The run
-- -----------------------------------------------------------------------------

local Run = {}
Run.__index = Run

-- HTTP statuses after which no further batch can succeed.
local FATAL_STATUS = { [401] = true, [402] = true, [403] = true, [404] = true }

-- The batch body is built as JSON text while rows are read: each lead is
-- encoded as soon as it is checked, so a batch in flight holds one string
-- (~330 KB for 1000 leads) instead of a thousand tables. It goes through
-- client:request, the same pipeline as leads:add_many (rate limiter,
-- retries, scheduler hook, errors); the leads were checked against the
-- same catalog fields the generated method validates.
local function body_head(args)
  local envelope = args.campaign_id and { campaign_id = args.campaign_id } or { list_id = args.list_id }
  for _, k in ipairs({ "skip_if_in_workspace", "skip_if_in_campaign", "skip_if_in_list", "blocklist_id",
                       "assigned_to" }) do
    envelope[k] = args[k]
  end
  if args.verify ~= nil then envelope.verify_leads_on_import = args.verify end
  return assert(json_encode(envelope)):sub(1, -2) .. ',"leads":['
end

-- Rejected rows as CSV: a CSV source's own columns (so the file can be
-- fixed and imported again) plus import_row, import_line, import_error.
function Run:open_rejects(path)
  local cols = {}
  for i, h in ipairs(self.header or { "lead" }) do cols[i] = h end
  for _, extra in ipairs({ "import_row", "import_line", "import_error" }) do cols[#cols + 1] = extra end
  local w, werr = csv.writer(path .. ".part", { header = cols })
  if not w then return nil, werr end
  self.rejects = { w = w, width = #cols - 3, path = path }
  return true
end

function Run:note_invalid(row, line, reason, raw, item)
  local s = self.summary
  s.invalid_count = s.invalid_count + 1
  if #s.invalid < self.max_invalid then s.invalid[#s.invalid + 1] = { row = row, line = line, reason = reason } end
  local rj = self.rejects
  if not rj then return end
  local out = {}
  if raw then
    for i = 1, rj.width do out[i] = raw[i] end
  else
    out[1] = type(item) == "table" and json_encode(item) or tostring(item)
  end
  out[rj.width + 1], out[rj.width + 2], out[rj.width + 3] = row, line, reason
  local ok, werr = rj.w:write(out)
  if not ok then self.fatal = self.fatal or werr end
end

-- What identifies a lead in a batch fingerprint.
local function lead_key(l)
  return l.email or ((l.first_name or "") .. "|" .. (l.last_name or ""))
end

-- Reads up to batch_size leads; returns the encoded pieces and the batch's
-- metadata, or nil at the end.
function Run:read_batch()
  local pieces, n, meta = {}, 0, { leads = self.on_batch and {} or nil }
  while n < self.batch_size do
    local lead, row, line, reason, raw, item = self.next_item()
    if row == nil then break end
    self.summary.rows = self.summary.rows + 1
    local text, jerr
    if lead then
      text, jerr = json_encode(lead)
      if not text then lead, reason = nil, "cannot encode: " .. tostring(jerr) end
    end
    if lead then
      n = n + 1
      pieces[n] = text
      meta.first_row, meta.last_row = meta.first_row or row, row
      meta.first_key, meta.last_key = meta.first_key or lead_key(lead), lead_key(lead)
      if meta.leads then meta.leads[n] = { row = row, line = line, email = lead.email } end
    else
      self:note_invalid(row, line, reason, raw, item)
    end
  end
  if self.fatal or n == 0 then return nil end
  self.batch_no = self.batch_no + 1
  meta.batch, meta.rows = self.batch_no, n
  meta.fp = n .. ":" .. meta.first_key .. ":" .. meta.last_key
  return pieces, meta
end

-- A batch the checkpoint already holds: true when it is skipped, false
-- when it must be sent (the input changed and the policy is "restart").
function Run:resumed(meta)
  local done = self.ck and self.ck.batches[tostring(meta.batch)]
  if not done then return false end
  local s = self.summary
  if done.fp ~= meta.fp then
    if self.on_change ~= "restart" then
      self.fatal = checkpoint.error(self.ck_path, fmt("batch %d (rows %d-%d) differs from the one recorded: the " ..
        "input changed since the checkpoint was written; pass on_change = \"restart\" to send from there, or " ..
        "delete it", meta.batch, meta.first_row, meta.last_row))
      return true
    end
    add_counts(s.total, checkpoint.forget_from(self.ck, meta.batch))
    s.restarted_at = s.restarted_at or meta.batch
    return false
  end
  s.batches, s.resumed_batches = s.batches + 1, s.resumed_batches + 1
  add_counts(s.total, done.c)
  if self.on_progress then self.on_progress(s) end
  return true
end

function Run:next_task()
  while not (self.fatal or self.aborted) do
    local pieces, meta = self:read_batch()
    if not pieces then return nil end
    self.summary.valid = self.summary.valid + meta.rows
    if self.dry_run then
      self.summary.batches = self.summary.batches + 1
      if self.on_progress then self.on_progress(self.summary) end
    elseif not self:resumed(meta) then
      self.issued = self.issued + 1
      self.meta_of[self.issued] = meta
      local body, client, call_opts = self.head .. concat(pieces, ",") .. "]}", self.client, self.call_opts
      return function() return client:request("POST", "/leads/add", { body = body }, call_opts) end
    end
  end
  return nil
end

-- The leads of an accepted batch with the ids the API created for them
-- (`created_leads[].index` is the 0-based position in the batch).
local function batch_rows(meta, res)
  local rows = {}
  for i, l in ipairs(meta.leads) do rows[i] = { row = l.row, line = l.line, email = l.email } end
  local created = type(res) == "table" and res.created_leads
  for _, c in ipairs(type(created) == "table" and created or {}) do
    local r = type(c) == "table" and mtype(c.index) == "integer" and rows[c.index + 1]
    if r then r.id = c.id end
  end
  return rows
end

-- on_batch runs before the batch is recorded: a batch in the checkpoint
-- has had its ids handed over (if on_batch raises, the import stops and
-- the next run sends that batch again).
function Run:accepted(meta, res)
  local s = self.summary
  s.batches_sent = s.batches_sent + 1
  local c = counts_of(res)
  add_counts(s, c)
  add_counts(s.total, c)
  if self.on_batch then self.on_batch(batch_rows(meta, res), res) end
  if self.ck then
    self.ck.batches[tostring(meta.batch)] = { fp = meta.fp, rows = { meta.first_row, meta.last_row }, c = c }
    local ok, cerr = checkpoint.save(self.ck_path, self.ck)
    if not ok then self.fatal = self.fatal or cerr end
  end
end

function Run:on_result(i, res, err)
  local meta, s = self.meta_of[i], self.summary
  self.meta_of[i] = nil
  s.batches = s.batches + 1
  if res ~= nil then
    self:accepted(meta, res)
  else
    s.failed_batches[#s.failed_batches + 1] = {
      batch = meta.batch, first_row = meta.first_row, last_row = meta.last_row, rows = meta.rows, error = err,
    }
    if Err.is(err) and FATAL_STATUS[err.status] then self.aborted = self.aborted or err end
  end
  s.elapsed = monotime() - self.t0
  -- A batch leaves ~1 MB of garbage (its leads, body and decoded
  -- response); collecting it now keeps the peak at the batches in flight
  -- instead of letting the heap double between GC cycles.
  collectgarbage("step", 1024)
  if self.on_progress then self.on_progress(s) end
end

-- Closes the reader and the rejects file; the rejects file appears only
-- when the run got to its end.
function Run:close(gather_ok)
  if self.reader then self.reader:close() end
  local rj = self.rejects
  if not rj then return end
  local cok, cerr = rj.w:close()
  if gather_ok and cok then
    local rok, rerr = os_rename(rj.path .. ".part", rj.path)
    if not rok then self.fatal = self.fatal or csv.new_error(rj.path, tostring(rerr)) end
    self.summary.rejects = rj.path
  else
    os_remove(rj.path .. ".part")
    if gather_ok then self.fatal = self.fatal or cerr end
  end
end

function Run:finish()
  local s = self.summary
  s.elapsed = monotime() - self.t0
  local fatal = self.fatal or self.aborted
  s.ok = fatal == nil and #s.failed_batches == 0
  if self.ck and s.ok and not self.dry_run then
    self.ck.complete = true
    local sok, serr = checkpoint.save(self.ck_path, self.ck)
    if not sok then fatal, s.ok = serr, false end
  end
  if fatal then
    if type(fatal) == "table" then fatal.summary = s end
    return nil, fatal
  end
  return s
end

local function new_run(client, args, call_opts)
  local run = setmetatable({
    client = client, call_opts = call_opts, batch_size = args.batch_size or M.MAX_BATCH,
    max_invalid = args.max_invalid or 10000, on_progress = args.on_progress, on_batch = args.on_batch,
    on_change = args.on_change or "refuse", dry_run = args.dry_run, head = body_head(args),
    summary = new_summary(args.dry_run), batch_no = 0, issued = 0, meta_of = {}, t0 = monotime(),
  }, Run)
  local target = args.campaign_id and ("campaign_id:" .. args.campaign_id) or ("list_id:" .. args.list_id)
  if args.checkpoint then
    local ck, dropped = checkpoint.open(args.checkpoint, target, run.batch_size, run.on_change)
    if not ck then return nil, dropped end
    run.ck, run.ck_path = ck, args.checkpoint
    if dropped then run.summary.restarted_at = 1 end
    if ck.carried then add_counts(run.summary.total, ck.carried) end
  end
  return run
end

--- Import leads into a campaign or a list (see docs/workflows.md).
-- @tparam table client
-- @tparam table args `campaign_id` or `list_id`; `leads` (array of lead
--   tables, an iterator function returning them, a CSV path or a
--   `csv.reader`); `batch_size` (1..1000, default 1000); `concurrency`
--   (batches in flight, default 4); `skip_if_in_workspace`,
--   `skip_if_in_campaign`, `skip_if_in_list`, `verify`
--   (verify_leads_on_import), `blocklist_id`, `assigned_to`;
--   `on_progress` (`fn(summary)` after each batch); `on_batch`
--   (`fn(rows, response)` after each accepted batch, `rows[i]` =
--   `{row, line, email, id}`); `checkpoint` (path of a resume file);
--   `on_change` ("refuse" or "restart": what to do when the input no
--   longer matches the checkpoint); `columns` (header or column number ->
--   lead field, custom variable name, or false to drop); `csv` (reader
--   options such as `sep`); `max_invalid` (invalid rows kept in detail,
--   default 10000); `rejects` (path of a CSV file receiving every invalid
--   row); `dry_run` (read and check everything, send nothing)
-- @tparam[opt] table call_opts per-call options for every batch
-- @return summary, or nil, err
function M.import(client, args, call_opts)
  check_args(args)
  local run, err = new_run(client, args, call_opts)
  if not run then return nil, err end
  local next_item, serr = open_source(run, args)
  if not next_item then
    run:close(false)
    return nil, serr
  end
  run.next_item = next_item
  if args.rejects then
    local ok, rerr = run:open_rejects(args.rejects)
    if not ok then
      run:close(false)
      return nil, rerr
    end
  end
  local ok, gerr = pcall(gather.gather, client, function() return run:next_task() end, {
    concurrency = args.concurrency or 4,
    on_result = function(i, res, e) run:on_result(i, res, e) end,
  })
  run:close(ok)
  if not ok then error(gerr, 0) end
  return run:finish()
end

return M
