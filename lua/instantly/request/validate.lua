--- The one validator: every parameter and request body the catalog
-- describes is checked here, by the SDK before a request leaves and by the
-- mock server when one arrives (`instantly.mock.validate` is an adapter
-- that only turns query strings into typed values and words the messages
-- the way the vendor's server does), so the two cannot disagree.
--
-- What a schema node (a catalog parameter or field) may say:
--
-- * `type`: string, integer, number, boolean, object, array, or scalar
--   (a string, number or boolean);
-- * `nullable`: JSON null (`instantly.null`) is allowed;
-- * `enum`: the allowed values (on an array: of its elements);
-- * `min` / `max`: bounds of a number;
-- * `format`: uuid, email, date (YYYY-MM-DD), date-time (ISO 8601), uri,
--   hh:mm (a 24-hour time of day);
-- * `fields`: an object's fields, each a node with `required`; keys the
--   catalog does not list are let through below the top level (the
--   sources are not exhaustive there);
-- * `items` (element type) and `fields` (the fields of object elements)
--   on arrays;
-- * `keys` / `values`: the nodes every key / value of a map-like object
--   must satisfy (schedule days: keys "0"-"6", boolean values);
-- * `one_of`: other shapes the value may take instead (a tag filter is an
--   object or one filter string); the value passes if it fits any.
--
-- `compile(op)` prepares one operation once per process; `route(c, args,
-- mode)` checks one call's arguments and splits them into the query
-- string and the body. A problem names the full path of the bad value:
-- `campaign_schedule.schedules[1].timezone: "Mars/Olympus" is not one of
-- ...`. Modes: "strict" (the first problem is returned as the error),
-- "warn" (every problem is returned as a warning and the arguments are
-- sent as given), "off" (nothing is checked; unknown parameters go to the
-- body when the operation has one, else to the query). Each value is
-- first put to a test compiled from its node into C ("Compiled tests"
-- below), which lets a valid value through as it is; only what it does not
-- accept is walked here in Lua, so the answers are the walker's.
-- @module instantly.request.validate

local core = require "instantly.core"

local pairs, ipairs, type, tostring, next = pairs, ipairs, type, tostring, next
local mtype, tointeger, huge = math.type, math.tointeger, math.huge
local getmetatable, setmetatable = getmetatable, setmetatable
local concat, sort = table.concat, table.sort
local format, gsub, byte, tonumber = string.format, string.gsub, string.byte, tonumber

local null = core.null
local array_mt = core.array_mt
local shape_new, shape_test, shape_encode = core.shape_new, core.shape_test, core.shape_encode

local M = {}

-- Problems found in one call are capped: past this many, the rest add
-- nothing a person can act on.
local MAX_PROBLEMS = 20

local function describe(v)
  if v == null then return "null" end
  local t = type(v)
  if t == "number" then return mtype(v) == "integer" and "integer" or "number" end
  if t == "table" then
    if getmetatable(v) == array_mt or (v[1] ~= nil) then return "array" end
    return next(v) == nil and "empty table" or "table"
  end
  return t
end
M.describe = describe

local function show(v)
  if type(v) == "string" then return format("%q", v) end
  if v == null then return "null" end
  return tostring(v)
end

local function is_sequence(t)
  local n = #t
  for k in pairs(t) do
    if mtype(k) ~= "integer" or k < 1 or k > n then return false end
  end
  return true
end

-- Formats --------------------------------------------------------------------

local DAYS_IN = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

local function valid_date(y, m, d)
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  if m < 1 or m > 12 or d < 1 or d > DAYS_IN[m] then return false end
  if m == 2 and d == 29 and not (y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)) then return false end
  return true
end

local FORMATS = {
  uuid = function(s)
    return #s == 36 and s:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") ~= nil
  end,
  email = function(s)
    return #s <= 254 and s:match("^[^%s@]+@[^%s@]+%.[^%s@.]+$") ~= nil and not s:find("..", 1, true)
  end,
  date = function(s)
    local y, m, d = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
    return y ~= nil and valid_date(y, m, d)
  end,
  ["date-time"] = function(s)
    local y, m, d, rest = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
    if not y or not valid_date(y, m, d) then return false end
    if rest == "" then return true end
    local hh, mi, tail = rest:match("^[Tt ](%d%d):(%d%d)(.*)$")
    if not hh or tonumber(hh) > 23 or tonumber(mi) > 59 then return false end
    tail = tail:gsub("^:[0-5]%d", "", 1):gsub("^:60", "", 1):gsub("^%.%d+", "", 1)
    return tail == "" or tail == "Z" or tail == "z" or tail:match("^[+-][01]%d:?[0-5]%d$") ~= nil
  end,
  uri = function(s)
    return s:match("^%a[%w+.-]*://[^%s/?#]+[^%s]*$") ~= nil
  end,
  ["hh:mm"] = function(s)
    local h, m = s:match("^(%d%d):(%d%d)$")
    return h ~= nil and tonumber(h) <= 23 and tonumber(m) <= 59
  end,
}

