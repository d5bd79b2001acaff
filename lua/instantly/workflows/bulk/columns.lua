--- What import columns mean: CSV headers (and lead table keys) to lead
-- fields or custom variables, and the checks a lead passes before it is
-- sent. Pure functions over the catalog's lead fields; no I/O.
-- @module instantly.workflows.bulk.columns

local core = require "instantly.core"

local type, pairs, ipairs, next, tostring, tonumber, error = type, pairs, ipairs, next, tostring, tonumber, error
local tointeger, min = math.tointeger, math.min
local fmt, concat, sort = string.format, table.concat, table.sort
local null = core.null

local M = {}

-- The operation an import sends: its `leads` array describes a lead.
local ADD_METHOD, ADD_PATH = "POST", "/leads/add"

--- The fields a lead may carry in POST /leads/add, read from an entity
-- definition (generated from the catalog). Raises when the definition
-- has no such operation or no `leads` array: an import built on an empty
-- field list would turn every column into a custom variable.
-- @tparam table def an entity definition (`instantly.entities.leads`)
-- @treturn table field name -> field description
function M.lead_fields_of(def)
  for _, op in ipairs(def.operations or {}) do
    if op.method == ADD_METHOD and op.path == ADD_PATH and op.body then
      for _, f in ipairs(op.body.fields or {}) do
        if f.name == "leads" and type(f.fields) == "table" and #f.fields > 0 then
          local out = {}
          for _, lf in ipairs(f.fields) do out[lf.name] = lf end
          return out
        end
      end
    end
  end
  error("instantly.bulk: the catalog has no " .. ADD_METHOD .. " " .. ADD_PATH ..
    " with a 'leads' array of fields; regenerate lua/instantly/entities from the catalog", 2)
end

local LEADS = require "instantly.entities.leads"
local LEAD_FIELDS = M.lead_fields_of(LEADS)
-- Read-only (or per-import) fields of the Lead schema: a column named
-- after one is ignored on import, so an exported file imports cleanly.
local IGNORED_FIELDS = { campaign = true, list_id = true, campaign_id = true }
for _, f in ipairs(LEADS.fields) do
  if not LEAD_FIELDS[f.name] then IGNORED_FIELDS[f.name] = true end
end
M.LEAD_FIELDS, M.IGNORED_FIELDS = LEAD_FIELDS, IGNORED_FIELDS

local function squash(name)
  return (name:lower():gsub("[%s_%-%.]+", ""))
end

local byte, find = string.byte, string.find

-- Most cells have nothing to trim: their first and last bytes are not
-- white space (%s is bytes 9-13 and 32), and the pattern, which tries
-- the end at every byte, costs three times the check (a 9-column row:
-- 6.0 against 2.0 µs).
local function trim(s)
  local a, z = byte(s, 1), byte(s, -1)
  if a and a > 32 and z > 32 then return s end
  return (s:match("^%s*(.-)%s*$"))
end
M.trim = trim

-- Column names (squashed: lower case, no spaces, underscores, dashes or
-- dots) that mean a lead field.
local ALIASES = {
  email = "email", emailaddress = "email", mail = "email", email1 = "email", workemail = "email",
  firstname = "first_name", first = "first_name", givenname = "first_name", fname = "first_name",
  lastname = "last_name", last = "last_name", surname = "last_name", familyname = "last_name",
  lname = "last_name",
  company = "company_name", companyname = "company_name", organisation = "company_name",
  organization = "company_name", organizationname = "company_name", account = "company_name",
  accountname = "company_name",
  jobtitle = "job_title", title = "job_title", position = "job_title", role = "job_title",
  phone = "phone", phonenumber = "phone", telephone = "phone", tel = "phone", mobile = "phone",
  website = "website", url = "website", websiteurl = "website", web = "website", domain = "website",
  companywebsite = "website",
  personalization = "personalization", personalisation = "personalization",
  personalizationline = "personalization", personalisationline = "personalization",
  personalizedline = "personalization", personalisedline = "personalization",
  ltintereststatus = "lt_interest_status", intereststatus = "lt_interest_status",
  plvaluelead = "pl_value_lead", leadvalue = "pl_value_lead",
  assignedto = "assigned_to",
}
for name in pairs(LEAD_FIELDS) do ALIASES[squash(name)] = name end
M.ALIASES = ALIASES

local IGNORED_SQUASHED = {}
for name in pairs(IGNORED_FIELDS) do
  if not ALIASES[squash(name)] then IGNORED_SQUASHED[squash(name)] = name end
