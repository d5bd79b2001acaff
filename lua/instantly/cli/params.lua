--- Command-line flags for catalog parameters.
-- Turns the parameter definitions of an operation (the entity data in
-- `instantly.entities.*`) into argparse arguments and options, and turns
-- the strings a user typed back into typed values: integers, numbers,
-- booleans, enums, arrays (repeated flags or comma lists) and JSON objects.
-- Nothing here knows a particular endpoint.
-- @module instantly.cli.params

local M = {}

local BOOL_WORDS = {
  ["true"] = true, yes = true, on = true, ["1"] = true,
  ["false"] = false, no = false, off = false, ["0"] = false,
}
M.BOOL_WORDS = BOOL_WORDS

--- Every flag parameter of an operation, path parameters excluded.
-- Query parameters come first, then body fields; each entry is the catalog
-- row plus `where` ("query" or "body").
function M.flags(op)
  local out, seen = {}, {}
  for _, where in ipairs({ "query", "body" }) do
    local list = where == "query" and op.query or (op.body and op.body.fields)
    for _, p in ipairs(list or {}) do
      if not seen[p.name] then
        seen[p.name] = true
        out[#out + 1] = setmetatable({ where = where }, { __index = p })
      end
    end
  end
  return out
end

--- The option name a parameter is given on the command line (`--name`).
function M.flag_name(p)
  return "--" .. p.name
end

--- The kebab-case alias accepted as well (`--campaign-id`), or nil.
function M.alias(p)
  local kebab = p.name:gsub("_", "-")
  if kebab ~= p.name then return "--" .. kebab end
  return nil
end

local function type_label(p)
  if p.type == "array" then
    return (p.items or "value") .. "[]"
  end
  return p.type
end
M.type_label = type_label

local function enum_text(enum)
  local t = {}
  for i, v in ipairs(enum) do t[i] = tostring(v) end
  return table.concat(t, "|")
end

--- One line of help for a parameter: its description, type and limits.
function M.describe(p)
  local bits = {}
  if p.description and p.description ~= "" then bits[#bits + 1] = p.description end
  local facts = { type_label(p) }
  if p.format then facts[#facts + 1] = p.format end
  if p.enum then facts[#facts + 1] = "one of " .. enum_text(p.enum) end
  if p.min or p.max then
    facts[#facts + 1] = string.format("%s..%s", p.min or "", p.max or "")
  end
  if p.nullable then facts[#facts + 1] = "null clears" end
  if p.required then facts[#facts + 1] = "required" end
  if p.items == "object" then
    facts[#facts + 1] = "repeat, or a JSON array or @file"
  elseif p.type == "array" then
    facts[#facts + 1] = "repeat or comma list"
  elseif p.type == "object" then
    facts[#facts + 1] = "JSON or @file"
  end
  if p.type == "boolean" then facts[#facts + 1] = "bare flag = true" end
  bits[#bits + 1] = "(" .. table.concat(facts, ", ") .. ")"
  return table.concat(bits, " ")
end

--- The argparse metavariable for a parameter.
function M.metavar(p)
  if p.type == "boolean" then return "true|false" end
  if p.enum and #p.enum <= 6 then return enum_text(p.enum) end
  if p.type == "object" or p.items == "object" then return "json" end
  if p.type == "array" then return p.items or "value" end
  if p.format then return p.format end
  return p.type
end

local function read_file(path, json)
  local f, err
  if path == "-" then
    f = io.stdin
  else
    f, err = io.open(path, "rb")
    if not f then return nil, err end
  end
  local text = f:read("a")
  if f ~= io.stdin then f:close() end
  if not text then return nil, "cannot read " .. path end
  return json.decode(text, path)
end

local function parse_json(text, json, what)
  if text:sub(1, 1) == "@" then
    return read_file(text:sub(2), json)
  end
  return json.decode(text, what)
end

local function in_enum(enum, v)
  for _, e in ipairs(enum) do
    if e == v or tostring(e) == tostring(v) then return e end
  end
  return nil
end

-- Convert one scalar word to the type named by `ty`; enum is checked by the
-- caller. Returns value or nil, reason.
local function scalar(ty, word, json, what)
  if ty == "integer" then
    local n = math.tointeger(tonumber(word))
    if n == nil then return nil, "expected an integer, got '" .. word .. "'" end
    return n
  elseif ty == "number" then
    local n = tonumber(word)
    if n == nil or n ~= n then return nil, "expected a number, got '" .. word .. "'" end
    return n
  elseif ty == "boolean" then
    local b = BOOL_WORDS[word:lower()]
    if b == nil then return nil, "expected true or false, got '" .. word .. "'" end
    return b
  elseif ty == "object" then
    local v, err = parse_json(word, json, what)
    if v == nil then return nil, "expected a JSON object: " .. tostring(err) end
    if type(v) ~= "table" or json.is_array(v) then return nil, "expected a JSON object" end
    return v
  end
  return word
end

local function check_scalar(p, v)
  if p.enum and p.type ~= "array" then
    local e = in_enum(p.enum, v)
    if e == nil then return nil, "must be one of " .. enum_text(p.enum) end
    return e
  end
  if type(v) == "number" then
    if p.min and v < p.min then return nil, "must be at least " .. p.min end
    if p.max and v > p.max then return nil, "must be at most " .. p.max end
  end
  return v
end

-- Enum names: "Running Subsequences", "running_subsequences" and
-- "running-subsequences" are one name.
local function norm(s) return (s:lower():gsub("[%s_%-]+", "_")) end

-- The enum value a word names, when `labels` (value -> name) has it.
local function by_name(labels, word)
  if not labels or tonumber(word) then return nil end
  local w = norm(word)
  for v, name in pairs(labels) do
    if norm(name) == w then return tostring(v) end
  end
  return nil
end

local function names_text(labels, enum)
  if not labels then return "" end
  local t = {}
  for _, v in ipairs(enum) do
    if labels[v] then t[#t + 1] = norm(labels[v]) end
  end
  return #t > 0 and (" (or by name: " .. table.concat(t, ", ") .. ")") or ""
end

--- Convert the raw strings given for one parameter into its typed value.
-- `raw` is a string, or a list of strings for repeatable (array) flags.
-- `json` supplies `decode(text, what)`, `is_array(t)`, `array(t)` and
-- `null`. `labels` (optional) maps enum values to the names the catalog
-- gives them, so `--status active` means `--status 1`. Returns the value,
-- or nil and a message naming the flag.
function M.coerce(p, raw, json, labels)
  local flag = M.flag_name(p)
  local function fail(msg) return nil, flag .. ": " .. msg end
  if p.type ~= "array" then
    if type(raw) == "table" then raw = raw[#raw] end
    if p.nullable and raw == "null" then return json.null end
    if p.enum then raw = by_name(labels, raw) or raw end
    local v, err = scalar(p.type, raw, json, flag)
    if v == nil then return fail(err .. (p.enum and names_text(labels, p.enum) or "")) end
    local ok, cerr = check_scalar(p, v)
    if ok == nil then return fail(cerr .. (p.enum and names_text(labels, p.enum) or "")) end
    return ok
  end
  if type(raw) ~= "table" then raw = { raw } end
  local items_type = p.items or "string"
  local out = {}
  for _, word in ipairs(raw) do
    local first = word:match("^%s*(.)")
    if first == "[" or (items_type == "object" and (first == "{" or first == "@")) then
      local v, err = parse_json(word, json, flag)
      if v == nil then return fail("bad JSON: " .. tostring(err)) end
      if type(v) == "table" and json.is_array(v) then
        for _, e in ipairs(v) do out[#out + 1] = e end
      else
        out[#out + 1] = v
      end
    elseif items_type == "object" then
      return fail("expected a JSON object or array, got '" .. word .. "'")
    else
      for piece in (word .. ","):gmatch("(.-),") do
        piece = piece:match("^%s*(.-)%s*$")
        if piece ~= "" then
          if p.enum then piece = by_name(labels, piece) or piece end
          local v, err = scalar(items_type, piece, json, flag)
          if v == nil then return fail(err) end
          out[#out + 1] = v
        end
      end
    end
  end
  for i, v in ipairs(out) do
    if items_type ~= "object" and type(v) == "table" then
      return fail("element " .. i .. " should be a " .. items_type)
    end
    if p.enum then
      local e = in_enum(p.enum, v)
      if e == nil then
        return fail("'" .. tostring(v) .. "' is not one of " .. enum_text(p.enum) .. names_text(labels, p.enum))
      end
      out[i] = e
    end
  end
  return json.array(out)
end

--- Join `--flag -5` into `--flag=-5` for flags that take a value, so a
-- negative number is a value and not an unknown option. `takes_value(word)`
-- says whether an option takes one.
function M.join_negative(argv, takes_value)
  local out, i = {}, 1
  while i <= #argv do
    local a, nxt = argv[i], argv[i + 1]
    if a == "--" then
      for j = i, #argv do out[#out + 1] = argv[j] end
      break
    end
    if nxt and a:match("^%-%-[^=]+$") and nxt:match("^%-%.?%d") and takes_value(a) then
      out[#out + 1] = a .. "=" .. nxt
      i = i + 2
    else
      out[#out + 1] = a
      i = i + 1
    end
  end
  return out
end

--- Rewrite boolean flags so argparse sees one value each.
-- `--flag` alone becomes `--flag=true` and `--no-flag` becomes
-- `--flag=false`, so a bare boolean never swallows the next word.
-- `bools` maps every accepted spelling (`--in_campaign`, `--in-campaign`)
-- to true.
function M.normalize_bools(argv, bools)
  local out, i = {}, 1
  while i <= #argv do
    local a = argv[i]
    if a == "--" then
      for j = i, #argv do out[#out + 1] = argv[j] end
      break
    end
    local neg = a:match("^%-%-no%-(.+)$")
    if neg and (bools["--" .. neg]) then
      out[#out + 1] = "--" .. neg .. "=false"
    elseif bools[a] then
      local nxt = argv[i + 1]
      if nxt ~= nil and BOOL_WORDS[nxt:lower()] ~= nil then
        out[#out + 1] = a .. "=" .. nxt
        i = i + 1
      else
        out[#out + 1] = a .. "=true"
      end
    else
      out[#out + 1] = a
    end
    i = i + 1
  end
  return out
end

return M