local FORMAT_TEXT = {
  uuid = "a uuid",
  email = "an email address",
  date = "a date (YYYY-MM-DD)",
  ["date-time"] = "a date-time (ISO 8601, e.g. 2026-01-31T09:00:00Z)",
  uri = "a URI (scheme://host/...)",
  ["hh:mm"] = "a time of day (HH:MM, 24-hour)",
}

--- Does string `s` match catalog format `name`? Unknown formats match.
-- @tparam string name
-- @tparam string s
-- @treturn boolean
function M.format_ok(name, s)
  local f = FORMATS[name]
  return f == nil or f(s)
end

-- Paths and messages ---------------------------------------------------------

local IDENT = "^[%a_][%w_]*$"

--- The path of a problem as the SDK writes it: `a.b[1].c`, `days["7"]`.
-- @tparam table segs names (strings) and 1-based indexes (integers)
-- @treturn string
function M.path_text(segs)
  local out = {}
  for i, s in ipairs(segs) do
    if mtype(s) == "integer" then
      out[#out + 1] = "[" .. s .. "]"
    elseif i == 1 then
      out[#out + 1] = s
    elseif s:match(IDENT) then
      out[#out + 1] = "." .. s
    else
      out[#out + 1] = "[" .. format("%q", s) .. "]"
    end
  end
  return concat(out)
end

local function enum_text(enum)
  local shown = {}
  local n = #enum
  local cut = n > 12 and 6 or n
  for i = 1, cut do shown[i] = show(enum[i]) end
  local s = concat(shown, ", ")
  if cut < n then s = s .. ", ... (" .. n .. " values)" end
  return s
end

--- The SDK's message for a problem (without the operation label).
-- @tparam table p problem `{segs, kind, value, node, key}`
-- @treturn string
function M.message(p)
  local where = M.path_text(p.segs)
  local k, node, v = p.kind, p.node, p.value
  local what
  if k == "required" then
    if #p.segs == 0 then return "missing required parameter '" .. p.key .. "'" end
    what = "missing required field '" .. p.key .. "'"
  elseif k == "type" then
    local t = node.type
    local want = (t == "array" and "an array (a sequence table)") or (t == "object" and
      "an object (a table with string keys)") or (t == "integer" and "an integer") or
      (t == "number" and "a finite number") or (t == "scalar" and "a string, number or boolean") or ("a " .. t)
    what = "must be " .. want .. ", got " .. describe(v)
  elseif k == "null" then
    what = "cannot be null"
  elseif k == "enum" then
    what = show(v) .. " is not one of " .. enum_text(node.enum)
  elseif k == "key" then
    what = "key " .. show(p.key) .. " is not one of " .. enum_text(node.keys.enum)
  elseif k == "min" then
    what = "must be at least " .. tostring(node.min) .. ", got " .. show(v)
  elseif k == "max" then
    what = "must be at most " .. tostring(node.max) .. ", got " .. show(v)
  elseif k == "format" then
    what = show(v) .. " is not " .. (FORMAT_TEXT[node.format] or node.format)
  else
    what = k
  end
  if where == "" then return what end
  return where .. ": " .. what
end

-- Checking values ------------------------------------------------------------

local function push(ctx, segs, kind, value, node, key)
  local probs = ctx.problems
  if #probs >= MAX_PROBLEMS then return end
  local copy = {}
  for i = 1, #segs do copy[i] = segs[i] end
  probs[#probs + 1] = { segs = copy, kind = kind, value = value, node = node, key = key }
end

local check

-- Scalars, without touching a path: returns the value to send (integral
-- floats become integers) and the kind of the first problem, or nil. The
-- converted flag is true when the value sent differs from the one given.
local function scalar(node, v)
  local t = node.type
  local converted = false
  if t == "string" then
    if type(v) ~= "string" then return v, "type" end
    local f = node.format
    if f and not M.format_ok(f, v) then return v, "format" end
  elseif t == "integer" then
    if mtype(v) ~= "integer" then
      local i = type(v) == "number" and tointeger(v)
      if not i then return v, "type" end
      v, converted = i, true
    end
  elseif t == "number" then
    if type(v) ~= "number" or v ~= v or v == huge or v == -huge then return v, "type" end
  elseif t == "boolean" then
    if type(v) ~= "boolean" then return v, "type" end
  elseif t == "scalar" then
    local tv = type(v)
    if tv ~= "string" and tv ~= "boolean" and (tv ~= "number" or v ~= v or v == huge or v == -huge) then
      return v, "type"
    end
  end
  local enum = node.enum_set
  if enum and not enum[v] then return v, "enum" end
  if node.min and v < node.min then return v, "min", converted end
  if node.max and v > node.max then return v, "max", converted end
  return v, nil, converted
end

local function check_scalar(ctx, node, v, segs)
  local r, bad = scalar(node, v)
  if bad then push(ctx, segs, bad, v, node) end
  return r
end

-- Values are copied only where something changes (an integral float sent
-- as an integer, an empty array marked as one): a valid body is checked
-- in place and sent as it is, so checking costs no allocation per field.
-- `copy_of` makes the copy the first time a field of `v` changes.
-- 1.0 == 1 in Lua: an integral float turned integer is a change too.
local function changed(r, v)
  return r ~= v or mtype(r) ~= mtype(v)
end

local function copy_of(v, out)
  if out then return out end
  out = {}
  for k, x in pairs(v) do out[k] = x end
  return out
end

-- One member `k` (value `fv`, node `fp`) of an object or map at path
-- depth `depth`: the value to send and whether it differs from `fv`. A
-- plain scalar (the common case) is checked without building a path
-- unless there is a problem.
local function check_member(ctx, fp, k, fv, segs, depth)
  if fp.scalar and fv ~= null then
    local r, bad, converted = scalar(fp, fv)
    if bad then
      segs[depth] = k
      push(ctx, segs, bad, fv, fp)
      segs[depth] = nil
    end
    return r, converted
  end
  segs[depth] = k
  local r = check(ctx, fp, fv, segs)
  segs[depth] = nil
  return r, changed(r, fv)
end

local function check_fields(ctx, node, v, segs)
  local fields = node.field_map
  local out
  local depth = #segs + 1
  for k, fv in pairs(v) do
    local fp = fields[k]
    if fp then
      local r, differs = check_member(ctx, fp, k, fv, segs, depth)
      if differs then
        out = copy_of(v, out)
        out[k] = r
      end
    end
  end
  local req = node.required
  for i = 1, #req do
    local name = req[i]
    if v[name] == nil then push(ctx, segs, "required", nil, node, name) end
  end
  return out or v
end

local function check_map(ctx, node, v, segs)
  local kn, vn = node.keys, node.values
  local out
  local depth = #segs + 1
  for k, fv in pairs(v) do
    if kn and kn.enum_set and not kn.enum_set[k] then
      push(ctx, segs, "key", nil, node, k)
    elseif vn then
      local r, differs = check_member(ctx, vn, k, fv, segs, depth)
      if differs then
        out = copy_of(v, out)
        out[k] = r
      end
    end
  end
  return out or v
end

-- Returns the value to send: the caller's own table when nothing needs
-- converting, else a copy (the caller's table is never changed). An
-- empty array is sent marked, so it encodes as [].
local check_node
local shape_of

function check(ctx, node, v, segs)
  -- the compiled test settles the usual case (valid, nothing to convert);
  -- anything it does not accept is walked below, which finds the problems
  if not ctx.walk_only and shape_test(node.shape or shape_of(node), v) then return v end
  local alts = node.alts
  if alts and v ~= null then
    -- the value may take any of the shapes: problems are those of the main
    -- shape only when no alternative fits
    local trial = { problems = {}, walk_only = ctx.walk_only }
    local out = check_node(trial, node, v, segs)
    if #trial.problems == 0 then return out end
    for i = 1, #alts do
      local t2 = { problems = {}, walk_only = ctx.walk_only }
      local o2 = check_node(t2, alts[i], v, segs)
      if #t2.problems == 0 then return o2 end
    end
    for _, p in ipairs(trial.problems) do
      if #ctx.problems < MAX_PROBLEMS then ctx.problems[#ctx.problems + 1] = p end
    end
    return out
  end
  return check_node(ctx, node, v, segs)
end

function check_node(ctx, node, v, segs)
  if v == null then
    if not node.nullable then push(ctx, segs, "null", v, node) end
    return v
  end
  local t = node.type
  if t == "array" then
    if type(v) ~= "table" or not is_sequence(v) then push(ctx, segs, "type", v, node) return v end
    local n = #v
    if n == 0 then
      return getmetatable(v) == array_mt and v or setmetatable({}, array_mt)
    end
    local item = node.item
    if not item then return v end
    local out
    local depth = #segs + 1
    local plain = item.scalar
    for i = 1, n do
      local x = v[i]
      segs[depth] = i
      local r, differs
      if plain and x ~= null then
        local bad
        r, bad, differs = scalar(item, x)
        if bad then push(ctx, segs, bad, x, item) end
      else
        r = check(ctx, item, x, segs)
        differs = changed(r, x)
      end
      if differs then
        if not out then
          out = setmetatable({}, array_mt)
          for j = 1, n do out[j] = v[j] end
        end
        out[i] = r
      end
    end
    segs[depth] = nil
    return out or v
  elseif t == "object" then
    if type(v) ~= "table" or getmetatable(v) == array_mt or (v[1] ~= nil and is_sequence(v)) then
      push(ctx, segs, "type", v, node)
      return v
    end
    if node.field_map then return check_fields(ctx, node, v, segs) end
    if node.keys or node.values then return check_map(ctx, node, v, segs) end
    return v
  end
  return check_scalar(ctx, node, v, segs)
end

local function known_list(params)
  local known = {}
  for name in pairs(params) do known[#known + 1] = name end
  sort(known)
  return known
end

-- Compiled tests -------------------------------------------------------------
--
-- Walking the schema in Lua for every value costs about 5 µs per lead of a
-- 1000-lead body, more than encoding it. So each node is also flattened,
-- the first time it checks a value, into a program for instantly.core's
-- shape test (csrc/shape.c), which answers one question in C: "is this
-- value valid, with nothing to convert?" (then it is sent as it is). It
-- never words a problem. When it says no (a problem, an integral float,
-- an unmarked empty array, a table with a metatable, a sequence whose keys
-- do not come in order), the walker above checks that value and reports
-- exactly what it always did. So the test may say no too often (slower,
-- never different) but must never say yes to a value the walker would
-- refuse or convert; spec/validate_compiled_spec.lua holds it to that for
-- every operation of the catalog. A value that fits an alternative shape
-- (`one_of`) is left to the walker.

-- The program's layout, shared with csrc/shape.c: one record per node.
local K = { never = 0, string = 1, integer = 2, number = 3, boolean = 4, scalar = 5, array = 6, object = 7,
            map = 8, any_object = 9 }
local HEAD = 10 -- kind, nullable, enum, format, min, max, child, keys, nfields, nrequired
local REF_ARRAY_MT, REF_NULL = 1, 2
-- the formats csrc/shape.h checks itself, the same way as FORMATS
local FORMAT_ID = { uuid = 1, email = 2, date = 3, ["date-time"] = 4, uri = 5, ["hh:mm"] = 6 }

local function ref(prog, value)
  local i = prog.index[value]
  if not i then
    i = #prog.refs + 1
    prog.refs[i] = value
    prog.index[value] = i
  end
  return i
end

local function kind_of(node)
  local t = node.type
  if t == "array" then return K.array end
  if t == "object" then
    if node.field_map then return K.object end
    if node.keys or node.values then return K.map end
    return K.any_object
  end
  local k = K[t]
  if not k or t == "never" or t == "map" or t == "any_object" then return K.never end
  -- bounds only on numbers, and never NaN (the walker would raise on a
  -- string against a bound: the walker decides)
  if (node.min or node.max) and t ~= "integer" and t ~= "number" then return K.never end
  if node.min ~= node.min or node.max ~= node.max then return K.never end
  -- a format C does not know: any string when the walker does not know it
  -- either, else always the walker's
  if node.format and not FORMAT_ID[node.format] then return FORMATS[node.format] and K.never or K.string end
  return k
end

-- Appends the record of `node` (and then its children) to prog.code;
-- returns its 0-based offset.
local function flatten(prog, node)
  local code = prog.code
  local at = #code
  local kind = kind_of(node)
  local names = {}
  if kind == K.object then names = node.field_names or known_list(node.field_map) end
  local req = kind == K.object and node.required or {}
  local rec = {
    kind, node.nullable and 1 or 0,
    kind ~= K.array and node.enum_set and ref(prog, node.enum_set) or 0,
    kind == K.string and node.format and FORMAT_ID[node.format] or 0,
    node.min and ref(prog, node.min) or 0, node.max and ref(prog, node.max) or 0,
    -1, kind == K.map and node.keys and node.keys.enum_set and ref(prog, node.keys.enum_set) or 0,
    #names, #req,
  }
  for i = 1, HEAD do code[at + i] = rec[i] end
  for i, name in ipairs(names) do
    code[at + HEAD + 2 * i - 1] = ref(prog, name)
    code[at + HEAD + 2 * i] = -1
  end
  for i, name in ipairs(req) do code[at + HEAD + 2 * #names + i] = ref(prog, name) end
  if kind == K.array and node.item then
    code[at + 7] = flatten(prog, node.item)
  elseif kind == K.map and node.values then
    code[at + 7] = flatten(prog, node.values)
  end
  for i, name in ipairs(names) do code[at + HEAD + 2 * i] = flatten(prog, node.field_map[name]) end
  return at
end

--- A node's program for the shape test, for reading and for the specs
-- (`check` builds and keeps its own).
-- @tparam table node from `prepare`
-- @treturn table code (integers; see csrc/shape.c)
-- @treturn table refs (the values the code refers to)
function M.program(node)
  local prog = { code = {}, refs = { array_mt, null }, index = {} }
  prog.index[array_mt], prog.index[null] = REF_ARRAY_MT, REF_NULL
  flatten(prog, node)
  return prog.code, prog.refs
end

shape_of = function(node)
  local shape = shape_new(M.program(node))
  node.shape = shape
  return shape
end

--- The compiled test of a node: true when `v` is valid and would be sent
-- as it is. (`check` uses it; the specs hold it to the walker.)
-- @tparam table node from `prepare`
-- @treturn function
function M.accepts(node)
  local shape = node.shape or shape_of(node)
  return function(v) return shape_test(shape, v) end
end

local function prepare(p)
  local q = {
    name = p.name, type = p.type, nullable = p.nullable, enum = p.enum, format = p.format,
    min = p.min, max = p.max, required = {}, description = p.description,
  }
  if p.type == "array" then
    q.enum = nil
    if p.fields then
      q.item = prepare({ name = p.name, type = "object", fields = p.fields })
    elseif p.items and p.items ~= "object" and p.items ~= "array" then
      q.item = prepare({ name = p.name, type = p.items, enum = p.enum, format = p.item_format })
    end
  elseif p.enum then
    q.enum_set = {}
    for _, e in ipairs(p.enum) do q.enum_set[e] = true end
  end
  if p.type == "object" then
    if p.fields then
      q.field_map, q.field_names = {}, {}
      for i, f in ipairs(p.fields) do
        q.field_map[f.name] = prepare(f)
        q.field_names[i] = f.name
        if f.required then q.required[#q.required + 1] = f.name end
      end
    end
    if p.keys then q.keys = prepare(p.keys) end
    if p.values then q.values = prepare(p.values) end
  end
  if p.one_of then
    q.alts = {}
    for i, alt in ipairs(p.one_of) do q.alts[i] = prepare(alt) end
  end
  -- a plain scalar: checked directly, without the dispatch of `check`
  q.scalar = q.type ~= "array" and q.type ~= "object" and q.alts == nil or nil
  return q
end
M.prepare = prepare

--- Check one value against a prepared node.
-- @tparam table node from `prepare` (or `compile(op).params[name]`)
-- @param v the value
-- @tparam[opt] table segs the path of `v` (names and 1-based indexes)
-- @return the value to send (copied and converted where needed)
-- @treturn table problems (empty when the value is valid)
function M.check(node, v, segs)
  local ctx = { problems = {} }
  local out = check(ctx, node, v, segs or {})
  return out, ctx.problems
end

--- `check` by the walker alone, without the compiled tests: the same
-- answer, slower (the specs compare the two).
-- @tparam table node from `prepare`
-- @param v the value
-- @tparam[opt] table segs the path of `v`
-- @return the value to send
-- @treturn table problems
function M.walk(node, v, segs)
  local ctx = { problems = {}, walk_only = true }
  local out = check(ctx, node, v, segs or {})
  return out, ctx.problems
end

--- Check an object against a list of prepared fields (a request body).
-- @tparam table fields name -> prepared node
-- @tparam table required names
-- @tparam table v the object
-- @treturn table problems
local object_nodes = setmetatable({}, { __mode = "k" })

function M.check_object(fields, required, v)
  -- one node (and one compiled test) per field table, not per call
  local node = object_nodes[fields]
  if not node or node.required ~= required then
    node = { type = "object", field_map = fields, required = required }
    object_nodes[fields] = node
  end
  local _, probs = M.check(node, v, {})
  return probs
end

-- Query strings --------------------------------------------------------------

local function encode_component(s)
  if not s:find("[^%w%-%._~]") then return s end
  return (gsub(s, "[^%w%-%._~]", function(c) return format("%%%02X", byte(c)) end))
end
M.escape = encode_component

local function query_value(v)
  if v == true then return "true" elseif v == false then return "false" end
  if v == null then return "" end
  if mtype(v) == "float" then return format("%.17g", v) end
  return tostring(v)
end

--- Append `name=value` pairs for a query parameter (arrays repeat the name).
-- @tparam table buf output pieces
-- @tparam string name
-- @param v checked value
function M.add_query(buf, name, v)
  local key = encode_component(name)
  if type(v) == "table" then
    for i = 1, #v do buf[#buf + 1] = key .. "=" .. encode_component(query_value(v[i])) end
  else
    buf[#buf + 1] = key .. "=" .. encode_component(query_value(v))
  end
end

--- Encode a free-form query table (escape hatch): keys sorted, arrays repeated.
-- @tparam table t
-- @treturn string
function M.encode_query(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = tostring(k) end
  sort(keys)
  local buf = {}
  for _, k in ipairs(keys) do M.add_query(buf, k, t[k]) end
  return concat(buf, "&")
end

-- Operations -----------------------------------------------------------------

local cache = setmetatable({}, { __mode = "k" })

--- Compile the checker of one operation (cached per operation table).
-- The result has `params` (name -> prepared node with `where` = "query"
-- or "body"), `query_order` (query parameter names in catalog order),
-- `required` (names), `has_body`, `path_params` and `body_fields` /
-- `body_required` (the body as an object node's parts).
-- @tparam table op an operation from `instantly.entities.<name>`
-- @treturn table compiled checker
function M.compile(op)
  local c = cache[op]
  if c then return c end
  c = { params = {}, query_order = {}, required = {}, has_body = op.body ~= nil, path_params = {},
        body_fields = {}, body_required = {}, query_fields = {}, query_required = {} }
  for _, p in ipairs(op.path_params or {}) do c.path_params[#c.path_params + 1] = p.name end
  for _, p in ipairs(op.query or {}) do
    local q = prepare(p)
    q.where = "query"
    c.params[p.name] = q
    c.query_fields[p.name] = q
    c.query_order[#c.query_order + 1] = p.name
    if p.required then
      c.required[#c.required + 1] = p.name
      c.query_required[#c.query_required + 1] = p.name
    end
  end
  if op.body then
    local names = {}
    for _, p in ipairs(op.body.fields or {}) do
      if c.params[p.name] then
        error("catalog: " .. op.id .. " declares '" .. p.name .. "' in both query and body")
      end
      local q = prepare(p)
      q.where = "body"
      c.params[p.name] = q
      c.body_fields[p.name] = q
      names[#names + 1] = p.name
      if p.required then
        c.required[#c.required + 1] = p.name
        c.body_required[#c.body_required + 1] = p.name
      end
    end
    -- the body as one object node, for checking while encoding (`route`);
    -- route itself sees to unknown and missing parameters
    c.body_node = { type = "object", field_map = c.body_fields, field_names = names, required = {} }
  end
  cache[op] = c
  return c
end

local MODES = { strict = true, warn = true, off = true }
M.MODES = MODES

local function query_string(c, qvals)
  local buf = {}
  local order = c.query_order
  for i = 1, #order do
    local v = qvals[order[i]]
    if v ~= nil then
      M.add_query(buf, order[i], v)
      qvals[order[i]] = nil
    end
  end
  -- Unknown parameters (warn/off) follow in name order.
  local rest = {}
  for k in pairs(qvals) do rest[#rest + 1] = k end
  sort(rest)
  for _, k in ipairs(rest) do M.add_query(buf, k, qvals[k]) end
  return concat(buf, "&")
end

-- The usual call, in one pass: every parameter known, each query value
-- taken by its compiled test, none required missing; then the body is
-- checked against its compiled test while it is encoded (core.shape_encode:
-- the same walk writes the JSON). Returns the query, the body and its
-- text; nil when anything needs more than that (the full route below then
-- runs from the start, and answers as it always did).
local function route_fused(c, args)
  local params = c.params
  local body, qvals = {}, nil
  for k, v in pairs(args) do
    local p = params[k]
    if not p then return nil end
    if p.where == "body" then
      body[k] = v
    else
      if not shape_test(p.shape or shape_of(p), v) then return nil end
      qvals = qvals or {}
      qvals[k] = v
    end
  end
  local req = c.required
  for i = 1, #req do
    if args[req[i]] == nil then return nil end
  end
  local node = c.body_node
  local text = shape_encode(node.shape or shape_of(node), body)
  if not text then return nil end
  local query
  if qvals then query = query_string(c, qvals) end
  return query, body, text
end

--- Check and route one call's arguments.
-- @tparam table c compiled checker
-- @tparam table|nil args the caller's parameter table
-- @tparam[opt] string mode "strict" (default), "warn" or "off"
-- @treturn string|nil query string (without "?"), or nil when empty
-- @treturn table|nil body table (only when the operation has a body)
-- @treturn string|nil on misuse: the message (the two values above are nil)
-- @treturn table|nil under "warn": the messages of the problems found
-- @treturn string|nil the body already encoded (`instantly.core.json_encode`
-- of the body returned), when it was checked while being encoded
function M.route(c, args, mode)
  mode = mode or "strict"
  if mode ~= "off" and c.body_node and type(args) == "table" and getmetatable(args) ~= array_mt then
    local query, body, text = route_fused(c, args)
    if text then return query, body, nil, nil, text end
  end
  local body = c.has_body and {} or nil
  local qvals
  local warnings
  local params = c.params
  if args ~= nil then
    if type(args) ~= "table" or getmetatable(args) == array_mt then
      return nil, nil, "parameters must be a table, got " .. describe(args)
    end
    local ctx = { problems = {} }
    local segs = {}
    for k, v in pairs(args) do
      local p = params[k]
      if type(k) ~= "string" then
        return nil, nil, "parameter keys must be strings, got " .. describe(k) .. " key " .. show(k)
      end
      local val = v
      if not p then
        if mode == "strict" then
          local known = known_list(params)
          return nil, nil, "unknown parameter '" .. k .. "'" ..
            (#known > 0 and " (known: " .. concat(known, ", ") .. ")" or " (this operation takes none)")
        elseif mode == "warn" then
          local known = known_list(params)
          warnings = warnings or {}
          warnings[#warnings + 1] = "unknown parameter '" .. k .. "' sent as given" ..
            (#known > 0 and " (known: " .. concat(known, ", ") .. ")" or " (this operation takes none)")
        end
        if body then body[k] = v else qvals = qvals or {}; qvals[k] = v end
      else
        if mode ~= "off" then
          local before = #ctx.problems
          segs[1] = k
          val = check(ctx, p, v, segs)
          segs[1] = nil
          if #ctx.problems > before then
            if mode == "strict" then return nil, nil, M.message(ctx.problems[before + 1]) end
            -- warn: the caller's value goes out as given
            val = v
          end
        end
        if p.where == "body" then
          body[k] = val
        else
          qvals = qvals or {}
          qvals[k] = val
        end
      end
    end
    if mode == "warn" and #ctx.problems > 0 then
      warnings = warnings or {}
      for _, pr in ipairs(ctx.problems) do warnings[#warnings + 1] = M.message(pr) end
    end
  end
  if mode ~= "off" then
    local req = c.required
    for i = 1, #req do
      local name = req[i]
      if args == nil or args[name] == nil then
        local msg = "missing required parameter '" .. name .. "'"
        if mode == "strict" then return nil, nil, msg end
        warnings = warnings or {}
        warnings[#warnings + 1] = msg
      end
    end
  end
  local query
  if qvals then query = query_string(c, qvals) end
  return query, body, nil, warnings
end

return M
