--- Lead export to a file: the engine behind `client.leads:export_file{...}`.
--
-- Pages through POST /leads/list (through the public `client.leads:list`)
-- and writes every lead to a CSV or JSON Lines file, one page in memory at
-- a time. The file appears only when complete (`path .. ".part"`, then a
-- rename).
-- @module instantly.workflows.bulk.export

local core = require "instantly.core"
local Err = require "instantly.request.error"

local type, pairs, ipairs, tostring, error, setmetatable = type, pairs, ipairs, tostring, error, setmetatable
local mtype = math.type
local fmt, sort = string.format, table.sort
local io_open, os_rename, os_remove = io.open, os.rename, os.remove
local csv_format, null, json_encode = core.csv_format, core.null, core.json_encode

local M = {}

--- The columns an export writes before the custom variables.
M.EXPORT_COLUMNS = {
  "email", "first_name", "last_name", "company_name", "job_title", "phone", "website", "personalization",
  "lt_interest_status", "pl_value_lead", "status", "verification_status", "id", "campaign", "list_id",
  "timestamp_created",
}

local OPTS = {
  campaign_id = "string", list_id = "string", path = "string", format = "string", columns = "table",
  page_size = "integer", on_progress = "function", csv = "table", filter = "string", search = "string",
  params = "table",
}

-- Parameters of POST /leads/list the export sets itself.
local OWN = { limit = true, starting_after = true, campaign = true, list_id = true }

-- Misuse raises at the caller of M.export: raise <- check_* <- M.export.
local function raise(msg, depth) error("instantly: leads:export_file: " .. msg, depth or 4) end

local function check_types(args)
  if type(args) ~= "table" then raise("expects a table of options, got " .. type(args), 5) end
  for k, v in pairs(args) do
    local want = OPTS[k]
    if not want then raise("unknown option '" .. tostring(k) .. "'", 5) end
    if not ((want == "integer" and mtype(v) == "integer") or type(v) == want) then
      raise(fmt("option '%s' must be a%s %s, got %s", k, want == "integer" and "n" or "", want, type(v)), 5)
    end
  end
end

local function check_csv(c)
  for k in pairs(c) do
    if k ~= "sep" and k ~= "bom" and k ~= "eol" then raise("unknown csv option '" .. tostring(k) .. "'", 5) end
  end
  local sep, eol = c.sep or ",", c.eol or "\r\n"
  if sep == '"' or #sep ~= 1 or sep == "\r" or sep == "\n" then
    raise("csv.sep must be one byte other than a quote, CR or LF", 5)
  end
  if eol ~= "\r\n" and eol ~= "\n" then raise("csv.eol must be \"\\r\\n\" or \"\\n\"", 5) end
end

local function check_args(args)
  check_types(args)
  if args.campaign_id and args.list_id then raise("give campaign_id or list_id, not both") end
  if not args.path or args.path == "" then raise("option 'path' is required") end
  if args.format and args.format ~= "csv" and args.format ~= "jsonl" then
    raise("format must be \"csv\" or \"jsonl\"")
  end
  if args.page_size and (args.page_size < 1 or args.page_size > 100) then
    raise("page_size must be between 1 and 100")
  end
  if args.columns then
    for i, c in ipairs(args.columns) do
      if type(c) ~= "string" then raise("columns[" .. i .. "] must be a string") end
    end
    if #args.columns == 0 then raise("columns must not be empty") end
  end
  for k in pairs(args.params or {}) do
    if OWN[k] then raise("params." .. tostring(k) .. " is set by the export") end
  end
  check_csv(args.csv or {})
end

local function export_error(msg, extra)
  local e = Err.new { kind = "export", message = msg }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

local function cell(v)
  if v == nil or v == null then return nil end
  if type(v) == "table" then return (json_encode(v)) end
  return v
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

-- -----------------------------------------------------------------------------
-- The writer: rows go to `path.part` (fixed columns, JSONL) or, when the
-- custom variables are discovered on the way, to `path.part-rows` with the
-- header written in front at the end.
-- -----------------------------------------------------------------------------

local Out = {}
Out.__index = Out

local function open_out(args)
  local path = args.path
  local o = setmetatable({
    path = path, part = path .. ".part", body_path = path .. ".part-rows", fixed = args.columns,
    format = args.format or ((path:match("%.jsonl$") or path:match("%.ndjson$")) and "jsonl" or "csv"),
    sep = args.csv and args.csv.sep or ",", eol = args.csv and args.csv.eol or "\r\n",
    bom = args.csv and args.csv.bom, columns = {}, col_index = {}, row = {}, rows = 0,
  }, Out)
  if o.format == "csv" then
    for i, c in ipairs(o.fixed or M.EXPORT_COLUMNS) do o.columns[i], o.col_index[c] = c, i end
  end
  o.direct = o.format == "jsonl" or o.fixed ~= nil
  local f, err = io_open(o.direct and o.part or o.body_path, "wb")
  if not f then return nil, export_error("cannot write " .. path .. ": " .. tostring(err)) end
  o.f = f
  if o.format == "csv" and o.direct then o:write_header(f) end
  return o
end

