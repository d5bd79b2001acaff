--- Enum constants and labels, generated from the catalog.
--
--     local enums = require "instantly.enums"   -- or require("instantly").enums
--     enums.campaign.status.active              --> 1
--     enums.lead.interest_status.interested     --> 1
--     enums.campaign.days.monday                --> "1"
--     enums.label("campaign.status", 2)         --> "Paused"
--     enums.values("campaign.timezone")         --> {"Etc/GMT+12", ...}
--
-- `enums.<entity>.<field>.<name>`: `<entity>` is the entity's name in
-- snake_case singular (campaign, lead, account, lead_list, webhook, ...),
-- `<field>` the field or parameter carrying the enum (for a nested one its
-- own name: `campaign.timezone`, `campaign.days`, `campaign.delay_unit`),
-- `<name>` the value's label in snake_case. Reading a name, field or
-- entity that does not exist raises (a typo is misuse, not nil); `pairs`
-- over a field table gives name -> value. The data comes from
-- `instantly.enums.data`, written by tools/gen-enums.lua.
-- @module instantly.enums

local data = require "instantly.enums.data"

local type, pairs, ipairs, error, tostring, setmetatable, rawget, next = type, pairs, ipairs, error, tostring,
  setmetatable, rawget, next
local concat, sort = table.concat, table.sort

local M = {}

-- path ("campaign.status") -> { rows = {...}, by_value = {value -> row} }
local info = {}

local function keys_of(t)
  local k = {}
  for name in pairs(t) do k[#k + 1] = tostring(name) end
  sort(k)
  return concat(k, ", ")
end

-- A read-only view of `t`: an unknown key raises, `pairs` walks `t`.
local function strict(t, what)
  return setmetatable({}, {
    __index = function(_, k)
      local v = t[k]
      if v == nil then
        error("instantly.enums: " .. what .. " has no '" .. tostring(k) .. "' (known: " .. keys_of(t) .. ")", 2)
      end
      return v
    end,
    __newindex = function()
      error("instantly.enums: " .. what .. " is read-only", 2)
    end,
    __pairs = function() return next, t, nil end,
  })
end

local entity_names = {}
for ent, fields in pairs(data) do
  local et = {}
  for field, rows in pairs(fields) do
    local path = ent .. "." .. field
    local consts, by_value = {}, {}
    for _, r in ipairs(rows) do
      consts[r[2]] = r[1]
      by_value[r[1]] = r
    end
    info[path] = { rows = rows, by_value = by_value }
    et[field] = strict(consts, path)
  end
  M[ent] = strict(et, ent)
  entity_names[#entity_names + 1] = ent
end

local function lookup(fn, path)
  if type(path) ~= "string" then
    error("instantly.enums." .. fn .. ": path must be a string like \"campaign.status\", got " .. type(path), 3)
  end
  local i = info[path]
  if not i then error("instantly.enums." .. fn .. ": no enum '" .. path .. "'", 3) end
  return i
end

--- The label of a value ("Paused" for `label("campaign.status", 2)`), or
-- nil when the value is not one the catalog names.
-- @tparam string path `"<entity>.<field>"`
-- @param value
-- @treturn string|nil
function M.label(path, value)
  local r = lookup("label", path).by_value[value]
  return r and r[3] or nil
end

--- The constant name of a value ("paused"), or nil.
-- @tparam string path
-- @param value
-- @treturn string|nil
function M.name(path, value)
  local r = lookup("name", path).by_value[value]
  return r and r[2] or nil
end

--- The values of an enum in catalog order (a fresh array).
-- @tparam string path
-- @treturn table
function M.values(path)
  local out = {}
  for i, r in ipairs(lookup("values", path).rows) do out[i] = r[1] end
  return out
end

--- Is `value` one of the enum's values?
-- @tparam string path
-- @param value
-- @treturn boolean
function M.is(path, value)
  return lookup("is", path).by_value[value] ~= nil
end

--- Every enum path ("account.status", ...), sorted.
-- @treturn table
function M.paths()
  local out = {}
  for p in pairs(info) do out[#out + 1] = p end
  sort(out)
  return out
end

sort(entity_names)
return setmetatable(M, {
  __index = function(_, k)
    if rawget(M, k) == nil then
      error("instantly.enums: no entity '" .. tostring(k) .. "' (known: " .. concat(entity_names, ", ") .. ")", 2)
    end
  end,
})
