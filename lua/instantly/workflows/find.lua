--- Find by name, and find-or-create, for the collections people name:
-- campaigns and lead lists (`name`), custom tags (`label`).
--
-- `find` pages through the entity's list call with `search` set to the
-- name and keeps exact matches (the API's search is a substring match).
-- Names are not unique in Instantly: when several records carry the name,
-- `find` returns the oldest (smallest `timestamp_created`, then id) and
-- the number of matches, so a duplicate is visible.
--
-- `find_or_create` is find, then create when nothing matched. It is not
-- atomic: the API has no unique-name constraint, so two processes running
-- it at the same moment can both create. Run it from one place (or accept
-- a duplicate, which the next `find` reports as `count > 1`).
-- @module instantly.workflows.find

local type, pairs, tostring, error, pcall = type, pairs, tostring, error, pcall
local fmt = string.format

local M = {}

--- The field that names a record, per entity.
M.NAME_FIELD = { campaigns = "name", lead_lists = "name", custom_tags = "label" }

-- Misuse raises at the caller of M.find / M.find_or_create (level 3:
-- name_of <- M.find <- caller).
local function name_of(entity, params, fname)
  local field = M.NAME_FIELD[entity.lua_name]
  if not field then error("instantly: " .. fname .. " is not available for " .. tostring(entity.lua_name), 3) end
  local what = entity.lua_name .. ":" .. fname
  if type(params) ~= "table" then
    error(fmt("instantly: %s: expects a table like {%s = ...}, got %s", what, field, type(params)), 3)
  end
  local name = params[field]
  if type(name) ~= "string" or name == "" then
    error(fmt("instantly: %s: '%s' must be a non-empty string", what, field), 3)
  end
  return field, name, what
end

local function older(a, b)
  local ta, tb = tostring(a.timestamp_created or ""), tostring(b.timestamp_created or "")
  if ta ~= tb then return ta < tb end
  return tostring(a.id) < tostring(b.id)
end

-- The oldest exact match and the number of matches, or nil, err.
local function search(entity, field, name, call_opts)
  local it = entity:each({ search = name, limit = 100 }, call_opts)
  local best, count = nil, 0
  local ok, err = pcall(function()
    for rec in it do
      if rec[field] == name then
        count = count + 1
        if best == nil or older(rec, best) then best = rec end
      end
    end
  end)
  if not ok then
    if type(err) == "table" then return nil, err end
    error(err, 0)
  end
  -- An iterator that keeps its failure instead of raising.
  if type(it) == "table" and it.err then return nil, it.err end
  return best, count
end

--- Find a record by its exact name.
-- @tparam table entity `client.campaigns`, `client.lead_lists` or `client.custom_tags`
-- @tparam table params `{name = ...}` (`{label = ...}` for custom tags)
-- @tparam[opt] table call_opts per-call options for the list calls
-- @return the record (the oldest of several) and the number of matches;
--   `nil, 0` when there is none; `nil, err` when listing failed
function M.find(entity, params, call_opts)
  local field, name = name_of(entity, params, "find")
  for k in pairs(params) do
    if k ~= field then error(fmt("instantly: %s:find: unknown option '%s'", entity.lua_name, tostring(k)), 2) end
  end
  return search(entity, field, name, call_opts)
end

--- Find a record by name, or create it with `params` when there is none.
-- @tparam table entity
-- @tparam table params the create parameters (they include the name)
-- @tparam[opt] table call_opts
-- @return the record and `true` when it was created (`false` when found),
--   or nil, err
function M.find_or_create(entity, params, call_opts)
  local field, name = name_of(entity, params, "find_or_create")
  local rec, count = search(entity, field, name, call_opts)
  if rec then return rec, false end
  if count ~= 0 then return nil, count end
  local created, err = entity:create(params, call_opts)
  if not created then return nil, err end
  return created, true
end

return M