end

--- A custom variable name usable in a template: a header that is already
-- an identifier stays as it is; any other becomes lower-case words joined
-- by `_` ("Company Size" -> "company_size").
-- @tparam string header
-- @treturn string
function M.variable_name(header)
  local h = trim(header)
  if h:match("^[%a_][%w_]*$") then return h end
  local s = h:lower():gsub("[^%w]+", "_"):gsub("^_+", ""):gsub("_+$", "")
  if s == "" then return h end
  return s
end

--- What a column name means on import.
-- @tparam string name a CSV header or a lead table key
-- @treturn string "field", "custom" or "ignore"
-- @treturn string the lead field, or the custom variable name
function M.column_meaning(name)
  local sq = squash(trim(name))
  local f = ALIASES[sq]
  if f then return "field", f end
  if IGNORED_SQUASHED[sq] then return "ignore", IGNORED_SQUASHED[sq] end
  return "custom", M.variable_name(name)
end

-- Edit distance between two short strings, stopping above `cap`.
local function distance(a, b, cap)
  if math.abs(#a - #b) > cap then return cap + 1 end
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur, best = { [0] = i }, i
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
      if cur[j] < best then best = cur[j] end
    end
    if best > cap then return cap + 1 end
    prev = cur
  end
  return prev[#b]
end

--- The lead field a custom column was probably meant to be, if any: a
-- header within two typing errors of a field name or alias ("Emial",
-- "Phon"). Used for warnings only.
-- @tparam string header
-- @treturn string|nil the lead field
function M.near_miss(header)
  local sq = squash(trim(header))
  if #sq < 4 then return nil end
  local best, best_d
  local names = {}
  for alias in pairs(ALIASES) do names[#names + 1] = alias end
  sort(names)
  for _, alias in ipairs(names) do
    if #alias >= 4 then
      local d = distance(sq, alias, 2)
      if d <= 2 and (best_d == nil or d < best_d) then best, best_d = ALIASES[alias], d end
    end
  end
  return best
end

-- One column of the plan: what it becomes, and why a person should look.
local function plan_one(i, h, columns)
  local o
  if columns then
    o = columns[i]
    if o == nil then o = columns[h] end
  end
  if o == false then return { "ignore", h } end
  if type(o) == "string" then
    return { LEAD_FIELDS[o] and "field" or "custom", o, explicit = true }
  end
  if trim(h) == "" then return { "ignore", "" } end
  local kind, name = M.column_meaning(h)
  local p = { kind, name }
  if kind == "custom" then
    local guess = M.near_miss(h)
    if guess then
      p.warning = fmt("column %d %q becomes custom variable %q; did you mean lead field %s? " ..
        "(columns = {[%q] = %q})", i, h, name, guess, h, guess)
    elseif name ~= trim(h) then
      p.warning = fmt("column %d %q becomes custom variable %q (template variables cannot hold spaces " ..
        "or punctuation)", i, h, name)
    end
  end
  return p
end

--- The plan for a header: per column `{kind, name, warning =}`, and the
-- ignored column names; or nil and a message when two columns would
-- write the same field. `columns` overrides by column number or header:
-- a lead field name, a custom variable name (taken as it is), or false.
-- A column without a name is ignored.
-- @tparam table header array of header cells
-- @tparam[opt] table columns
-- @treturn table plan
-- @treturn table ignored column names
function M.plan_columns(header, columns)
  local plan, taken, ignored = {}, {}, {}
  for i, h in ipairs(header) do
    local p = plan_one(i, h, columns)
    if p[1] == "ignore" then
      ignored[#ignored + 1] = trim(h) ~= "" and h or ("column " .. i)
    else
      local key = p[1] .. ":" .. p[2]
      if taken[key] then
        return nil, fmt("columns %d (%q) and %d (%q) both map to %s %q", taken[key], header[taken[key]], i, h,
          p[1] == "field" and "lead field" or "custom variable", p[2])
      end
      taken[key] = i
    end
    plan[i] = p
  end
  return plan, ignored
end

--- The plan as rows for a person: `{column, header, kind, name, warning}`.
-- @tparam table header
-- @tparam table plan from `plan_columns`
-- @treturn table array of rows
function M.mapping(header, plan)
  local out = {}
  for i, h in ipairs(header) do
    local p = plan[i]
    out[i] = { column = i, header = h, kind = p[1], name = p[2], warning = p.warning }
  end
  return out
end

--- The mapping as text, one line per column (what a dry run prints).
-- @tparam table mapping from `mapping`
-- @treturn string
function M.describe(mapping)
  local lines = {}
  for _, m in ipairs(mapping) do
    local what = m.kind == "field" and ("lead field " .. m.name)
      or m.kind == "custom" and fmt("custom variable %q", m.name) or "ignored"
    lines[#lines + 1] = fmt("  %2d %-28s -> %s%s", m.column, fmt("%q", m.header), what,
      m.warning and "  (warning)" or "")
  end
  return concat(lines, "\n")
end

-- -----------------------------------------------------------------------------
-- Checking a lead
-- -----------------------------------------------------------------------------

--- A plausible address: one @, no spaces, a dot in a domain of sane shape.
-- (The server decides deliverability; this only keeps malformed rows from
-- being sent.)
-- Positions instead of captured parts: it runs on every imported row, and
-- the captures, slices and patterns of the plain way cost 2.9 µs a call.
-- The rules: one @ with something on both sides, no white space, a local
-- part of at most 64 bytes; no "." at either end of either part and no
-- ".." at all; a domain that does not start with "-", has a dot, and ends
-- in a label of two bytes or more.
function M.is_email(s)
  if type(s) ~= "string" then return false end
  local n = #s
  if n > 320 then return false end
  local at = find(s, "@", 1, true)
  if not at or at == 1 or at == n or at > 65 or find(s, "@", at + 1, true) then return false end
  if find(s, "%s") or find(s, "..", 1, true) then return false end
  local b1, bl, d1, dl = byte(s, 1), byte(s, at - 1), byte(s, at + 1), byte(s, n)
  if b1 == 46 or bl == 46 or d1 == 46 or d1 == 45 or dl == 46 then return false end
  for i = n - 1, at + 2, -1 do -- the last dot (not the domain's first byte: checked above)
    if byte(s, i) == 46 then return n - i >= 2 end
  end
  return false
end

local function scalar_ok(v)
  local t = type(v)
  return t == "string" or t == "number" or t == "boolean" or v == null
end

local function integer_value(f, name, v)
  local n = v
  if type(v) == "string" then n = tonumber(v) end
  n = type(n) == "number" and tointeger(n) or nil
  if n == nil then return nil, fmt("%s must be an integer, got %q", name, tostring(v)) end
  if f.enum then
    for _, e in ipairs(f.enum) do if e == n then return n end end
    return nil, fmt("%s %d is not one of the allowed values", name, n)
  end
  return n
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
  if f.type == "integer" then return integer_value(f, name, v) end
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

--- A lead from a CSV record and its column plan.
-- @treturn table|nil lead, or nil and the reason
function M.lead_from_record(rec, plan, for_campaign)
  local lead, custom = {}, nil
  for i = 1, #rec do
    local p, v = plan[i], rec[i]
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

-- An entry of custom_variables wins over a top-level key of the same name.
local function add_custom(custom, name, v, wins)
  if not scalar_ok(v) then
    return nil, fmt("custom variable %q must be a string, number, boolean or null, got %s", name, type(v))
  end
  if wins or custom[name] == nil then custom[name] = v end
  return true
end

-- One key of a caller's lead table into `lead` or `custom`; nil, reason
-- when it cannot be.
local function put_key(lead, custom, k, v)
  if type(k) ~= "string" then return nil, "lead keys must be strings, got " .. type(k) end
  if k == "custom_variables" then
    if type(v) ~= "table" then return nil, "custom_variables must be a table" end
    for ck, cv in pairs(v) do
      if type(ck) ~= "string" then return nil, "custom variable names must be strings" end
      local ok, reason = add_custom(custom, ck, cv, true)
      if not ok then return nil, reason end
    end
    return true
  end
  local kind, name = M.column_meaning(k)
  if kind == "custom" then return add_custom(custom, name, v) end
  if kind == "field" then
    local val, reason = field_value(name, v)
    if reason then return nil, reason end
    if val ~= nil then lead[name] = val end
  end
  return true
end

--- A lead from a table given by the caller: keys go through the same
-- column meanings as CSV headers; unknown keys become custom variables.
-- @treturn table|nil lead, or nil and the reason
function M.lead_from_table(t, for_campaign)
  if type(t) ~= "table" then return nil, "a lead must be a table, got " .. type(t) end
  local lead, custom = {}, {}
  for k, v in pairs(t) do
    local ok, reason = put_key(lead, custom, k, v)
    if not ok then return nil, reason end
  end
  if next(custom) then lead.custom_variables = custom end
  return finish_lead(lead, for_campaign)
end

return M
