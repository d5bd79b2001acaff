-- client:as_workspace: a view acting on a sub-workspace (x-as-workspace),
-- sharing the client's connections and options, with its own rate-limit
-- budget because the API counts its limits per workspace.
local H = require "support.client_helper"

local A = "0b6f4a8e-1c2d-4e5f-8a9b-00000000000a"
local B = "0b6f4a8e-1c2d-4e5f-8a9b-00000000000b"

describe("client:as_workspace", function()
  it("sends x-as-workspace on every call of the view, and only there", function()
    local c, t = H.fake_client()
    local a = c:as_workspace(A)
    assert(a.campaigns:list())
    assert(a.leads:list { limit = 1 })
    assert(c.campaigns:list())
    assert.equal(A, t.log[1].headers["x-as-workspace"])
    assert.equal(A, t.log[2].headers["x-as-workspace"])
    assert.is_nil(t.log[3].headers["x-as-workspace"])
    assert.equal(t.log[1].headers.authorization, t.log[3].headers.authorization)
    assert.equal(A, a.workspace)
    assert.truthy(tostring(a):find("workspace " .. A, 1, true))
    assert.is_nil(tostring(a):find(H.KEY, 1, true), "the key is never shown")
  end)

  it("overrides the client's own workspace option", function()
    local c, t = H.fake_client(nil, { workspace = B })
    assert(c:as_workspace(A).campaigns:list())
    assert(c.campaigns:list())
    assert.equal(A, t.log[1].headers["x-as-workspace"])
    assert.equal(B, t.log[2].headers["x-as-workspace"])
  end)

  it("gives the same view for the same id, from the client or from another view", function()
    local c = H.fake_client()
    local a = c:as_workspace(A)
    assert.equal(a, c:as_workspace(A))
    assert.equal(a, c:as_workspace(B):as_workspace(A))
    assert.are_not.equal(a, c:as_workspace(B))
  end)

  it("shares the connections and the options (validation mode, hooks)", function()
    local said, seen = {}, 0
    local c, t = H.fake_client(nil, { validate = "warn", on_warning = function(s) said[#said + 1] = s end,
      on_request = function() seen = seen + 1 end })
    local a = c:as_workspace(A)
    assert(a.campaigns:list { status = 99 })
    assert.equal(1, #t.log, "the view uses the client's transport")
    assert.equal(1, seen)
    assert.equal(1, #said)
  end)

  it("has its own rate-limit budget: the API counts per workspace", function()
    local c, t = H.fake_client(nil, { rate_limit = { per_second = 2, per_minute = 100, max_wait = 0 } })
    local a = c:as_workspace(A)
    assert(c.campaigns:list())
    assert(c.campaigns:list())
    local v, err = c.campaigns:list()
    assert.is_nil(v)
    assert.equal("rate_limited", err.kind)
    -- the client's window is full; the workspace's is not
    assert(a.campaigns:list())
    assert(a.campaigns:list())
    local _, err2 = a.campaigns:list()
    assert.equal("rate_limited", err2.kind)
    assert.equal(4, #t.log)
    -- and asking for the view again does not hand out a fresh budget
    local _, err3 = c:as_workspace(A).campaigns:list()
    assert.equal("rate_limited", err3.kind)
  end)

  it("shares a limit counted per IP (not per workspace) with the client", function()
    -- oauth:init_google is limited to 75/min per workspace + 150/min per IP
    local c, t = H.fake_client(nil, { rate_limit = { max_wait = 0 } })
    local a, b = c:as_workspace(A), c:as_workspace(B)
    for _ = 1, 75 do assert(c.oauth:init_google()) end
    local _, err = c.oauth:init_google()
    assert.matches("75/min", tostring(err))
    for _ = 1, 75 do assert(a.oauth:init_google()) end
    -- b's workspace window is empty, but the IP's 150 are used up
    local v, err2 = b.oauth:init_google()
    assert.is_nil(v)
    assert.equal("rate_limited", err2.kind)
    assert.matches("150/min per IP", tostring(err2))
    assert.equal(150, #t.log)
  end)

  it("refuses a missing, empty or malformed id", function()
    local c = H.fake_client()
    assert.has_error(function() c:as_workspace() end,
      "instantly: client:as_workspace: id must be a non-empty string without control characters, got nothing")
    assert.has_error(function() c:as_workspace("") end,
      'instantly: client:as_workspace: id must be a non-empty string without control characters, got ""')
    assert.has_error(function() c:as_workspace("a\r\nx-evil: 1") end)
    assert.has_error(function() c:as_workspace(42) end,
      "instantly: client:as_workspace: id must be a non-empty string without control characters, got number")
  end)

  it("closing a view leaves the client's connections open (against the mock)", function()
    local srv = H.mock()
    local c = H.mock_client(srv, { max_retries = 0 })
    local ok, err = pcall(function()
      local members = assert(c.workspace_group_members:list())
      local id = members.items[1] and members.items[1].sub_workspace_id or A
      local a = c:as_workspace(id)
      a:close()
      assert(c.campaigns:list { limit = 1 })
      c:close()
    end)
    srv:stop()
    assert(ok, err)
  end)
end)
