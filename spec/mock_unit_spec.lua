-- The mock's parts in-process: router, query parsing, times, validation,
-- cursors over collections and the request log ring.

local router = require "instantly.mock.router"
local util = require "instantly.mock.util"
local validate = require "instantly.mock.validate"
local state = require "instantly.mock.state"
local server = require "instantly.mock.server"

describe("instantly.mock.router", function()
  local r = router.from_catalog()

  local cases = {
    { "GET", "/api/v2/campaigns/analytics", "getCampaignAnalytics", {} },
    { "GET", "/api/v2/campaigns/6f1c2d4e-1111-4222-8333-444455556666", "getCampaign",
      { id = "6f1c2d4e-1111-4222-8333-444455556666" } },
    { "POST", "/api/v2/accounts/pause", "pauseAccountsBulk", {} },
    { "POST", "/api/v2/accounts/a%2Bb%40c.example/pause", "pauseAccount", { email = "a+b@c.example" } },
    { "POST", "/api/v2/supersearch-enrichment/", "createSuperSearchEnrichment", {} },
    { "GET", "/api/v2/supersearch-enrichment/ai/x/in-progress", "getAiEnrichmentForResource", { resource_id = "x" } },
    { "GET", "/api/v2/supersearch-enrichment/history/x", "getEnrichmentHistory", { resource_id = "x" } },
    { "DELETE", "/api/v2/block-lists-entries", "deleteallBlockListEntry", {} },
    { "GET", "/api/v2/oauth/session/status/abc", "getOAuthSessionStatus", { sessionId = "abc" } },
  }
  for _, c in ipairs(cases) do
    it(c[1] .. " " .. c[2] .. " -> " .. c[3], function()
      local route, params = r:match(c[1], c[2])
      assert.is_table(route)
      assert.are.equal(c[3], route.op.id)
      assert.are.same(c[4], params)
    end)
  end

  it("knows all 187 operations and tells a wrong method from an unknown path", function()
    assert.are.equal(187, #r.ops)
    local route, known = r:match("PUT", "/api/v2/campaigns")
    assert.is_nil(route)
    assert.is_true(known)
    route, known = r:match("GET", "/api/v2/nothing-here")
    assert.is_nil(route)
    assert.is_false(known)
    assert.is_nil((r:match("GET", "/api/v1/campaigns")))
    assert.is_nil((r:match("GET", "/api/v2/campaigns/")))
  end)
end)

describe("instantly.mock.util", function()
  it("parses query strings with repeated keys and escapes", function()
    assert.are.same({ a = "1", b = { "x y", "z&" }, ["k k"] = "" }, util.parse_query("a=1&b=x+y&b=z%26&k%20k="))
    assert.are.same({}, util.parse_query(""))
  end)

  it("reads ISO 8601 times and writes them back", function()
    assert.are.equal(0, util.parse_time("1970-01-01T00:00:00Z"))
    assert.are.equal(1767600000000, util.parse_time("2026-01-05T08:00:00.000Z"))
    assert.are.equal(1767600000000, util.parse_time("2026-01-05T09:00:00+01:00"))
    assert.are.equal(1767571200000, util.parse_time("2026-01-05"))
    assert.are.equal("2026-01-05T08:00:00.123Z", util.iso(1767600000123))
    assert.is_nil(util.parse_time("2026-13-01"))
    assert.is_nil(util.parse_time("yesterday"))
  end)

  it("draws the same numbers for the same seed", function()
    local a, b, c = util.rng(9), util.rng(9), util.rng(10)
    local x, y, z = {}, {}, {}
    for i = 1, 20 do x[i], y[i], z[i] = a(1000), b(1000), c(1000) end
    assert.are.same(x, y)
    assert.are_not.same(x, z)
    for _ = 1, 1000 do
      local v = a(3, 5)
      assert.is_true(v >= 3 and v <= 5)
    end
    assert.is_true(util.is_uuid(util.uuid(a)))
  end)
end)

describe("instantly.mock.validate", function()
  local op = {
    query = { { name = "limit", type = "integer", min = 1, max = 100 },
              { name = "flag", type = "boolean" }, { name = "ids", type = "array", items = "integer" } },
    body = { fields = {
      { name = "name", type = "string", required = true },
      { name = "mode", type = "string", enum = { "a", "b" } },
      { name = "opt", type = "object", fields = { { name = "n", type = "integer", required = true } } },
      { name = "tags", type = "array", items = "string" },
      { name = "maybe", type = "string", nullable = true },
    } },
  }

  it("coerces query values to their types", function()
    local q = assert(validate.query(op, { limit = "5", flag = "true", ids = { "1", "2" }, other = "x" }))
    assert.are.equal(5, q.limit)
    assert.are.equal(true, q.flag)
    assert.are.same({ 1, 2 }, { q.ids[1], q.ids[2] })
    assert.are.equal("x", q.other)
    assert.are.same({ 3, 4 }, { table.unpack(assert(validate.query(op, { ids = "3,4" })).ids) })
  end)

  local bad = {
    { { name = 1 }, "body/name must be string" },
    { {}, "body must have required property 'name'" },
    { { name = "x", mode = "c" }, "body/mode must be equal to one of the allowed values" },
    { { name = "x", opt = {} }, "body/opt must have required property 'n'" },
    { { name = "x", opt = { n = 1.5 } }, "body/opt/n must be integer" },
    { { name = "x", tags = require("instantly.mock.json").array{ "a", 2 } }, "body/tags/1 must be string" },
    { { name = "x", tags = { k = "v" } }, "body/tags must be array" },
  }
  for _, c in ipairs(bad) do
    it("rejects a body: " .. c[2], function()
      local ok, err = validate.body(op, c[1])
      assert.is_nil(ok)
      assert.are.equal(c[2], err)
    end)
  end

  it("accepts null where the catalog allows it", function()
    assert.is_true(validate.body(op, { name = "x", maybe = require("instantly.mock.json").null }))
  end)
end)

describe("instantly.mock.state collections", function()
  local store = state.new(1)
  store.seeding = true
  local coll = store:coll("email_templates")
  for i = 1, 10 do store:create("email_templates", { name = "t" .. i }) end

  it("pages forwards and backwards from any cursor, also a deleted one", function()
    local page, nxt = coll:page(3, nil)
    assert.are.same({ "t1", "t2", "t3" }, { page[1].name, page[2].name, page[3].name })
    local gone = coll:remove(page[3].id)
    assert.are.equal("t3", gone.name)
    local p2 = coll:page(3, nxt)
    assert.are.equal("t4", p2[1].name)
    local back = coll:page(5, nxt, nil, false, true)
    assert.are.same({ "t2", "t1" }, { back[1].name, back[2].name })
    local last, cur = coll:page(100, nil)
    assert.are.equal(9, #last)
    local empty, none = coll:page(100, cur)
    assert.are.equal(0, #empty)
    assert.is_nil(none)
    assert.is_nil(coll:page(3, "not-a-cursor"))
  end)

  it("finds objects by a derived key through an index that follows every change", function()
    local st = state.new(1)
    st.seeding = true
    local c = st:coll("email_templates")
    local function tag(o) return o.tag end
    local function names(t)
      local out = {}
      for i, o in ipairs(t or {}) do out[i] = o.name end
      return out
    end
    local a = st:create("email_templates", { name = "a", tag = "x" })
    st:create("email_templates", { name = "b", tag = "y" })
    local third = st:create("email_templates", { name = "c", tag = "x" })
    assert.are.same({ "a", "c" }, names(c:find_by("tag", tag, "x")))
    -- added after the index was made, by any path
    local d = c:insert(st:fill("email_templates", { name = "d", tag = "x" }))
    assert.are.same({ "a", "c", "d" }, names(c:find_by("tag", tag, "x")))
    -- removed, and changed in place away from the value: no false hits
    c:remove(a.id)
    d.tag = "z"
    assert.are.same({ "c" }, names(c:find_by("tag", tag, "x")))
    assert.is_nil(c:find_by("tag", tag, "nothing"))
    -- changed in place to a value: found once the index is dropped
    assert.are.same({ "b" }, names(c:find_by("tag", tag, "y")))
    third.tag = "y"
    c:drop_index("tag")
    assert.are.same({ "b", "c" }, names(c:find_by("tag", tag, "y")))
  end)

  it("gives strictly increasing creation times", function()
    local prev = ""
    for _, t in coll:each() do
      assert.is_true(t.timestamp_created > prev)
      prev = t.timestamp_created
    end
  end)
end)

describe("instantly.mock.server request log", function()
  it("keeps the last LOG_LIMIT requests", function()
    local saved = server.LOG_LIMIT
    server.LOG_LIMIT = 3
    local app = server.new{ seed = 1, rate_limits = false }
    for i = 1, 5 do
      app:handle{ method = "GET", path = "/api/v2/x" .. i, raw_query = "", headers = {}, body = "" }
    end
    server.LOG_LIMIT = saved
    local res = app:handle{ method = "GET", path = "/__mock/requests", raw_query = "", headers = {}, body = "" }
    local items = require("instantly.mock.json").decode(res.body).items
    assert.are.same({ "/api/v2/x3", "/api/v2/x4", "/api/v2/x5" }, { items[1].path, items[2].path, items[3].path })
    assert.are.same({ 3, 4, 5 }, { items[1].seq, items[2].seq, items[3].seq })
  end)
end)

describe("instantly.mock.reqlog", function()
  local reqlog = require "instantly.mock.reqlog"
  local function req(path, body, hb)
    return { method = "POST", path = path, raw_query = "", headers = {}, header_bytes = hb or 0, body = body }
  end

  it("keeps at most max_bytes of paths, headers and bodies, dropping the oldest", function()
    local log = reqlog.new(100, 10000)
    for i = 1, 20 do log:record(req("/p" .. i, string.rep("x", 3000), 100), true) end
    assert.is_true(log.bytes <= 10000)
    local items = log:since(0)
    assert.are.equal(3, #items)
    assert.are.equal("/p20", items[3].path)
    -- one entry larger than the cap stays alone until the next arrives
    log:record(req("/big", string.rep("y", 50000)), true)
    assert.are.same({ "/big" }, { log:since(0)[1].path, log:since(0)[2] })
  end)

  it("does not keep the body of a request that did not authenticate", function()
    local log = reqlog.new()
    log:record(req("/anon", string.rep("[", 1000)), false)
    log:record(req("/authed", '{"a":1}'), true)
    local items = log:since(0)
    assert.is_nil(items[1].body)
    assert.are.equal("unauthenticated", items[1].body_omitted)
    assert.are.equal(1000, items[1].body_bytes)
    assert.are.same({ a = 1 }, items[2].body)
    assert.is_true(log.bytes < 100)
  end)

  it("counts whole header blocks against the cap", function()
    local log = reqlog.new(50000, 64 * 1024)
    for i = 1, 10 do log:record(req("/h" .. i, "", 60 * 1024), false) end
    assert.are.equal(1, #log:since(0))
  end)
end)

describe("instantly.mock.faults globs", function()
  local faults = require "instantly.mock.faults"
  local function m(glob, s) return faults.glob_match(faults.compile(glob), s) end

  it("match the whole path; * is any run, everything else literal", function()
    for _, row in ipairs{
      { "/api/v2/emails*", "/api/v2/emails/unread/count", true },
      { "/api/v2/emails*", "/api/v2/email", false },
      { "*/unread/*", "/api/v2/emails/unread/count", true },
      { "/api/v2/emails", "/api/v2/emails", true },
      { "/api/v2/emails", "/api/v2/emails/x", false },
      { "*count", "/api/v2/emails/unread/count", true },
      { "ab*ba", "aba", false },
      { "a*b*c", "a-x-b-y-c", true },
      { "^/api/v2/.+", "^/api/v2/.+", true },   -- Lua magic is literal
      { "^/api/v2/.+", "/api/v2/emails", false },
      { "*", "", true },
    } do
      assert.are.equal(row[3], m(row[1], row[2]), row[1] .. " ~ " .. row[2])
    end
  end)

  it("cannot be made to backtrack: a hostile glob on a long path stays linear", function()
    local glob = string.rep("a*", 500) .. "b"
    local path = string.rep("a", 100000)
    -- a budget of VM instructions, not of time: a backtracking matcher
    -- would blow it by orders of magnitude
    debug.sethook(function() error("instruction budget exceeded") end, "", 200000)
    local ok, got = pcall(m, glob, path)
    debug.sethook()
    assert.is_true(ok, got)
    assert.is_false(got)
  end)

  it("are refused when longer than MAX_PATTERN, and the queue is bounded", function()
    local list = {}
    assert.is_nil((faults.add(list, { pattern = string.rep("*", faults.MAX_PATTERN + 1), status = 500 })))
    for _ = 1, faults.MAX_PENDING do assert(faults.add(list, { status = 500 })) end
    local ok, err = faults.add(list, { status = 500 })
    assert.is_nil(ok)
    assert.matches("too many pending faults", err)
  end)
end)

