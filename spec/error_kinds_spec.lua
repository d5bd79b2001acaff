-- The kinds of instantly.Error are listed once (instantly.request.error.KINDS) and
-- checked when an error is built, so a module cannot invent a kind users
-- do not know to compare against.
local Err = require "instantly.request.error"
local instantly = require "instantly"

describe("error kinds", function()
  it("Error.new refuses a kind that is not listed, naming the known ones", function()
    local ok, msg = pcall(Err.new, "oops", { message = "x" })
    assert.is_false(ok)
    assert.matches("unknown kind 'oops' %(known: api, checkpoint, csv, decode, export, failed, http, limit, " ..
      "preflight, rate_limited, task, timeout, transport, webhook%)", msg)
    assert.has_error(function() Err.new { message = "no kind" } end)
    assert.has_error(function() Err.new("http", "not a table") end,
      "instantly.error.new: fields must be a table, got string")
  end)

  it("takes both stable forms and keeps the fields", function()
    for kind in pairs(Err.KINDS) do
      local a = Err.new(kind, { message = "m", extra = 1 })
      local b = Err.new { kind = kind, message = "m", extra = 1 }
      assert.is_true(instantly.is_error(a) and instantly.is_error(b))
      assert.equal(kind, a.kind)
      assert.equal(kind, b.kind)
      assert.equal(1, a.extra)
      assert.equal(tostring(a), tostring(b))
    end
  end)

  it("never prints HTTP nil, nor a code twice", function()
    assert.equal("instantly: GET /api/v2/x: rate_limited: client-side limit",
      tostring(Err.new("rate_limited", { method = "GET", path = "/api/v2/x", message = "client-side limit" })))
    assert.equal("instantly: api: a page without an 'items' array",
      tostring(Err.new("api", { message = "a page without an 'items' array" })))
    -- an error in a 200 body with only a code
    assert.equal("instantly: POST /api/v2/y: API error in HTTP 200 quota_exceeded",
      tostring(Err.new("api", { status = 200, code = "quota_exceeded", message = "quota_exceeded",
                                method = "POST", path = "/api/v2/y" })))
    assert.equal("instantly: POST /api/v2/y: API error in HTTP 200 quota_exceeded: wait an hour",
      tostring(Err.new("api", { status = 200, code = "quota_exceeded", message = "wait an hour",
                                method = "POST", path = "/api/v2/y" })))
    assert.equal("instantly: GET /z: HTTP 400 Bad Request: bad cursor",
      tostring(Err.new("http", { status = 400, code = "Bad Request", message = "bad cursor",
                                 method = "GET", path = "/z" })))
    for kind in pairs(Err.KINDS) do
      assert.is_nil(tostring(Err.new(kind, { message = "m" })):find("nil", 1, true), kind)
    end
  end)
end)
