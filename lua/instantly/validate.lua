--- Argument checking compiled from the catalog's parameter lists.
--
-- `compile(op)` turns one operation's path, query and body parameters into
-- a checker once per process; the per-call work is a table walk over the
-- arguments actually given. A checker never raises: it returns the routed
-- arguments or a message naming the parameter, and the generated method
-- raises that message at the caller's level (programmer misuse).
-- @module instantly.validate

local core = require "instantly.core"

local pairs, ipairs, type, tostring, next = pairs, ipairs, type, tostring, next
local mtype, tointeger, huge = math.type, math.tointeger, math.huge
local getmetatable, setmetatable = getmetatable, setmetatable
local concat, sort = table.concat, table.sort
local format, gsub, byte = string.format, string.gsub, string.byte

local null = core.null
local array_mt = core.array_mt

local M = {}

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

local function show(v)
  if type(v) == "string" then return format("%q", v) end
  return tostring(v)
end

local function is_sequence(t)
  local n = #t
  for k in pairs(t) do
    if mtype(k) ~= "integer" or k < 1 or k > n then return false end
  end
  return true
end

-- One value against one parameter description. Returns the value to send
-- (possibly converted: integral floats to integers, arrays copied and
-- marked so an empty one encodes as []) or nil and a message.
local check_value

local function check_scalar(p, v, where)
  local t = p.type
  if t == "string" then
    if type(v) ~= "string" then return nil, where .. " must be a string, got " .. describe(v) end
  elseif t == "integer" then
    if mtype(v) ~= "integer" then
      local i = type(v) == "number" and tointeger(v)
      if not i then return nil, where .. " must be an integer, got " .. describe(v) end
      v = i
    end
  elseif t == "number" then
    if type(v) ~= "number" or v ~= v or v == huge or v == -huge then
      return nil, where .. " must be a finite number, got " .. describe(v)
    end
  elseif t == "boolean" then
    if type(v) ~= "boolean" then return nil, where .. " must be a boolean, got " .. describe(v) end
  end
  if p.enum_set and not p.enum_set[v] then
    local shown = {}
    for i, e in ipairs(p.enum) do shown[i] = show(e) end
    return nil, where .. " must be one of " .. concat(shown, ", ") .. ", got " .. show(v)
  end
  if p.min and v < p.min then return nil, where .. " must be at least " .. p.min .. ", got " .. show(v) end
  if p.max and v > p.max then return nil, where .. " must be at most " .. p.max .. ", got " .. show(v) end
  return v
end

function check_value(p, v, where)
  if v == null then
    if p.nullable then return v end
    return nil, where .. " cannot be null"
  end
  local t = p.type
  if t == "array" then
    if type(v) ~= "table" or not is_sequence(v) then
      return nil, where .. " must be an array (a sequence table), got " .. describe(v)
    end
    local out = setmetatable({}, array_mt)
    local item = p.item_param
    for i = 1, #v do
      local e = v[i]
      if item then
        local err
        e, err = check_value(item, e, where .. "[" .. i .. "]")
        if e == nil then return nil, err end
      end
      out[i] = e
    end
    return out
  elseif t == "object" then
    if type(v) ~= "table" or getmetatable(v) == array_mt or (v[1] ~= nil and is_sequence(v)) then
      return nil, where .. " must be an object (a table with string keys), got " .. describe(v)
    end
    local fields = p.field_map
    if fields then
      -- One nested level is described by the catalog; check what it
      -- describes and let other keys through (the catalog is not exhaustive
      -- below the top level). A copy carries the checked values, so nested
      -- arrays are marked (an empty one is sent as []) without touching
      -- the caller's table.
      local out = {}
      for k, fv in pairs(v) do
        local fp = fields[k]
        if fp then
          local cv, err = check_value(fp, fv, where .. "." .. k)
          if cv == nil then return nil, err end
          out[k] = cv
        else
          out[k] = fv
        end
      end
      return out
    end
    return v
  end
  return check_scalar(p, v, where)
