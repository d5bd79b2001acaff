--- Bespoke handlers: the current workspace, members, workspace groups,
-- API keys (created keys authenticate, with their scopes) and billing.
-- @module instantly.mock.handlers.workspace

local json = require "instantly.mock.json"
local util = require "instantly.mock.util"

local array, null = json.array, json.null

return function(H, common)
  local err = common.err

  local function ws(ctx) return ctx.store.workspace end

  H.getWorkspace = function(ctx) return 200, ws(ctx) end

  H.patchWorkspace = function(ctx)
    local w, b = ws(ctx), ctx.body or {}
    if b.name ~= nil then
      if b.name == "" then return err(400, "body/name must NOT have fewer than 1 characters") end
      w.name = b.name
    end
    if b.org_logo_url ~= nil then w.org_logo_url = b.org_logo_url end
    w.timestamp_updated = ctx.store:now_iso()
    return 200, w
  end

  H.changeWorkspaceOwner = function(ctx)
    local w, b = ws(ctx), ctx.body
    local member
    for _, m in ctx.store:coll("workspace_members"):each() do
      if m.email == b.email then member = m break end
    end
    if not member then return err(404, "No workspace member with email " .. b.email) end
    if not member.accepted then return err(400, "The member has not accepted the invitation yet") end
    w.owner = member.user_id
    member.role = "owner"
    w.timestamp_updated = ctx.store:now_iso()
    return 200, w
  end

  H.getWorkspaceDomainInfo = function(ctx)
    local d = ctx.store.whitelabel
    if not d then
      return 200, { verified = false, name = null, verification = array{} }
    end
    return 200, { verified = false, name = d, verification = array{
      { type = "CNAME", domain = "app." .. d, value = "whitelabel.instantly.example", reason = "not found" },
      { type = "TXT", domain = "_instantly." .. d, value = "instantly-verify=" .. ctx.store.workspace_id,
        reason = "not found" },
    } }
  end

  H.addWorkspaceAgencyDomain = function(ctx)
    local d = ctx.body.domain
    if not d:match("^[%w-]+%.[%w.-]*%w$") then return err(400, "body/domain must be a domain name") end
    ctx.store.whitelabel = d
    local w = ws(ctx)
    w.org_client_domain = d
    return 200, w
  end

  H.deleteWorkspaceDomain = function(ctx)
    if not ctx.store.whitelabel then return err(404, "No white-label domain is set") end
    ctx.store.whitelabel = nil
    local w = ws(ctx)
    w.org_client_domain = null
    return 200, w
  end

  H.scheduleWorkspaceRemoval = function(ctx)
    local w = ws(ctx)
    local now = require("socket").gettime()
    w.scheduled_for_removal_at = util.iso(math.floor((now + 30 * 86400) * 1000))
    return 200, w
  end

  H.cancelWorkspaceRemoval = function(ctx)
    local w = ws(ctx)
    w.scheduled_for_removal_at = null
    return 200, w
  end

  -- Members -----------------------------------------------------------------------

  local ROLES = { owner = true, admin = true, editor = true, view = true, client = true }

  H.listWorkspaceMember = function(ctx)
    local q = ctx.query
    return common.page(ctx, ctx.store:coll("workspace_members"), common.all{
      q.accepted ~= nil and common.eq_pred("accepted", q.accepted) or nil,
      common.search_pred(q.search, { "email", "user_email" }),
    })
  end

  H.createWorkspaceMember = function(ctx)
    local b, store = ctx.body, ctx.store
    if not util.is_email(b.email) then return err(400, 'body/email must match format "email"') end
    if not ROLES[b.role] then return err(400, "body/role must be one of admin, editor, view, client") end
    for _, m in store:coll("workspace_members"):each() do
      if m.email == b.email then return err(400, b.email .. " is already a member") end
    end
    return 200, (store:create("workspace_members", {
      email = b.email, user_email = b.user_email or b.email, user_id = store:uuid(),
      name = { first = b.email:match("^([^@]+)"), last = null }, role = b.role,
      permissions = b.permissions or array{}, accepted = false, issuer_id = store.user_id,
    }))
  end

  H.patchWorkspaceMember = function(ctx)
    local m = ctx.store:coll("workspace_members"):get(ctx.params.id)
    if not m then return err(404, "Workspace member not found") end
    local role = (ctx.body or {}).role
    if role ~= nil then
      if not ROLES[role] then return err(400, "body/role must be one of admin, editor, view, client") end
      m.role = role
    end
    return 200, m
  end

  -- Workspace groups ---------------------------------------------------------------

  H.createWorkspaceGroupMember = function(ctx)
    local b, store = ctx.body, ctx.store
    if b.sub_workspace_id == store.workspace_id then return err(400, "A workspace cannot be its own sub-workspace") end
    for _, m in store:coll("workspace_group_members"):each() do
      if m.sub_workspace_id == b.sub_workspace_id then return err(400, "Sub-workspace is already in the group") end
    end
    return 200, (store:create("workspace_group_members", {
      admin_workspace_id = store.workspace_id, sub_workspace_id = b.sub_workspace_id, status = "pending",
      admin_workspace_name = store.workspace.name, sub_workspace_name = null,
    }))
  end

  H.getAdminWorkspaceGroupMember = function(ctx)
    local first = ctx.store:coll("workspace_group_members").items[1]
    return 200, {
      workspace_name = ctx.store.workspace.name, has_admin_workspace = false,
      workspace_group_member_id = first and first.id or null,
    }
  end

  -- API keys ------------------------------------------------------------------------

  H.createAPIKey = function(ctx)
    local b, store = ctx.body, ctx.store
    if b.name == "" then return err(400, "body/name must NOT have fewer than 1 characters") end
    if #b.scopes == 0 then return err(400, "body/scopes must NOT have fewer than 1 items") end
    for i, s in ipairs(b.scopes) do
      if type(s) ~= "string" or not s:match("^[%w_-]+:[%w_]+$") then
        return err(400, "body/scopes/" .. (i - 1) .. " must look like resource:action")
      end
    end
    local secret = "inst_" .. store:uuid():gsub("-", "") .. store:uuid():gsub("-", ""):sub(1, 16)
    local key = store:create("api_keys", {
      name = b.name, scopes = util.deep_copy(b.scopes), key = secret:sub(1, 9) .. "****" .. secret:sub(-4),
    })
    store.hidden.api_keys[key.id] = secret
    local scopes = {}
    for i, s in ipairs(b.scopes) do scopes[i] = s end
    ctx.app.keys[secret] = { scopes = scopes, created = true, id = key.id, workspace = store.workspace_id }
    local shown = util.shallow_copy(key)
    shown.key = secret
    return 200, shown
  end

  H.deleteAPIKey = function(ctx)
    local store = ctx.store
    local key = store:coll("api_keys"):remove(ctx.params.id)
    if not key then return err(404, "API key not found") end
    local secret = store.hidden.api_keys[key.id]
    if secret then ctx.app.keys[secret] = nil end
    return 200, key
  end

  -- Billing --------------------------------------------------------------------------

  H.getWorkspacePlanDetails = function(ctx)
    local store = ctx.store
    local period_end = util.iso(require("instantly.mock.state").BASE_MS + 40 * 86400000)
    return 200, {
      organization_id = store.workspace_id, organization_name = store.workspace.name,
      subscriptions = {
        outreach = { plan_name = "Hypergrowth", addons_qty = 0, total_lead_limit = 25000,
          current_lead_count = store:coll("leads"):count(), base_lead_limit = 25000, interval = "month",
          current_period_end = period_end, cancel_at_time = null, price_in_dollars = 97,
          product_id = "pid_hypergrowth" },
        credits = { plan_name = "Growth Leads", total_credits = 1000,
          available_credits = 1000 - store:coll("email_verification"):count(), interval = "month",
          current_period_end = period_end, product_id = "pid_growth_leads" },
        crm = null, website_visitors = null, inbox_placement = null,
      },
      addons = { outreach = array{}, credits = array{} },
    }
  end

  H.getWorkspaceSubscriptionDetails = function(ctx)
    local period_end = util.iso(require("instantly.mock.state").BASE_MS + 40 * 86400000)
    return 200, {
      subscriptions = array{
        { workspace_id = ctx.store.workspace_id, interval = "month", quantity = 1, product_id = "pid_hypergrowth",
          product_type = "prt_outreach", plan_type = "plt_primary", current_period_end = period_end,
          cancel_at_time = null, price_in_dollars = 97, price_id = "price_mock_hypergrowth" },
        { workspace_id = ctx.store.workspace_id, interval = "month", quantity = 1, product_id = "pid_growth_leads",
          product_type = "prt_leadfinder", plan_type = "plt_primary", current_period_end = period_end,
          cancel_at_time = null, price_in_dollars = 47, price_id = "price_mock_leads" },
      },
      all_subs_cancelled = false,
    }
  end
end
