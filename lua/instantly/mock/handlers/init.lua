--- Operation handlers: generic CRUD for every entity whose operations have
-- the plain list/create/get/update/delete shape, bespoke handlers (by
-- operation id) where the service behaves specially.
-- @module instantly.mock.handlers

local common = require "instantly.mock.handlers.common"
local json = require "instantly.mock.json"

local err, null = common.err, json.null

local M = {}

M.bespoke = {}
for _, part in ipairs{ "accounts", "campaigns", "leads", "emails", "workspace", "misc" } do
  require("instantly.mock.handlers." .. part)(M.bespoke, common)
end

local function is_collection_path(op, e)
  return op.path == "/" .. e.slug
end

local function is_item_path(op, e)
  return op.path:match("^/" .. e.slug:gsub("%-", "%%-") .. "/{[^}]+}$") ~= nil
end

-- Fields a request may write: the body fields that are also schema fields.
local function writable(op, e)
  local schema = {}
  for _, f in ipairs(e.fields) do schema[f.name] = true end
  local out = {}
  for _, f in ipairs(op.body and op.body.fields or {}) do
    if schema[f.name] then out[#out + 1] = f.name end
  end
  return out
end

local STRING_SEARCH = { "name", "label", "email", "bl_value", "description", "subject",
  "first_name", "last_name", "company_name", "domain", "target_hook_url", "user_email" }

--- Which generic handler fits an operation, or nil.
function M.generic_kind(op, e)
  local kind, item = op.response.kind, op.response.item
  if item ~= e.name then return nil end
  if op.method == "GET" and kind == "list" and op.paginated and is_collection_path(op, e) then return "list" end
  if op.method == "POST" and kind == "object" and is_collection_path(op, e) then return "create" end
  if kind == "object" and is_item_path(op, e) then
    if op.method == "GET" then return "get" end
    if op.method == "PATCH" then return "update" end
    if op.method == "DELETE" then return "delete" end
  end
  return nil
end

local generic = {}

function generic.list(ctx)
  local e, q = ctx.entity, ctx.query
  local preds = {}
  local schema = {}
  for _, f in ipairs(e.fields) do schema[f.name] = f end
  for _, p in ipairs(ctx.op.query or {}) do
    local v = q[p.name]
    if v ~= nil and schema[p.name] and p.name ~= "limit" then
      preds[#preds + 1] = common.eq_pred(p.name, v)
    end
  end
  if q.search then preds[#preds + 1] = common.search_pred(q.search, STRING_SEARCH) end
  return common.page(ctx, ctx.store:coll(e.lua_name), common.all(preds))
end

function generic.create(ctx)
  local e = ctx.entity
  local values = {}
  for _, name in ipairs(writable(ctx.op, e)) do
    local v = (ctx.body or {})[name]
    if v ~= nil then values[name] = v end
  end
  local obj = ctx.store:create(e.lua_name, values)
  return 200, obj
end

local function key_of(ctx)
  local p = ctx.op.path_params[1]
  return p and ctx.params[p.name]
end

function generic.get(ctx)
  local obj = ctx.store:coll(ctx.entity.lua_name):get(key_of(ctx))
  if not obj then return err(404, ctx.entity.name .. " not found") end
  return 200, obj
end

function generic.update(ctx)
  local e = ctx.entity
  local obj = ctx.store:coll(e.lua_name):get(key_of(ctx))
  if not obj then return err(404, e.name .. " not found") end
  local body = ctx.body or {}
  for _, name in ipairs(writable(ctx.op, e)) do
    local v = body[name]
    if v ~= nil then obj[name] = v end
  end
  if obj.timestamp_updated ~= nil then obj.timestamp_updated = ctx.store:now_iso() end
  if obj.updated_at ~= nil then obj.updated_at = ctx.store:now_iso() end
  return 200, obj
end

function generic.delete(ctx)
  local e = ctx.entity
  local obj = ctx.store:coll(e.lua_name):remove(key_of(ctx))
  if not obj then return err(404, e.name .. " not found") end
  return 200, obj
end

M.generic = generic

--- The handler for an operation: bespoke, generic, or nil.
function M.find(op, e)
  local b = M.bespoke[op.id]
  if b then return b, "bespoke" end
  local kind = M.generic_kind(op, e)
  if kind then return generic[kind], "generic:" .. kind end
  return nil
end

--- Run the handler for ctx.op: status, value[, headers] or a raw response.
function M.run(ctx)
  local h = M.find(ctx.op, ctx.entity)
  if not h then return err(501, "Operation " .. ctx.op.id .. " is not implemented by the mock") end
  local status, value, headers = h(ctx)
  if status == nil then return err(500, "handler for " .. ctx.op.id .. " returned nothing") end
  if value == null then value = nil end
  if type(headers) ~= "table" then headers = nil end
  return status, value, headers
end

return M