function Out:write_header(f)
  if self.bom then f:write("\239\187\191") end
  return f:write(csv_format(self.columns, #self.columns, self.sep), self.eol)
end

function Out:discard()
  self.f:close()
  os_remove(self.part)
  os_remove(self.body_path)
end

-- New custom variables of a lead become columns (sorted, after the known ones).
function Out:discover(payload)
  local names = {}
  for k in pairs(payload) do
    if not self.col_index[k] then names[#names + 1] = k end
  end
  sort(names)
  for _, k in ipairs(names) do
    self.columns[#self.columns + 1] = k
    self.col_index[k] = #self.columns
  end
end

function Out:write_lead(lead)
  if self.format == "jsonl" then
    local text, jerr = json_encode(lead)
    if not text then return nil, "cannot encode lead: " .. tostring(jerr) end
    return self.f:write(text, "\n")
  end
  local payload = type(lead.payload) == "table" and lead.payload or nil
  if not self.fixed and payload then self:discover(payload) end
  -- A row covers the columns known so far; columns found later are absent
  -- from it (trailing empty fields to any CSV reader).
  local row, n = self.row, #self.columns
  for c = 1, n do
    local name = self.columns[c]
    local v = lead[name]
    if v == nil and payload then v = payload[name] end
    row[c] = cell(v)
  end
  local ok, werr = self.f:write(csv_format(row, n, self.sep), self.eol)
  for c = 1, n do row[c] = nil end
  return ok, werr
end

-- Closes the rows, puts the header in front when it was discovered, and
-- renames the part file into place.
function Out:commit()
  local ok, err = self.f:close()
  if not ok then return nil, "cannot write " .. self.path .. ": " .. tostring(err) end
  if not self.direct then
    local f, ferr = io_open(self.part, "wb")
    if not f then
      os_remove(self.body_path)
      return nil, "cannot write " .. self.path .. ": " .. tostring(ferr)
    end
    self:write_header(f)
    local aok, aerr = append_file(f, self.body_path)
    local cok, cerr = f:close()
    os_remove(self.body_path)
    if not (aok and cok) then
      os_remove(self.part)
      return nil, "cannot write " .. self.path .. ": " .. tostring(aerr or cerr)
    end
  end
  local rok, rerr = os_rename(self.part, self.path)
  if not rok then
    os_remove(self.part)
    return nil, "cannot rename " .. self.part .. " to " .. self.path .. ": " .. tostring(rerr)
  end
  return true
end

local function list_params(args)
  local params = {}
  for k, v in pairs(args.params or {}) do params[k] = v end
  params.limit, params.campaign, params.list_id = args.page_size or 100, args.campaign_id, args.list_id
  params.filter, params.search = args.filter, args.search
  return params
end

-- Writes every page; returns the page count, or nil, err.
local function copy_pages(client, out, params, call_opts, on_progress)
  local pages, seen_cursor = 0, {}
  while true do
    local page, err = client.leads:list(params, call_opts)
    if page == nil then return nil, err end
    pages = pages + 1
    local items = page.items
    if type(items) ~= "table" then return nil, export_error("a page of POST /leads/list had no items array") end
    for i = 1, #items do
      local ok, werr = out:write_lead(items[i])
      if not ok then return nil, export_error("cannot write " .. out.path .. ": " .. tostring(werr)) end
      out.rows = out.rows + 1
    end
    if on_progress then on_progress(out.rows) end
    local cur = page.next_starting_after
    if #items == 0 or cur == nil or cur == null or cur == "" then return pages end
    if seen_cursor[cur] then
      return nil, export_error("the server returned cursor " .. tostring(cur) .. " twice; stopping")
    end
    seen_cursor[cur] = true
    params.starting_after = cur
  end
end

--- Export the leads of a campaign, a list or the workspace to a file.
-- @tparam table client
-- @tparam table args `path` (required); `campaign_id` or `list_id` (none:
--   every lead); `format` ("csv" or "jsonl"; default from the path's
--   extension, .jsonl/.ndjson meaning jsonl); `columns` (CSV columns:
--   lead fields or custom variable names; default the common lead fields
--   then every custom variable met); `page_size` (1..100, default 100);
--   `filter`, `search` (as for leads:list); `params` (any other
--   leads:list parameters); `on_progress` (`fn(count)` after each page);
--   `csv` (`sep`, `bom`, `eol`)
-- @tparam[opt] table call_opts per-call options for every page
-- @return summary `{rows, pages, path, format, columns}`, or nil, err
--   (with `err.exported`, the rows written before the failure)
function M.export(client, args, call_opts)
  check_args(args)
  local out, oerr = open_out(args)
  if not out then return nil, oerr end
  local pages, err = copy_pages(client, out, list_params(args), call_opts, args.on_progress)
  if not pages then
    out:discard()
    if Err.is(err) then err.exported = out.rows end
    return nil, err
  end
  local ok, cerr = out:commit()
  if not ok then return nil, export_error(cerr, { exported = out.rows }) end
  return { rows = out.rows, pages = pages, path = out.path, format = out.format,
           columns = out.format == "csv" and out.columns or nil }
end

return M