end

local function prepare(p)
  local q = {
    name = p.name, type = p.type, nullable = p.nullable, enum = p.enum,
    min = p.min, max = p.max, required = p.required, description = p.description,
  }
  if p.type == "array" then
    if p.items and p.items ~= "object" and p.items ~= "array" then
      q.item_param = prepare({ name = p.name, type = p.items, enum = p.enum })
      q.enum = nil
    end
  elseif p.enum then
    q.enum_set = {}
    for _, e in ipairs(p.enum) do q.enum_set[e] = true end
  end
  if p.type == "object" and p.fields then
    q.field_map = {}
    for _, f in ipairs(p.fields) do q.field_map[f.name] = prepare(f) end
  end
  return q
end

M.check_value = check_value

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

local cache = setmetatable({}, { __mode = "k" })

--- Compile the checker of one operation (cached per operation table).
-- The result has `params` (name -> prepared parameter with `where` =
-- "query" or "body"), `query_order` (query parameter names in catalog
-- order), `required` (names), `has_body`, and `path_params`.
-- @tparam table op an operation from `instantly.entities.<name>`
-- @treturn table compiled checker
function M.compile(op)
  local c = cache[op]
  if c then return c end
  c = { params = {}, query_order = {}, required = {}, has_body = op.body ~= nil, path_params = {} }
  for _, p in ipairs(op.path_params or {}) do c.path_params[#c.path_params + 1] = p.name end
  for _, p in ipairs(op.query or {}) do
    local q = prepare(p)
    q.where = "query"
    c.params[p.name] = q
    c.query_order[#c.query_order + 1] = p.name
    if p.required then c.required[#c.required + 1] = p.name end
  end
  if op.body then
    for _, p in ipairs(op.body.fields or {}) do
      if c.params[p.name] then
        error("catalog: " .. op.id .. " declares '" .. p.name .. "' in both query and body")
      end
      local q = prepare(p)
      q.where = "body"
      c.params[p.name] = q
      if p.required then c.required[#c.required + 1] = p.name end
    end
  end
  cache[op] = c
  return c
end

--- Check and route one call's arguments.
-- @tparam table c compiled checker
-- @tparam table|nil args the caller's parameter table
-- @treturn string|nil query string (without "?"), or nil when empty
-- @treturn table|nil body table (only when the operation has a body)
-- @treturn string|nil on misuse: the message (the two values above are nil)
function M.route(c, args)
  local body = c.has_body and {} or nil
  local qvals
  if args ~= nil then
    if type(args) ~= "table" or getmetatable(args) == array_mt then
      return nil, nil, "parameters must be a table, got " .. describe(args)
    end
    local params = c.params
    for k, v in pairs(args) do
      local p = params[k]
      if not p then
        if type(k) ~= "string" then
          return nil, nil, "parameter keys must be strings, got " .. describe(k) .. " key " .. show(k)
        end
        local known = {}
        for name in pairs(params) do known[#known + 1] = name end
        sort(known)
        return nil, nil, "unknown parameter '" .. k .. "'" ..
          (#known > 0 and " (known: " .. concat(known, ", ") .. ")" or " (this operation takes none)")
      end
      local val, err = check_value(p, v, "parameter '" .. k .. "'")
      if val == nil then return nil, nil, err end
      if p.where == "body" then
        body[k] = val
      else
        qvals = qvals or {}
        qvals[k] = val
      end
    end
  end
  local req = c.required
  for i = 1, #req do
    local name = req[i]
    if args == nil or args[name] == nil then
      return nil, nil, "missing required parameter '" .. name .. "'"
    end
  end
  local query
  if qvals then
    local buf = {}
    local order = c.query_order
    for i = 1, #order do
      local v = qvals[order[i]]
      if v ~= nil then M.add_query(buf, order[i], v) end
    end
    query = concat(buf, "&")
  end
  return query, body
end

return M
