-- Sub-workspaces in the mock: an agency workspace with children, each with
-- its own data; x-as-workspace honoured on every operation, unknown and
-- foreign ids refused; events for the webhook seam.

local client = require "instantly.mock.client"
local mock_fixture = require "support.mock_fixture"
local json = require "instantly.mock.json"

local E = require "instantly.entities"

describe("instantly-mock sub-workspaces", function()
  local srv, c, subs, pending

  local function as(id) return { headers = { ["x-as-workspace"] = id } } end

  local function get(path, id, query)
    local opts = as(id)
    opts.query = query
    local status, body = c:request("GET", path, opts)
    assert.are.equal(200, status, path)
    return body
  end

  mock_fixture({ seed = 5, rate_limits = false }, function(s, cl) srv, c = s, cl end)

  before_each(function()
    subs = srv:state().sub_workspaces
    local members = get("/workspace-group-members").items
    for _, m in ipairs(members) do
      if m.status == "pending" then pending = m.sub_workspace_id end
    end
  end)

  it("lists the children as group members, with the schema's fields and no others", function()
    local e = require "instantly.entities.workspace_group_members"
    local fields = {}
    for _, f in ipairs(e.fields) do fields[f.name] = true end
    local members = get("/workspace-group-members").items
    assert.are.equal(3, #members)
    local agency = get("/workspaces/current")
    for i, m in ipairs(members) do
      for k in pairs(m) do assert.truthy(fields[k], "undocumented field " .. k) end
      for k in pairs(fields) do assert.is_not_nil(m[k], "missing field " .. k) end
      assert.are.equal(agency.id, m.admin_workspace_id)
      if i <= 2 then
        assert.are.equal("accepted", m.status)
        assert.are.equal(subs[i].id, m.sub_workspace_id)
        assert.are.equal(subs[i].name, m.sub_workspace_name)
      end
    end
    assert.are.equal("pending", members[3].status)
  end)

  it("scopes state per workspace: each child has its own data", function()
    local agency = get("/workspaces/current")
    local a = get("/workspaces/current", subs[1].id)
    assert.are.equal(subs[1].id, a.id)
    assert.are.equal("Mock Client A", a.name)
    assert.are_not.equal(agency.id, a.id)
    local camps_agency = get("/campaigns").items
    local camps_a = get("/campaigns", subs[1].id).items
    assert.are_not.equal(camps_agency[1].id, camps_a[1].id)
    -- a campaign of the agency is not found from a child
    local status = c:request("GET", "/campaigns/" .. camps_agency[1].id, as(subs[1].id))
    assert.are.equal(404, status)
    -- writes land in the workspace acted on only
    local st, list = c:request("POST", "/lead-lists", { body = { name = "Only in B" },
      headers = { ["x-as-workspace"] = subs[2].id } })
    assert.are.equal(200, st)
    assert.are.equal(200, (c:request("GET", "/lead-lists/" .. list.id, as(subs[2].id))))
    assert.are.equal(404, (c:request("GET", "/lead-lists/" .. list.id)))
    assert.are.equal(404, (c:request("GET", "/lead-lists/" .. list.id, as(subs[1].id))))
    -- counts and analytics are computed per workspace
    local leads_a = select(2, c:request("POST", "/leads/list", { body = { limit = 100 },
      headers = { ["x-as-workspace"] = subs[1].id } })).items
    assert.is_true(#leads_a > 0)
    for _, l in ipairs(leads_a) do assert.are.equal(subs[1].id, l.organization) end
    local ov = get("/campaigns/analytics/overview")
    local ov_a = get("/campaigns/analytics/overview", subs[1].id)
    assert.is_true(ov.emails_sent_count > ov_a.emails_sent_count)
    local accounts_a = get("/accounts", subs[1].id).items
    assert.matches("@client%-a%-", accounts_a[1].email)
  end)

  it("honours the header on every catalog operation: a foreign id is refused before the handler", function()
    local foreign = "6f1c2d4e-1111-4222-8333-444455556666"
    local n = 0
    for _, name in ipairs(E.entities) do
      for _, op in ipairs(require("instantly.entities." .. name).operations) do
        local path = op.path:gsub("{[^}]+}", "x")
        for _, id in ipairs{ foreign, pending } do
          local status, body = c:request(op.method, path, as(id))
          assert.are.equal(403, status, op.id .. " " .. id)
          assert.matches("is not a sub%-workspace", body.message)
        end
        local status = c:request(op.method, path, as("not-a-uuid"))
        assert.are.equal(400, status, op.id)
        n = n + 1
      end
    end
    assert.are.equal(#require("instantly.mock.router").from_catalog().ops, n)
    -- and an empty header, or the key's own workspace, acts on the key's workspace
    local agency = get("/workspaces/current")
    assert.are.equal(agency.id, get("/workspaces/current", agency.id).id)
    assert.are.equal(agency.id, get("/workspaces/current", "").id)
  end)

  it("refuses a child once it leaves the group", function()
    local members = get("/workspace-group-members").items
    assert.are.equal(200, (c:request("DELETE", "/workspace-group-members/" .. members[1].id)))
    local status = c:request("GET", "/campaigns", as(subs[1].id))
    assert.are.equal(403, status)
  end)

  it("keys created inside a child act on that child and cannot reach the agency", function()
    local st, key = c:request("POST", "/api-keys", { body = { name = "child key", scopes = { "all:all" } },
      headers = { ["x-as-workspace"] = subs[1].id } })
    assert.are.equal(200, st)
    local k = client.new(srv.url, { api_key = key.key })
    local _, ws = k:request("GET", "/workspaces/current")
    assert.are.equal(subs[1].id, ws.id)
    local agency = get("/workspaces/current")
    assert.are.equal(403, (k:request("GET", "/campaigns", as(agency.id))))
    assert.are.equal(403, (k:request("GET", "/campaigns", as(subs[2].id))))
    k:close()
  end)

  it("moves accounts between the agency and a child", function()
    local agency = get("/workspaces/current")
    local email = get("/accounts").items[1].email
    local st = c:request("POST", "/accounts/move", { body = { emails = { email },
      source_workspace_id = agency.id, destination_workspace_id = subs[1].id } })
    assert.are.equal(200, st)
    assert.are.equal(404, (c:request("GET", "/accounts/" .. email)))
    assert.are.equal(200, (c:request("GET", "/accounts/" .. email, as(subs[1].id))))
    st = c:request("POST", "/accounts/move", { body = { emails = { email },
      source_workspace_id = subs[1].id, destination_workspace_id = pending } })
    assert.are.equal(403, st)
  end)
end)

describe("instantly.mock.server seams for other mock modules", function()
  local server = require "instantly.mock.server"

  local function call(app, method, path, body, headers)
    local h = headers or {}
    h.authorization = "Bearer " .. server.DEFAULT_API_KEY
    h["content-type"] = "application/json"
    local res = app:handle{ method = method, path = path, raw_query = "", headers = h,
      body = body and json.encode(body) or "" }
    return res.status, res.body ~= "" and json.decode(res.body) or nil
  end

  it("emits interest-status changes and campaign completion to every sink", function()
    local app = server.new{ seed = 3, rate_limits = false, quiet = true }
    local seen = {}
    app:add_sink(function(kind, data) seen[#seen + 1] = { kind, data } end)
    local _, page = call(app, "POST", "/api/v2/leads/list", { limit = 1 })
    local lead = page.items[1]
    assert.are.equal(200, (call(app, "PATCH", "/api/v2/leads/" .. lead.id, { lt_interest_status = 2 })))
    assert.are.equal(1, #seen)
    assert.are.equal("lead_interest_status", seen[1][1])
    assert.are.equal(2, seen[1][2].interest_status)
    assert.are.equal(lead.email, seen[1][2].email)
    -- the same value again changes nothing and says nothing
    call(app, "PATCH", "/api/v2/leads/" .. lead.id, { lt_interest_status = 2 })
    assert.are.equal(1, #seen)
    assert.are.equal(202, (call(app, "POST", "/api/v2/leads/update-interest-status",
      { lead_email = lead.email, interest_value = -1 })))
    assert.are.equal(2, #seen)
    assert.are.equal(2, seen[2][2].previous)
    local _, camps = call(app, "GET", "/api/v2/campaigns")
    local st, c = call(app, "POST", "/__mock/campaigns/" .. camps.items[1].id .. "/complete")
    assert.are.equal(200, st)
    assert.are.equal(3, c.status)
    assert.are.equal("campaign_completed", seen[3][1])
    assert.are.equal(camps.items[1].id, seen[3][2].campaign.id)
  end)

  it("is a no-op without sinks, and a failing sink does not fail the request", function()
    local app = server.new{ seed = 3, rate_limits = false, quiet = true }
    local _, page = call(app, "POST", "/api/v2/leads/list", { limit = 1 })
    assert.are.equal(200, (call(app, "PATCH", "/api/v2/leads/" .. page.items[1].id, { lt_interest_status = 1 })))
    app:add_sink(function() error("sink down") end)
    assert.are.equal(200, (call(app, "PATCH", "/api/v2/leads/" .. page.items[1].id, { lt_interest_status = 3 })))
  end)

  it("lets a module add control routes, with {name} segments", function()
    local app = server.new{ seed = 3, rate_limits = false, quiet = true }
    app.routes["POST /__mock/things/{id}/poke"] = function(_, _, body, params)
      return 200, { id = params.id, got = body.x }
    end
    local st, body = call(app, "POST", "/__mock/things/a%40b/poke", { x = 1 })
    assert.are.equal(200, st)
    assert.are.same({ id = "a@b", got = 1 }, body)
    assert.are.equal(404, (call(app, "POST", "/__mock/things/a/b/poke", { x = 1 })))
  end)
end)
