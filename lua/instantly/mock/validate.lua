--- The mock's side of request validation: a thin adapter over
-- `instantly.request.validate`, the one validator the SDK also uses, so the mock
-- and the client accept exactly the same requests. What is left here is
-- what only a server does: turning query strings into typed values, and
-- wording the first problem the way the vendor's validator does
-- ("body must have required property 'name'", "querystring/limit must be
-- <= 100", "body/campaign_schedule/schedules/0/timezone must be equal to
-- one of the allowed values"), paths with 0-based indexes.
-- @module instantly.mock.validate

local json = require "instantly.mock.json"
local shared = require "instantly.request.validate"

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

-- "querystring" + {"a", 1, "b"} -> "querystring/a/0/b"
local function vendor_path(root, segs)
  local out = { root }
  for _, s in ipairs(segs) do
    out[#out + 1] = mtype(s) == "integer" and tostring(s - 1) or s
  end
  return table.concat(out, "/")
end

local function vendor_message(root, p)
  local where = vendor_path(root, p.segs)
  local k, node = p.kind, p.node
  if k == "required" then return fmt("%s must have required property '%s'", where, p.key) end
  if k == "type" or k == "null" then
    return where .. " must be " .. (node.type == "scalar" and "string,number,boolean" or node.type)
  end
  if k == "enum" then return where .. " must be equal to one of the allowed values" end
  if k == "key" then return fmt("%s property name '%s' must be equal to one of the allowed values", where, p.key) end
  if k == "min" then return fmt("%s must be >= %s", where, node.min) end
  if k == "max" then return fmt("%s must be <= %s", where, node.max) end
  if k == "format" then return fmt('%s must match format "%s"', where, node.format) end
  return where .. " is invalid"
end

local function coerce(where, s, spec)
  local t = spec.type
  if type(s) == "table" and t ~= "array" then return nil, where .. " must be " .. t end
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
    local it = spec.items
    for i, x in ipairs(list) do
      if it == "integer" or it == "number" then
        local n = tonumber(x)
        if not n or (it == "integer" and not tointeger(n)) then
          return nil, fmt("%s/%d must be %s", where, i - 1, it)
        end
        x = it == "integer" and tointeger(n) or n
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
  local c = shared.compile(op)
  local q = {}
  for k, v in pairs(raw) do q[k] = v end
  for _, p in ipairs(op.query or {}) do
    local s = raw[p.name]
    if s == nil or s == "" then
      q[p.name] = nil
    else
      local v, err = coerce("querystring/" .. p.name, s, p)
      if v == nil then return nil, err end
      local _, probs = shared.check(c.query_fields[p.name], v, { p.name })
      if probs[1] then return nil, vendor_message("querystring", probs[1]) end
      q[p.name] = v
    end
  end
  for _, name in ipairs(c.query_required) do
    if q[name] == nil then return nil, fmt("querystring must have required property '%s'", name) end
  end
  return q
end

--- Check the path parameters' formats.
function M.params(op, params)
  for _, p in ipairs(op.path_params or {}) do
    local v = params[p.name]
    if p.format and type(v) == "string" and not shared.format_ok(p.format, v) then
      return nil, fmt('params/%s must match format "%s"', p.name, p.format)
    end
  end
  return true
end

--- Check a decoded JSON body against `op.body`.
function M.body(op, body)
  if not op.body then return true end
  local c = shared.compile(op)
  if body == nil then
    if #c.body_required > 0 then return nil, "body must be object" end
    return true
  end
  if type_name(body) ~= "object" then return nil, "body must be object" end
  local probs = shared.check_object(c.body_fields, c.body_required, body)
  if probs[1] then return nil, vendor_message("body", probs[1]) end
  return true
end

return M
