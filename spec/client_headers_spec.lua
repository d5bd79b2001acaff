-- Response headers through the client: a core session is asked for the
-- raw header block and the table is filled on first use. Whatever the
-- caller does with it first (index, pairs, assignment), it sees every
-- header; errors and hooks get plain tables.
local instantly = require "instantly"
local pipeline = require "instantly.request.pipeline"
local mock = require "instantly.mock"

describe("response headers through the client", function()
  local srv, c

  setup(function()
    srv = assert(mock.start { seed = 1, rate_limits = false })
    c = instantly.new { api_key = srv.api_key, base_url = srv.url, rate_limit = false, max_retries = 0 }
  end)
  teardown(function()
    c:close()
    srv:stop()
  end)

  local function headers()
    local page, status, h = c.campaigns:list { limit = 1 }
    assert.is_table(page)
    assert.equal(200, status)
    return h
  end

  it("are complete whether first indexed, walked or assigned", function()
    local plain = {}
    for k, v in pairs(headers()) do plain[k] = v end
    assert.matches("json", plain["content-type"])
    assert.is_string(plain["content-length"])

    local h = headers()
    assert.equal(plain["content-type"], h["content-type"])
    assert.is_nil(getmetatable(h))
    assert.equal(plain["content-length"], rawget(h, "content-length"))

    h = headers()
    h.mine = "x"
    assert.equal("x", rawget(h, "mine"))
    assert.equal(plain["content-type"], rawget(h, "content-type"))

    h = headers()
    assert.equal(0, #h) -- the length fills it too (header names are not 1..n)
    assert.is_nil(getmetatable(h))
    assert.equal(plain["content-type"], rawget(h, "content-type"))
    assert.is_nil(rawget(h, 1))

    h = headers()
    assert.equal(h, pipeline.headers(h))
    assert.equal(plain["content-type"], rawget(h, "content-type"))
    assert.is_not_nil(next(h))
  end)

  it("are plain tables in errors and in on_response", function()
    local got
    local hooked = instantly.new { api_key = srv.api_key, base_url = srv.url, rate_limit = false, max_retries = 0,
      on_response = function(r) got = r.headers end }
    assert(hooked.campaigns:list { limit = 1 })
    assert.is_nil(getmetatable(got))
    assert.matches("json", rawget(got, "content-type"))
    local v, err = hooked.campaigns:get("00000000-0000-4000-8000-000000000000")
    assert.is_nil(v)
    assert.equal(404, err.status)
    assert.is_table(err.headers)
    assert.is_nil(getmetatable(err.headers))
    assert.is_not_nil(next(err.headers))
    hooked:close()
  end)
end)
