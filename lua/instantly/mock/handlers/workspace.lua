--- Workspace operations beyond a row of data: ownership, the white-label
-- domain, removal scheduling, member invitations, group invitations, API
-- keys (created keys authenticate, with their scopes, in the workspace
-- they were created in) and billing figures derived from the state.
-- @module instantly.mock.handlers.workspace

local common = require "instantly.mock.handlers.common"
local json = require "instantly.mock.json"
local util = require "instantly.mock.util"

local array, null, err = json.array, json.null, common.err

local M, checks = {}, {}
M.checks = checks

local DOMAIN = "^[%w-]+%.[%w.-]*%w$"

function checks.domain_name(ctx)
  if not ctx.body.domain:match(DOMAIN) then return 400, "body/domain must be a domain name" end
end

function checks.has_domain(ctx)
  if ctx.store.workspace.org_client_domain == null then return 404, "No white-label domain is set" end
end

function checks.not_self(ctx)
  if ctx.body.sub_workspace_id == ctx.store.workspace_id then
    return 400, "A workspace cannot be its own sub-workspace"
  end
end

function M.changeWorkspaceOwner(ctx)
  local w, email = ctx.store.workspace, ctx.body.email
  local member
  for _, m in ctx.store:coll("workspace_members"):each() do
    if m.email == email then member = m break end
  end
  if not member then return err(404, "No workspace member with email " .. email) end
  if not member.accepted then return err(400, "The member has not accepted the invitation yet") end
  w.owner, member.role = member.user_id, "owner"
  w.timestamp_updated = ctx.store:now_iso()
  return 200, w
end

function M.getWorkspaceDomainInfo(ctx)
  local d = ctx.store.workspace.org_client_domain
  if d == null then return 200, { verified = false, name = null, verification = array{} } end
  return 200, { verified = false, name = d, verification = array{
    { type = "CNAME", domain = "app." .. d, value = "whitelabel.instantly.example", reason = "not found" },
    { type = "TXT", domain = "_instantly." .. d, value = "instantly-verify=" .. ctx.store.workspace_id,
      reason = "not found" } } }
end

function M.createWorkspaceMember(ctx)
  local b, store = ctx.body, ctx.store
  for _, m in store:coll("workspace_members"):each() do
    if m.email == b.email then return err(400, b.email .. " is already a member") end
  end
  return 200, store:create("workspace_members", {
    email = b.email, user_email = b.user_email or b.email, user_id = store:uuid(),
    name = { first = b.email:match("^([^@]+)"), last = null }, role = b.role,
    permissions = b.permissions or array{}, accepted = false, issuer_id = store.user_id,
  })
end

-- Asked from a sub-workspace, names its agency; from the agency, itself.
function M.getAdminWorkspaceGroupMember(ctx)
  local store, app = ctx.store, ctx.app
  local parent = store.parent_id and app.stores[store.parent_id]
  local member
  for _, m in (parent or store):coll("workspace_group_members"):each() do
    if not parent or m.sub_workspace_id == store.workspace_id then member = m break end
  end
  return 200, { workspace_name = (parent or store).workspace.name, has_admin_workspace = parent ~= nil,
    workspace_group_member_id = member and member.id or null }
end

function M.createAPIKey(ctx)
  local b, store = ctx.body, ctx.store
  if b.name == "" then return err(400, "body/name must NOT have fewer than 1 characters") end
  if #b.scopes == 0 then return err(400, "body/scopes must NOT have fewer than 1 items") end
  for i, s in ipairs(b.scopes) do
    if type(s) ~= "string" or not s:match("^[%w_-]+:[%w_]+$") then
      return err(400, "body/scopes/" .. (i - 1) .. " must look like resource:action")
    end
  end
  local secret = "inst_" .. store:uuid():gsub("-", "") .. store:uuid():gsub("-", ""):sub(1, 16)
  local key = store:create("api_keys", { name = b.name, scopes = util.deep_copy(b.scopes),
    key = secret:sub(1, 9) .. "****" .. secret:sub(-4) })
  store.hidden.api_keys[key.id] = secret
  ctx.app.keys[secret] = { scopes = { table.unpack(b.scopes) }, created = true, id = key.id,
    workspace = store.workspace_id }
  local shown = util.shallow_copy(key)
  shown.key = secret -- shown once
  return 200, shown
end

function M.deleteAPIKey(ctx)
  local store = ctx.store
  local key = store:coll("api_keys"):remove(ctx.params.id)
  if not key then return err(404, "API key not found") end
  local secret = store.hidden.api_keys[key.id]
  if secret then ctx.app.keys[secret] = nil end
  return 200, key
end

return M
