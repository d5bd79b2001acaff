--- The mock's control plane: the default routes under /__mock/.
--
-- Each route is `fn(app, req, body, params) -> status, value` (value is
-- encoded as JSON) or a full response table; `body` is the decoded JSON
-- body (nil when empty), `params` the values of `{name}` segments. The
-- table is keyed "METHOD /__mock/path"; server.lua copies it into each
-- app's `routes`, where other mock modules add theirs (see its header).
-- @module instantly.mock.control

local json = require "instantly.mock.json"
local util = require "instantly.mock.util"
local faults = require "instantly.mock.faults"

local array = json.array

local M = {}

local routes = {}
M.routes = routes

routes["GET /__mock/health"] = function(app)
  return 200, { ok = true, pid = app.pid(), seed = app.seed, port = app.port }
end

routes["GET /__mock/requests"] = function(app, req)
  local q = util.parse_query(req.raw_query)
  return 200, { items = app.log:since(math.tointeger(tonumber(q.since)) or 0) }
end

routes["DELETE /__mock/requests"] = function(app)
  return 200, { cleared = app.log:clear() }
end

routes["POST /__mock/reset"] = function(app)
  app:reset()
  return 200, { ok = true }
end

routes["POST /__mock/faults"] = function(app, _, body)
  local list = (body and json.is_array(body)) and body or { body }
  for _, f in ipairs(list) do
    local added, err = faults.add(app.faults, f)
    if not added then return 400, { error = err } end
  end
  return 200, { ok = true, pending = #app.faults }
end

routes["GET /__mock/faults"] = function(app)
  return 200, { items = faults.public(app.faults) }
end

routes["DELETE /__mock/faults"] = function(app)
  local n = #app.faults
  app.faults = {}
  return 200, { cleared = n }
end

routes["GET /__mock/settings"] = function(app)
  local s = {}
  for k, v in pairs(app.settings) do s[k] = v end
  s.rate_limits = app.rate_limits
  return 200, s
end

-- The type a setting must have; send_test_error is a switch or a code.
local function setting_error(defaults, k, v)
  if k == "rate_limits" then
    return type(v) ~= "boolean" and "rate_limits must be boolean" or nil
  end
  if defaults[k] == nil then return "unknown setting '" .. tostring(k) .. "'" end
  if k == "send_test_error" then
    if type(v) ~= "boolean" and type(v) ~= "string" then return "send_test_error must be boolean or string" end
    return nil
  end
  local want = type(defaults[k])
  if type(v) ~= want then return k .. " must be " .. want end
  if (k == "per_second" or k == "per_minute") and (math.tointeger(v) or 0) < 1 then
    return k .. " must be a positive integer"
  end
end

local function set_settings(app, body)
  if type(body) ~= "table" then return 400, { error = "settings must be an object" } end
  for k, v in pairs(body) do
    local msg = setting_error(app.DEFAULT_SETTINGS, k, v)
    if msg then return 400, { error = msg } end
  end
  for k, v in pairs(body) do
    if k == "rate_limits" then app.rate_limits = v else app.settings[k] = v end
    if k == "rate_limits" or k == "per_second" or k == "per_minute" then app.limiters = {} end
  end
  return 200, { ok = true }
end
routes["POST /__mock/settings"] = function(app, _, body) return set_settings(app, body) end
routes["PATCH /__mock/settings"] = routes["POST /__mock/settings"]

local function counts(store)
  local out = {}
  for name, c in pairs(store.colls) do out[name] = #c.items end
  return out
end

routes["GET /__mock/state"] = function(app)
  local subs = array{}
  for _, child in ipairs(app.children) do
    subs[#subs + 1] = { id = child.workspace_id, name = child.workspace.name, counts = counts(child) }
  end
  return 200, { counts = counts(app.store), workspace_id = app.store.workspace_id, sub_workspaces = subs }
end

routes["POST /__mock/shutdown"] = function(app)
  app.http:stop()
  return { status = 200, body = json.encode({ ok = true }), close = true }
end

-- A campaign finishes: status 3, and the campaign_completed event.
routes["POST /__mock/campaigns/{id}/complete"] = function(app, req, _, params)
  local store, status, msg = app:store_for_control(req)
  if not store then return status, { error = msg } end
  local c = store:coll("campaigns"):get(params.id)
  if not c then return 404, { error = "no campaign " .. params.id } end
  app:complete_campaign(store, c)
  return 200, c
end

return M
