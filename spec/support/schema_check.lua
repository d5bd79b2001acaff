-- schema_check.lua - checks a value the mock returns against an entity's
-- schema from the catalog (instantly.entities.*): no undocumented fields,
-- types, enums, formats, null only where nullable, nested fields where the
-- catalog declares them. Returns a list of problems, each naming the path.
local json = require "instantly.mock.json"
local util = require "instantly.mock.util"

local null, is_array = json.null, json.is_array

local M = {}

local function type_ok(v, t)
  if t == "integer" then return math.type(v) == "integer" end
  if t == "number" then return type(v) == "number" end
  if t == "string" or t == "boolean" then return type(v) == t end
  if t == "array" then return is_array(v) or (type(v) == "table" and next(v) == nil) end
  if t == "object" then return type(v) == "table" and not is_array(v) end
  return true
end

local FORMATS = {
  uuid = util.is_uuid,
  ["date-time"] = function(s) return util.parse_time(s) ~= nil and #s > 10 end,
  date = function(s) return s:match("^%d%d%d%d%-%d%d%-%d%d$") ~= nil end,
  email = util.is_email,
}

-- Where the catalog's schema and the API's practice differ on purpose.
M.KNOWN = {
  -- account tag mappings name the account by its email (accounts have no id)
  ["Custom Tag Mapping.resource_id"] = "format",
}

local function member(list, v)
  for _, x in ipairs(list) do if x == v then return true end end
  return false
end

local check_fields

-- One value against one field description.
local function check_value(f, v, path, out)
  if v == null then
    if not f.nullable then out[#out + 1] = path .. " is null but not nullable" end
    return
  end
  if not type_ok(v, f.type) then
    out[#out + 1] = ("%s is %s, want %s"):format(path, math.type(v) or type(v), f.type)
    return
  end
  if f.enum and f.type == "array" then
    for i, x in ipairs(v) do
      if not member(f.enum, x) then
        out[#out + 1] = path .. "[" .. i .. "] = " .. tostring(x) .. " is outside its enum"
      end
    end
  elseif f.enum and not member(f.enum, v) then
    out[#out + 1] = path .. " = " .. tostring(v) .. " is outside its enum"
  end
  local fmt = f.format and FORMATS[f.format]
  if fmt and type(v) == "string" and not fmt(v) then
    out[#out + 1] = path .. " = " .. v .. " is not a " .. f.format
  end
  if f.type == "object" and type(f.fields) == "table" then check_fields(f.fields, v, path .. ".", out, true) end
  if f.type == "array" and type(f.items) == "table" then
    for i, x in ipairs(v) do check_value(f.items, x, path .. "[" .. i .. "]", out) end
  elseif f.type == "array" and type(f.items) == "string" then
    for i, x in ipairs(v) do check_value({ type = f.items }, x, path .. "[" .. i .. "]", out) end
  end
end

-- Every key documented, every documented key valid; a nullable field is
-- always present (null or a value), an optional one may be absent.
function check_fields(fields, obj, prefix, out, nested)
  local by = {}
  for _, f in ipairs(fields) do by[f.name] = f end
  for k in pairs(obj) do
    if not by[k] and not nested then out[#out + 1] = prefix .. k .. " is not in the schema" end
  end
  for _, f in ipairs(fields) do
    local v = obj[f.name]
    if v == nil then
      if f.nullable and not nested then out[#out + 1] = prefix .. f.name .. " (nullable) is missing" end
    else
      check_value(f, v, prefix .. f.name, out)
    end
  end
end

-- The entity's fields, with the known departures relaxed.
local function fields_of(e)
  local out = {}
  for i, f in ipairs(e.fields) do
    out[i] = f
    if M.KNOWN[e.name .. "." .. f.name] == "format" then
      out[i] = setmetatable({ format = false }, { __index = f })
    end
  end
  return out
end

--- Problems with obj as an instance of entity e (a list, empty when fine).
function M.check(e, obj, where)
  local out = {}
  check_fields(fields_of(e), obj, (where or e.name) .. ": ", out)
  return out
end

return M
