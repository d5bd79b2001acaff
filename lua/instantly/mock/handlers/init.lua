--- Which handler serves an operation: its row in instantly.mock.behaviour
-- (served by the generic kinds), a special function where the behaviour
-- is more than data, or the generic kind its catalog shape implies (plain
-- CRUD over its entity).
-- @module instantly.mock.handlers

local common = require "instantly.mock.handlers.common"
local generic = require "instantly.mock.handlers.generic"
local behaviour = require "instantly.mock.behaviour"
local json = require "instantly.mock.json"

local err, null = common.err, json.null

local M = {}

M.special = {}
for _, part in ipairs{ "campaigns", "accounts", "leads", "tags", "emails", "workspace",
                       "enrichment", "misc" } do
  local mod = require("instantly.mock.handlers." .. part)
  for name, fn in pairs(mod) do
    if name == "checks" then
      for check, cfn in pairs(fn) do generic.checks[check] = cfn end
    else
      assert(not M.special[name], "two special handlers for " .. name)
      M.special[name] = fn
    end
  end
end

local function is_collection_path(op, e)
  return op.path == "/" .. e.slug
end

local function is_item_path(op, e)
  return op.path:match("^/" .. e.slug:gsub("%-", "%%-") .. "/{[^}]+}$") ~= nil
end

for name in pairs(M.special) do
  assert(not behaviour[name], name .. " has both a behaviour row and a special handler")
end

--- The generic kind a plain CRUD operation's catalog shape implies, or nil.
function M.generic_kind(op, e)
  local kind, item = op.response.kind, op.response.item
  if item ~= e.name then return nil end
  if op.method == "GET" and kind == "list" and op.paginated and is_collection_path(op, e) then return "list" end
  if op.method == "POST" and kind == "object" and is_collection_path(op, e) then return "create" end
  if kind == "object" and is_item_path(op, e) then
    return ({ GET = "get", PATCH = "update", DELETE = "delete" })[op.method]
  end
end

-- Plain lists search the entity's usual text fields.
local SEARCHED = { "name", "label", "email", "bl_value", "description", "subject", "first_name", "last_name",
  "company_name", "domain", "target_hook_url", "user_email" }

-- The row a plain CRUD operation gets: list filters from its query
-- parameters that are schema fields, plus search.
local function implied_row(op, e, kind)
  local row = { kind = kind }
  if kind ~= "list" then return row end
  local schema, filters = {}, { { "search", search = SEARCHED } }
  for _, f in ipairs(e.fields) do schema[f.name] = true end
  for _, p in ipairs(op.query or {}) do
    if schema[p.name] and p.name ~= "limit" then filters[#filters + 1] = { p.name } end
  end
  row.filters = filters
  return row
end

--- The handler for an operation: fn(ctx) and how it was chosen, or nil.
function M.find(op, e)
  local row = behaviour[op.id]
  if row then return function(ctx) return generic.run(ctx, row) end, "data:" .. row.kind end
  local fn = M.special[op.id]
  if fn then return fn, "special" end
  local kind = M.generic_kind(op, e)
  if kind then
    row = implied_row(op, e, kind)
    return function(ctx) return generic.run(ctx, row) end, "generic:" .. kind
  end
end

local cache = setmetatable({}, { __mode = "k" })

--- Run the handler for ctx.op: status, value[, headers] or a raw response.
function M.run(ctx)
  local h = cache[ctx.op]
  if h == nil then
    h = M.find(ctx.op, ctx.entity) or false
    cache[ctx.op] = h
  end
  if not h then return err(501, "Operation " .. ctx.op.id .. " is not implemented by the mock") end
  local status, value, headers = h(ctx)
  if status == nil then return err(500, "handler for " .. ctx.op.id .. " returned nothing") end
  if value == null then value = nil end
  if type(headers) ~= "table" then headers = nil end
  return status, value, headers
end

return M
