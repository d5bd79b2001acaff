--- Request validation driven by the catalog: path parameter formats, query
-- coercion (strings to the declared types), body types, required fields,
-- enums and the 1-100 page size. Messages follow the vendor's validator
-- ("body must have required property 'name'", "querystring/limit must be
-- <= 100") so each names the offending field.
-- @module instantly.mock.validate

local json = require "instantly.mock.json"
local util = require "instantly.mock.util"

local null, is_array, array = json.null, json.is_array, json.array
local mtype, tointeger, tonumber = math.type, math.tointeger, tonumber
local fmt = string.format

local M = {}

local function type_name(v)
  if v == null then return "null" end
  local t = type(v)
  if t == "table" then return is_array(v) and "array" or "object" end
  if t == "number" then return mtype(v) == "integer" and "integer" or "number" end
  return t
end
M.type_name = type_name

local function check_format(where, v, format)
  if type(v) ~= "string" then return true end
  if format == "uuid" and not util.is_uuid(v) then
    return nil, fmt('%s must match format "uuid"', where)
  elseif format == "email" and not util.is_email(v) then
    return nil, fmt('%s must match format "email"', where)
  elseif (format == "date-time" or format == "date") and not util.parse_time(v) then
    return nil, fmt('%s must match format "%s"', where, format)
  end
  return true
end

local function in_enum(v, enum)
  for _, e in ipairs(enum) do
    if e == v then return true end
  end
  return false
end

local function check_value(where, v, spec)
  if v == null then
    if spec.nullable then return true end
    return nil, where .. " must be " .. spec.type
  end
  local t = type_name(v)
  local want = spec.type
  local ok = t == want or (want == "number" and t == "integer")
    or (want == "integer" and t == "number" and v == math.floor(v) and v == v)
    or (want == "array" and t == "object" and next(v) == nil)
  if not ok then return nil, where .. " must be " .. want end
  if spec.enum and want ~= "array" and not in_enum(v, spec.enum) then
    return nil, where .. " must be equal to one of the allowed values"
  end
  if spec.min and v < spec.min then return nil, fmt("%s must be >= %s", where, spec.min) end
  if spec.max and v > spec.max then return nil, fmt("%s must be <= %s", where, spec.max) end
  if spec.format then
    local fok, err = check_format(where, v, spec.format)
    if not fok then return nil, err end
  end
  if want == "array" then
    for i, x in ipairs(v) do
      local w = fmt("%s/%d", where, i - 1)
      local it = spec.items
      if it then
        local xt = type_name(x)
        if not (xt == it or (it == "number" and xt == "integer")) then
          return nil, w .. " must be " .. it
        end
      end
      if spec.enum and not in_enum(x, spec.enum) then
        return nil, w .. " must be equal to one of the allowed values"
      end
    end
  end
  if want == "object" and spec.fields then
    local ok2, err = M.object(where, v, spec.fields)
    if not ok2 then return nil, err end
  end
  return true
end

--- Check an object against a field list (required, types, enums).
function M.object(where, obj, fields)
  for _, f in ipairs(fields) do
    local v = obj[f.name]
    if v == nil then
      if f.required then
        return nil, fmt("%s must have required property '%s'", where, f.name)
      end
    else
      local ok, err = check_value(where .. "/" .. f.name, v, f)
      if not ok then return nil, err end
    end
  end
  return true
end

local function coerce(where, s, spec)
  local t = spec.type
  if type(s) == "table" then
    if t ~= "array" then return nil, where .. " must be " .. t end
  end
  if t == "integer" then
    local n = s:match("^%-?%d+$") and tointeger(tonumber(s))
    if not n then return nil, where .. " must be integer" end
    return n
  elseif t == "number" then
    local n = tonumber(s)
    if not n then return nil, where .. " must be number" end
    return n
  elseif t == "boolean" then
    if s == "true" then return true elseif s == "false" then return false end
    return nil, where .. " must be boolean"
  elseif t == "array" then
    local list = type(s) == "table" and s or {}
    if type(s) == "string" then
      for part in s:gmatch("[^,]+") do list[#list + 1] = part end
    end
    local out = array({})
    for i, x in ipairs(list) do
      if spec.items == "integer" or spec.items == "number" then
        local n = tonumber(x)
        if not n or (spec.items == "integer" and not tointeger(n)) then
          return nil, fmt("%s/%d must be %s", where, i - 1, spec.items)
        end
        x = spec.items == "integer" and tointeger(n) or n
      end
      out[#out + 1] = x
    end
    return out
  end
  return s
end

--- Coerce and check the query string of `op`. Returns the typed table or
-- nil, message. Parameters the catalog does not know pass through as text.
function M.query(op, raw)
  local q = {}
  for k, v in pairs(raw) do q[k] = v end
  for _, p in ipairs(op.query or {}) do
    local s = raw[p.name]
    local where = "querystring/" .. p.name
    if s == nil or s == "" then
      if p.required then
        return nil, fmt("querystring must have required property '%s'", p.name)
      end
      q[p.name] = nil
    else
      local v, err = coerce(where, s, p)
      if v == nil then return nil, err end
      local ok
      ok, err = check_value(where, v, p)
      if not ok then return nil, err end
      q[p.name] = v
    end
  end
  return q
end

function M.params(op, params)
  for _, p in ipairs(op.path_params or {}) do
    local v = params[p.name]
    if p.format then
      local ok, err = check_format("params/" .. p.name, v, p.format)
      if not ok then return nil, err end
    end
  end
  return true
end

--- Check a decoded JSON body against `op.body`.
function M.body(op, body)
  local spec = op.body
  if not spec then return true end
  if body == nil then
    for _, f in ipairs(spec.fields) do
      if f.required then return nil, "body must be object" end
    end
    return true
  end
  if type_name(body) ~= "object" then return nil, "body must be object" end
  return M.object("body", body, spec.fields)
end

return M
