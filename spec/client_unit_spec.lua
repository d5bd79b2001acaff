-- The client against an injected transport: options, calling convention,
-- validation, records, pages, errors, retries, hooks, redaction, the
-- scheduler hook and extensions. No network.
local instantly = require "instantly"
local core = require "instantly.core"
local H = require "support.client_helper"
local C1 = "00000000-0000-4000-8000-0000000000c1"
local C2 = "00000000-0000-4000-8000-0000000000c2"
local L1 = "00000000-0000-4000-8000-0000000000b1"
local L2 = "00000000-0000-4000-8000-0000000000b2"
local NOPE = "00000000-0000-4000-8000-00000000dead"
local W1 = "00000000-0000-4000-8000-0000000000a1"

local JSON = { ["content-type"] = "application/json" }
-- The client's default base URL: only ever seen here by the injected fake
-- transport, which records requests and sends nothing.
local DEFAULT_BASE = "https://api.instantly.ai"

describe("instantly module", function()
  it("has instantly.json and instantly.sleep as public API", function()
    local text = assert(instantly.json.encode { a = instantly.array {}, n = 9007199254740993, z = instantly.null })
    local v = assert(instantly.json.decode(text))
    assert.equal(9007199254740993, v.n)
    assert.equal(instantly.null, v.z)
    assert.equal("[]", instantly.json.encode(v.a))
    local bad, err = instantly.json.decode("{nope")
    assert.is_nil(bad)
    assert.is_string(err)
    local none, eerr = instantly.json.encode { f = print }
    assert.is_nil(none)
    assert.is_string(eerr)
    assert.has_error(function() instantly.json.decode(42) end,
      "instantly.json.decode: text must be a string, got number")
    instantly.sleep(0)
    assert.has_error(function() instantly.sleep(-1) end, "instantly.sleep: seconds must be a number >= 0")
  end)

  it("exposes VERSION, null, array and Error", function()
    assert.equal(core.VERSION, instantly.VERSION)
    assert.equal(core.null, instantly.null)
    assert.equal("[]", core.json_encode(instantly.array({})))
    assert.is_table(instantly.Error)
  end)
end)

describe("instantly.new", function()
  it("refuses unknown options, naming them", function()
    assert.has_error(function() instantly.new { api_key = "k", tiemout = 3 } end,
      "instantly.new: unknown option 'tiemout' (known: api_key, base_url, ca_file, ca_path, connect_timeout, "
      .. "extensions, headers, max_response_bytes, max_retries, on_request, on_response, on_wait, on_warning, "
      .. "proxy, rate_limit, retry, timeout, transport, user_agent, validate, workspace, write_max_idle)")
  end)

  it("checks option types", function()
    assert.has_error(function() instantly.new { api_key = "k", max_retries = -1 } end,
      "instantly.new: option 'max_retries' must be an integer >= 0")
    assert.has_error(function() instantly.new { api_key = "k", retry = { bas = 1 } } end,
      "instantly.new: unknown key 'bas' in option 'retry' (known: base, cap, max_retry_after)")
    assert.has_error(function() instantly.new { api_key = "k", rate_limit = { per_second = 0 } } end,
      "instantly.new: option 'rate_limit.per_second' must be an integer > 0")
    assert.has_error(function() instantly.new { api_key = "k", base_url = "ftp://x" } end,
      "instantly.new: option 'base_url' must be an http:// or https:// URL")
    assert.has_error(function() instantly.new { api_key = "k", transport = {} } end,
      "instantly.new: option 'transport' must be an object with a request(req) method")
    assert.has_error(function() instantly.new { api_key = "k", headers = { Authorization = "x" } } end,
      "instantly.new: option 'headers' must not set authorization (use api_key)")
  end)

  it("explains how to provide a missing key", function()
    if os.getenv("INSTANTLY_API_KEY") then return end
    local ok, err = pcall(instantly.new, { transport = H.fake(H.const(200, "{}")) })
    assert.is_false(ok)
    assert.matches("no API key", err)
    assert.matches("INSTANTLY_API_KEY", err)
  end)

  it("blames the caller's line for misuse", function()
    local ok, err = pcall(function() instantly.new { nope = true } end)
    assert.is_false(ok)
    assert.matches("client_unit_spec.lua:%d+: instantly.new: unknown option 'nope'", err)
  end)

  it("never shows the key in tostring", function()
    local c = H.fake_client()
    local s = tostring(c)
    assert.not_matches(H.KEY, s, 1, true)
    assert.equal("instantly.Client(" .. DEFAULT_BASE .. ", key inst…XYZ)", s)
  end)

  it("sends auth, workspace, user agent and extra headers", function()
    local c, t = H.fake_client(nil, { workspace = "ws-1", headers = { ["X-Trace"] = "t1" }, user_agent = "myapp/2" })
    assert(c.workspaces:get())
    local h = t.log[1].headers
    assert.equal("Bearer " .. H.KEY, h.authorization)
    assert.equal("ws-1", h["x-as-workspace"])
    assert.equal("t1", h["x-trace"])
    assert.matches("^instantly%-lua/" .. core.VERSION:gsub("%.", "%%.") .. " .* myapp/2$", h["user-agent"])
    assert.equal(DEFAULT_BASE .. "/api/v2/workspaces/current", t.log[1].url)
  end)

  it("uses base_url without a trailing slash", function()
    local c, t = H.fake_client(nil, { base_url = "http://127.0.0.1:9/" })
    assert(c.workspaces:get())
    assert.equal("http://127.0.0.1:9/api/v2/workspaces/current", t.log[1].url)
  end)
end)

describe("calling convention", function()
  local c, t
  before_each(function()
    c, t = H.fake_client(H.const(200, '{"id":"00000000-0000-4000-8000-0000000000c1","email":"a@b.c"}', JSON))
  end)

  it("puts path arguments in the path, percent-encoded", function()
    assert(c.accounts:get("jane+1/x@acme.io"))
    assert.equal(DEFAULT_BASE .. "/api/v2/accounts/jane%2B1%2Fx%40acme.io", t.log[1].url)
    assert(c.background_jobs:get("j 1/?#%"))
    assert.equal("GET", t.log[2].method)
    assert.equal(DEFAULT_BASE .. "/api/v2/background-jobs/j%201%2F%3F%23%25", t.log[2].url)
    assert.is_nil(t.log[2].body)
  end)

  it("routes query parameters to the query string in catalog order", function()
    assert(c.campaigns:list { status = 1, limit = 10, search = "a b&c" })
    assert.equal(DEFAULT_BASE .. "/api/v2/campaigns?limit=10&search=a%20b%26c&status=1", t.log[1].url)
  end)

  it("repeats array query parameters", function()
    assert(c.analytics:campaign { ids = { "a", "b" } })
    assert.equal(DEFAULT_BASE .. "/api/v2/campaigns/analytics?ids=a&ids=b", t.log[1].url)
  end)

  it("routes body parameters to a JSON body", function()
    assert(c.campaigns:update(C1, { name = "New", daily_limit = 50 }))
    assert.equal("PATCH", t.log[1].method)
    assert.same({ name = "New", daily_limit = 50 }, t.log[1].json)
    assert.equal("application/json", t.log[1].headers["content-type"])
  end)

  it("sends empty Lua tables declared as arrays as []", function()
    assert(c.leads:add_many { leads = {}, campaign_id = C1 })
    assert.matches('"leads":%[%]', t.log[1].body)
  end)

  it("sends empty nested arrays the catalog describes as []", function()
    local schedule = { schedules = {} }
    assert(c.campaigns:update(C1, { campaign_schedule = schedule }))
    assert.matches('"schedules":%[%]', t.log[1].body)
    assert.is_nil(getmetatable(schedule.schedules), "the caller's table is left alone")
  end)

  it("sends instantly.null for nullable fields", function()
    assert(c.campaigns:update(C1, { daily_limit = instantly.null }))
    assert.matches('"daily_limit":null', t.log[1].body)
  end)

  it("sends POST /leads/list paging in the body", function()
    assert(c.leads:list { campaign = C1, limit = 5 })
    assert.equal(DEFAULT_BASE .. "/api/v2/leads/list", t.log[1].url)
    assert.same({ campaign = C1, limit = 5 }, t.log[1].json)
  end)

  it("takes per-call options after the parameters", function()
    assert(c.campaigns:get(C1, nil, { timeout = 3, headers = { ["X-One"] = "1" } }))
    assert.equal(3, t.log[1].timeout)
    assert.equal("1", t.log[1].headers["x-one"])
    assert.equal("Bearer " .. H.KEY, t.log[1].headers.authorization)
  end)

  local misuse = {
    { "unknown parameter", function() c.campaigns:list { lmit = 1 } end,
      "instantly: campaigns:list: unknown parameter 'lmit' (known: ai_sales_agent_id, exclude_status, limit, search, "
      .. "sort_column, sort_order, starting_after, status, tag_ids)" },
    { "wrong type", function() c.campaigns:list { limit = "10" } end,
      "instantly: campaigns:list: limit: must be an integer, got string" },
    { "out of range", function() c.campaigns:list { limit = 1000 } end,
      "instantly: campaigns:list: limit: must be at most 100, got 1000" },
    { "bad enum", function() c.campaigns:list { status = 7 } end,
      "instantly: campaigns:list: status: 7 is not one of -99, -1, -2, 0, 1, 2, 3, 4" },
    { "missing required", function() c.campaigns:create { name = "x" } end,
      "instantly: campaigns:create: missing required parameter 'campaign_schedule'" },
    { "missing path argument", function() c.campaigns:get() end,
      "instantly: campaigns:get: path parameter 'id' (argument #1) must be a string, got nothing" },
    { "empty path argument", function() c.campaigns:get("") end,
      "instantly: campaigns:get: path parameter 'id' (argument #1) must not be empty" },
    { "dot call", function() c.campaigns.get(C1) end,
      "instantly: call it with a colon: client.campaigns:get(...)" },
    { "array expected", function() c.leads:add_many { leads = "x" } end,
      "instantly: leads:add_many: leads: must be an array (a sequence table), got string" },
    { "array element type", function() c.accounts:pause_many { emails = { "a@b.c", 5 } } end,
      "instantly: accounts:pause_many: emails[2]: must be a string, got integer" },
    { "object expected", function() c.campaigns:update(C1, { campaign_schedule = { 1, 2 } }) end,
      "instantly: campaigns:update: campaign_schedule: must be an object (a table with string keys), "
      .. "got array" },
    { "null where not nullable", function() c.campaigns:update(C1, { name = instantly.null }) end,
      "instantly: campaigns:update: name: cannot be null" },
    { "parameters on an operation without any", function() c.campaigns:activate(C1, { x = 1 }) end,
      "instantly: campaigns:activate: unknown option 'x' (known: connect_timeout, headers, max_retries, "
      .. "timeout, validate); "
      .. "this operation takes no parameters: the table after its path arguments is the options" },
    { "parameters and options on an operation without parameters",
      function() c.campaigns:activate(C1, { x = 1 }, {}) end,
      "instantly: campaigns:activate: unknown parameter 'x' (this operation takes none)" },
    { "a dot segment as a path argument", function() c.background_jobs:get("..") end,
      "instantly: background_jobs:get: path parameter 'id' (argument #1) must not be '..' "
      .. "(a dot segment would address another endpoint)" },
    { "a path argument that is not a uuid", function() c.campaigns:delete("c1") end,
      "instantly: campaigns:delete: path parameter 'id' (argument #1) must be a uuid, got \"c1\"" },
    { "a path argument that is not an email", function() c.accounts:pause(".") end,
      "instantly: accounts:pause: path parameter 'email' (argument #1) must not be '.' "
      .. "(a dot segment would address another endpoint)" },
    { "unknown per-call option", function() c.campaigns:get(C1, nil, { retries = 1 }) end,
      "instantly: campaigns:get: unknown option 'retries' (known: connect_timeout, headers, max_retries, "
      .. "timeout, validate); "
      .. "this operation takes no parameters: the table after its path arguments is the options" },
    { "authorization in per-call headers",
      function() c.campaigns:get(C1, nil, { headers = { Authorization = "x" } }) end,
      "instantly: campaigns:get: option 'headers' must not set authorization" },
    { "bad per-call option", function() c.campaigns:get(C1, nil, { max_retries = 1.5 }) end,
      "instantly: campaigns:get: option 'max_retries' must be an integer >= 0" },
  }
  for _, case in ipairs(misuse) do
    it("raises on misuse: " .. case[1], function()
      local ok, err = pcall(case[2])
      assert.is_false(ok)
      -- blamed on this file, the caller
      assert.matches("client_unit_spec%.lua:%d+: ", err)
      assert.equal(case[3], (err:gsub("^.-client_unit_spec%.lua:%d+: ", "")))
      assert.equal(0, #t.log, "nothing may be sent")
    end)
  end
end)

describe("what a client loads", function()
  -- In a fresh process: package.loaded of this one has everything.
  local function fresh(script)
    local f = assert(io.popen("lua5.4 -e " .. ("%q"):format(
      "package.path = './lua/?.lua;./lua/?/init.lua;' .. package.path; " ..
      "package.cpath = './build/?.so;' .. package.cpath; " .. script) .. " 2>&1"))
    local out = f:read("a")
    f:close()
    return out
  end

  it("is only the entities it uses, and the extensions of those", function()
    local out = fresh([[
      local instantly = require "instantly"
      local t = { request = function() return 200, '{"id":"x","name":"W"}', {} end }
      local c = instantly.new { api_key = "k", transport = t, rate_limit = false }
      assert(c.workspaces:get())
      local names = {}
      for k in pairs(package.loaded) do
        if k:match("^instantly%.entities%.") or k:match("^instantly%.workflows%.") then names[#names + 1] = k end
      end
      table.sort(names)
      print(table.concat(names, " "))]])
    -- the client's own extension (gather) and the one entity called
    assert.equal("instantly.entities.workspaces instantly.workflows.extra.client instantly.workflows.gather\n", out)
  end)

  it("loads the one entity whose items an operation answers with, not the whole catalog", function()
    -- leads:move and accounts:enable_warmup answer with Background Jobs:
    -- building leads or accounts needs that entity's definition, found by
    -- the index's lua_names (loading all 32 files made the first use of
    -- client.leads ~17 ms instead of ~6)
    for _, ent in ipairs { "leads", "accounts" } do
      local out = fresh(([[
        local instantly = require "instantly"
        local t = { request = function() return 200, '{"id":"j1","status":"pending"}', {} end }
        local c = instantly.new { api_key = "k", transport = t, rate_limit = false }
        assert(c.%s)
        local names = {}
        for k in pairs(package.loaded) do
          if k:match("^instantly%%.entities%%.") then names[#names + 1] = k end
        end
        table.sort(names)
        print(table.concat(names, " "))]]):format(ent))
      local want = { "instantly.entities.background_jobs", "instantly.entities." .. ent }
      table.sort(want)
      assert.equal(table.concat(want, " ") .. "\n", out)
    end
  end)

  -- Reading a record's absent field (a null, left out) goes through the
  -- record methods' __index but is not a use of its relations: it once
  -- loaded all 32 entity files (~13 ms, ~760 KB).
  it("finds a record's relations, docs and other entities' items when they are first used", function()
    local out = fresh([[
      local instantly = require "instantly"
      local C = "00000000-0000-4000-8000-0000000000c1"
      local t = { request = function(_, req)
        if req.url:find("/leads/list", 1, true) then return 200, '{"items":[{"id":"l1","email":"a@b.io"}]}', {} end
        if req.url:find("/warmup/enable", 1, true) then return 200, '{"id":"j1","status":"pending"}', {} end
        return 200, '{"id":"' .. C .. '","name":"A","pl_value":null}', {}
      end }
      local c = instantly.new { api_key = "k", transport = t, rate_limit = false }
      local camp = assert(c.campaigns:get(C))
      assert(camp.pl_value == nil and camp.no_such_field == nil and camp[1] == nil and camp[true] == nil)
      local files = 0
      for k in pairs(package.loaded) do if k:match("^instantly%.entities%.") then files = files + 1 end end
      assert(files == 1, files .. " entity files loaded by reading absent fields")
      local lead = camp:leads()()
      assert(lead.email == "a@b.io" and getmetatable(lead) == c.leads.record_mt, "a lead record")
      local seen = {}
      for k in pairs(c.accounts.record_mt.__methods) do seen[k] = true end
      assert(seen.pause and seen.resume, "record methods walked with pairs")
      assert(c.accounts.docs.enable_warmup.returns:find("background_jobs record", 1, true))
      local job = assert(c.accounts:enable_warmup { emails = { "a@b.io" } })
      assert(getmetatable(job) == c.background_jobs.record_mt, "an item of another entity")
      print("ok")]])
    assert.equal("ok\n", out)
  end)

  it("of the SDK's own extensions, none takes a name the builder generates", function()
    -- loaded one by one as entities are built; checked together here
    local builder = require "instantly.request.builder"
    local mods = builder.static_extensions()
    for _, n in ipairs(require("instantly.entities").extensions) do
      assert.equal(require("instantly.workflows.extra." .. n), mods[n])
      assert.equal(mods[n], builder.static_extension(n))
    end
    assert.is_nil(builder.static_extension("workspaces"))
  end)
end)

describe("records", function()
  it("are plain data with the entity's methods", function()
    local c, t = H.fake_client(H.const(200, '{"id":"' .. C1 .. '","name":"A","status":0}', JSON))
    local camp = assert(c.campaigns:get(C1))
    local keys = {}
    for k in pairs(camp) do keys[#keys + 1] = k end
    table.sort(keys)
    assert.same({ "id", "name", "status" }, keys)
    assert.same(core.json_decode('{"id":"' .. C1 .. '","name":"A","status":0}'),
      core.json_decode(core.json_encode(camp)))
    assert(camp:activate())
    assert(camp:pause())
    assert(camp:update { name = "B" })
    assert(camp:delete())
    assert.equal("POST " .. DEFAULT_BASE .. "/api/v2/campaigns/" .. C1 .. "/activate", t.log[2].method .. " "
      .. t.log[2].url)
    assert.equal("POST " .. DEFAULT_BASE .. "/api/v2/campaigns/" .. C1 .. "/pause", t.log[3].method .. " "
      .. t.log[3].url)
    assert.equal("PATCH", t.log[4].method)
    assert.same({ name = "B" }, t.log[4].json)
    assert.equal("DELETE " .. DEFAULT_BASE .. "/api/v2/campaigns/" .. C1, t.log[5].method .. " " .. t.log[5].url)
    assert.equal(c, instantly.client_of(camp))
    assert.equal(c.campaigns, instantly.entity_of(camp))
  end)

  it("use the email for accounts", function()
    local c, t = H.fake_client(H.const(200, '{"email":"jane+1@acme.io","status":1}', JSON))
    local acc = assert(c.accounts:get("jane+1@acme.io"))
    assert(acc:pause())
    assert.equal(DEFAULT_BASE .. "/api/v2/accounts/jane%2B1%40acme.io/pause", t.log[2].url)
  end)

  it("webhook:test and lead:update exist", function()
    local c, t = H.fake_client(H.const(200, '{"id":"00000000-0000-4000-8000-0000000000a1"}', JSON))
    local w = assert(c.webhooks:get(W1))
    assert(w:test())
    assert.equal(DEFAULT_BASE .. "/api/v2/webhooks/00000000-0000-4000-8000-0000000000a1/test", t.log[2].url)
    local lead = assert(c.leads:get(L1))
    assert.is_function(lead.update)
  end)

  it("campaign:leads() iterates the campaign's leads", function()
    local c, t = H.fake_client(function(req)
      if req.url:find("/leads/list", 1, true) then
        local b = core.json_decode(req.body)
        if b.starting_after == nil then
          return 200, '{"items":[{"id":"' .. L1 .. '"},{"id":"' .. L2 .. '"}],"next_starting_after":"' .. L2
            .. '"}', JSON
        end
        return 200, '{"items":[],"next_starting_after":"00000000-0000-4000-8000-0000000000b2"}', JSON
      end
      return 200, '{"id":"00000000-0000-4000-8000-0000000000c1"}', JSON
    end)
    local camp = assert(c.campaigns:get(C1))
    local ids = {}
    for lead in camp:leads { limit = 2 } do ids[#ids + 1] = lead.id end
    assert.same({ L1, L2 }, ids)
    assert.same({ campaign = C1, limit = 2 }, t.log[2].json)
    assert.same({ campaign = C1, limit = 2, starting_after = L2 }, t.log[3].json)
  end)

  it("a record without its id refuses the call", function()
    local c = H.fake_client(H.const(200, '{"name":"no id"}', JSON))
    local camp = assert(c.campaigns:get(C1))
    assert.has_error(function() camp:activate() end, "instantly: campaigns:activate: the record has no 'id'")
  end)

  it("background jobs returned by async operations are records", function()
    local c = H.fake_client(H.const(200, '{"id":"j1","status":"pending"}', JSON))
    local job = assert(c.leads:move { ids = { L1 }, to_campaign_id = C2 })
    assert.equal(c.background_jobs, instantly.entity_of(job))
    assert.is_function(job.get)
  end)
end)

describe("pages", function()
  local function pager(pages)
    return function(req)
      local cur = req.url:match("starting_after=([^&]+)") or "first"
      return 200, pages[cur], JSON
    end
  end

  it("list returns one page with next()", function()
    local c = H.fake_client(pager {
      first = '{"items":[{"id":"a"},{"id":"b"}],"next_starting_after":"b"}',
      b = '{"items":[{"id":"c"}],"next_starting_after":"c"}',
      c = '{"items":[],"next_starting_after":"c"}',
    })
    local p = assert(c.campaigns:list { limit = 2 })
    assert.equal(2, #p.items)
    assert.equal("b", p.next_starting_after)
    assert.is_true(p:has_next())
    local keys = {}
    for k in pairs(p) do keys[#keys + 1] = k end
    table.sort(keys)
    assert.same({ "items", "next_starting_after" }, keys)
    local p2 = assert(p:next())
    assert.equal("c", p2.items[1].id)
    assert.is_function(p2.items[1].activate)
    local p3 = assert(p2:next())
    assert.equal(0, #p3.items)
    assert.is_nil(p3:next())
  end)

  it("each goes on past a short page and stops on an empty one", function()
    local c, t = H.fake_client(pager {
      first = '{"items":[{"id":"a"}],"next_starting_after":"a"}',
      a = '{"items":[{"id":"b"},{"id":"c"}],"next_starting_after":"c"}',
      c = '{"items":[],"next_starting_after":"00000000-0000-4000-8000-0000000000c2"}',
    })
    local ids = {}
    for camp in c.campaigns:each { limit = 2 } do ids[#ids + 1] = camp.id end
    assert.same({ "a", "b", "c" }, ids)
    assert.equal(3, #t.log)
  end)

  it("each stops on a missing cursor", function()
    local c, t = H.fake_client(pager { first = '{"items":[{"id":"a"}]}' })
    local n = 0
    for _ in c.campaigns:each() do n = n + 1 end
    assert.equal(1, n)
    assert.equal(1, #t.log)
  end)

  it("a failed page ends the loop; the error is in it.err, not raised", function()
    local c = H.fake_client(function(req)
      if req.url:find("starting_after", 1, true) then
        return 400, '{"statusCode":400,"error":"Bad Request","message":"bad cursor"}', JSON
      end
      return 200, '{"items":[{"id":"a"}],"next_starting_after":"a"}', JSON
    end)
    local seen = {}
    local it = c.campaigns:each()
    for camp in it do seen[#seen + 1] = camp.id end
    local err = it.err
    assert.same({ "a" }, seen)
    assert.is_true(instantly.is_error(err))
    assert.equal("http", err.kind)
    assert.equal(400, err.status)
    assert.equal("bad cursor", err.message)
  end)

  it("a cursor that does not advance is an error, not an endless loop", function()
    local c = H.fake_client(H.const(200, '{"items":[{"id":"a"}],"next_starting_after":"a"}', JSON))
    local it = c.campaigns:each()
    local n = 0
    for _ in it do n = n + 1 end
    assert.equal(2, n) -- the first page, then the page for cursor "a"; "a" again is the cycle
    assert.equal("api", it.err.kind)
    assert.matches("sent cursor 'a' again", tostring(it.err))
  end)

  it("options go right after the path arguments when an operation has no parameters", function()
    local c, t = H.fake_client(H.const(200, '{"id":"00000000-0000-4000-8000-0000000000c1"}', JSON))
    local camp = assert(c.campaigns:get(C1, { timeout = 5 }))
    assert.equal(5, t.log[1].timeout)
    assert(camp:pause { timeout = 4 })
    assert.equal(4, t.log[2].timeout)
    assert(camp:pause(nil, { timeout = 3 }))
    assert.equal(3, t.log[3].timeout)
    assert(c.campaigns:activate(C1, { max_retries = 0, timeout = 2 }))
    assert.equal(2, t.log[4].timeout)
  end)

  it("each checks its arguments at the call", function()
    local c = H.fake_client()
    assert.has_error(function() c.campaigns:each { bogus = 1 } end,
      "instantly: campaigns:list: unknown parameter 'bogus' (known: ai_sales_agent_id, exclude_status, limit, "
      .. "search, sort_column, sort_order, starting_after, status, tag_ids)")
  end)

  it("every paginated operation has an iterator", function()
    local c = H.fake_client()
    assert.is_function(c.dfy_email_account_orders.each_accounts)
    assert.is_function(c.account_campaign_mappings.each)
    assert.is_function(c.leads.each)
  end)
end)

describe("responses and errors", function()
  it("202 gives the decoded body or true, with the status", function()
    local c = H.fake_client(H.const(202, "", {}))
    local v, status = c.leads:update_interest_status { lead_email = "a@b.c", interest_value = 1 }
    assert.is_true(v)
    assert.equal(202, status)
    c = H.fake_client(H.const(202, '{"status":"queued"}', JSON))
    v, status = c.leads:assign_many { organization_user_ids = { "u1" } }
    assert.equal("queued", v.status)
    assert.equal(202, status)
  end)

  it("204 gives true", function()
    local c = H.fake_client(H.const(204, "", {}))
    local v, status = c.campaigns:share(C1)
    assert.is_true(v)
    assert.equal(204, status)
  end)

  it("text responses give the string", function()
    local c = H.fake_client(H.const(200, "value\na.com\n", { ["content-type"] = "text/csv" }))
    assert.equal("value\na.com\n", c.block_list_entries:download())
  end)

  it("HTTP errors carry status, code, message, body, request id", function()
    local c = H.fake_client(H.const(404, '{"statusCode":404,"error":"Not Found","message":"Campaign not found"}',
      { ["content-type"] = "application/json", ["x-request-id"] = "req-9" }))
    local v, err = c.campaigns:get(NOPE)
    assert.is_nil(v)
    assert.equal("http", err.kind)
    assert.equal(404, err.status)
    assert.equal("Not Found", err.code)
    assert.equal("Campaign not found", err.message)
    assert.equal("GET", err.method)
    assert.equal("/api/v2/campaigns/00000000-0000-4000-8000-00000000dead", err.path)
    assert.equal("req-9", err.request_id)
    assert.equal(1, err.attempts)
    assert.equal(404, err.body.statusCode)
    assert.equal("instantly: GET /api/v2/campaigns/" .. NOPE
      .. ": HTTP 404 Not Found: Campaign not found [request id req-9]",
      tostring(err))
  end)

  it("an error inside a 200 body is kind api", function()
    local c = H.fake_client(H.const(200, '{"error":"Sending failed","message":"account paused"}', JSON))
    local v, err = c.emails:send_test { eaccount = "a@b.c", to_address_email_list = "x@y.z", subject = "s",
                                        body = { html = "<p>t</p>" } }
    assert.is_nil(v)
    assert.equal("api", err.kind)
    assert.equal(200, err.status)
    assert.equal("Sending failed", err.code)
    assert.equal("account paused", err.message)
  end)

  it("a declared error field is data, not an error", function()
    local c = H.fake_client(H.const(200, '{"status":"error","error":"denied"}', JSON))
    local v = assert(c.oauth:session_status("s1"))
    assert.equal("denied", v.error)
  end)

  it("invalid JSON is a decode error", function()
    local c = H.fake_client(H.const(200, '{"id": ', JSON))
    local v, err = c.campaigns:get(C1)
    assert.is_nil(v)
    assert.equal("decode", err.kind)
    assert.equal(200, err.status)
  end)

  it("transport failures are transport or timeout errors", function()
    local c = H.fake_client(function() return nil, { kind = "tls", message = "bad certificate" } end)
    local _, err = c.campaigns:get(C1)
    assert.equal("transport", err.kind)
    assert.equal("tls", err.transport_kind)
    c = H.fake_client(function() return nil, { kind = "timeout", message = "timed out" } end, { max_retries = 0 })
    _, err = c.campaigns:get(C1)
    assert.equal("timeout", err.kind)
  end)

  it("never put the key in an error", function()
    local c = H.fake_client(H.const(401, '{"error":"Unauthorized","message":"bad key ' .. H.KEY .. '"}', JSON))
    local _, err = c.campaigns:get(C1)
    assert.equal(401, err.status)
    assert.is_nil(tostring(err):find(H.KEY, 1, true))
    assert.is_nil(err.message:find(H.KEY, 1, true))
    assert.is_nil(err.body.message:find(H.KEY, 1, true))
  end)
end)

describe("retries", function()
  local function seq(list)
    return function(_, n)
      local r = list[math.min(n, #list)]
      if r[1] == nil then return nil, r[2] end
      return r[1], r[2], r[3] or JSON
    end
  end

  it("GET is retried on 503 and succeeds", function()
    local c, t = H.fake_client(seq { { 503, "{}" }, { 502, "{}" }, { 200, '{"id":"' .. C1 .. '"}' } })
    local v = assert(c.campaigns:get(C1))
    assert.equal(C1, v.id)
    assert.equal(3, #t.log)
  end)

  it("gives up after max_retries and reports the attempts", function()
    local c, t = H.fake_client(seq { { 503, '{"error":"Service Unavailable"}' } }, { max_retries = 2 })
    local _, err = c.campaigns:get(C1)
    assert.equal(3, #t.log)
    assert.equal(3, err.attempts)
    assert.equal(503, err.status)
  end)

  it("per-call max_retries overrides the client's", function()
    local c, t = H.fake_client(seq { { 503, "{}" } }, { max_retries = 5 })
    assert.is_nil(c.campaigns:get(C1, nil, { max_retries = 0 }))
    assert.equal(1, #t.log)
  end)

  it("a POST that reached the server is not repeated (503, timeout)", function()
    local c, t = H.fake_client(seq { { 503, "{}" } })
    local _, err = c.campaigns:activate(C1)
    assert.equal(503, err.status)
    assert.equal(1, #t.log)
    c, t = H.fake_client(seq { { nil, { kind = "timeout", message = "slow" } } })
    _, err = c.campaigns:activate(C1)
    assert.equal("timeout", err.kind)
    assert.equal(1, #t.log)
    c, t = H.fake_client(seq { { 502, "{}" } })
    assert.is_nil(c.campaigns:update(C1, { name = "x" }))
    assert.equal(1, #t.log, "PATCH is not repeated either")
  end)

  it("a POST is repeated after connect failures and 429", function()
    local c, t = H.fake_client(seq { { nil, { kind = "connect", message = "refused" } },
                                     { nil, { kind = "dns", message = "no host" } },
                                     { 200, '{"id":"00000000-0000-4000-8000-0000000000c1"}' } })
    assert(c.campaigns:activate(C1))
    assert.equal(3, #t.log)
    c, t = H.fake_client(seq { { 429, '{"error":"Too Many Requests"}', { ["retry-after"] = "0" } },
                               { 200, '{"id":"00000000-0000-4000-8000-0000000000c1"}' } })
    assert(c.campaigns:activate(C1))
    assert.equal(2, #t.log)
  end)

  it("DELETE and GET are retried after a timeout", function()
    local c, t = H.fake_client(seq { { nil, { kind = "timeout", message = "slow" } }, { 200, '{"id":"' .. C1
      .. '"}' } })
    assert(c.campaigns:delete(C1))
    assert.equal(2, #t.log)
  end)

  it("honours Retry-After and reports the wait through on_wait", function()
    local waits = {}
    local c = H.fake_client(seq { { 429, "{}", { ["retry-after"] = "0.01" } }, { 200, "{}" } },
      { on_wait = function(w) waits[#waits + 1] = w end })
    assert(c.workspaces:get())
    assert.equal(1, #waits)
    assert.equal("retry", waits[1].reason)
    assert.equal(0.01, waits[1].seconds)
  end)

  it("a Retry-After beyond max_retry_after is returned, not waited for", function()
    local c, t = H.fake_client(seq { { 429, '{"error":"Too Many Requests"}', { ["retry-after"] = "3600" } } })
    local _, err = c.workspaces:get()
    assert.equal("rate_limited", err.kind)
    assert.equal(3600, err.retry_after)
    assert.equal(1, #t.log)
  end)

  it("reads Retry-After as seconds or an HTTP date", function()
    local pipeline = require "instantly.request.pipeline"
    assert.equal(7, pipeline.retry_after("7"))
    local now = os.time()
    local date = os.date("!%a, %d %b %Y %H:%M:%S GMT", now + 30)
    local s = pipeline.retry_after(date, now)
    assert.equal(30, s)
    assert.equal(0, pipeline.retry_after(os.date("!%a, %d %b %Y %H:%M:%S GMT", now - 30), now))
    assert.is_nil(pipeline.retry_after("soon"))
  end)

  it("backoff is full jitter, capped", function()
    local pipeline = require "instantly.request.pipeline"
    for attempt = 1, 10 do
      local d = pipeline.backoff({ base = 0.5, cap = 8 }, attempt)
      assert.is_true(d >= 0 and d <= math.min(8, 0.5 * 2 ^ (attempt - 1)))
    end
  end)
end)

describe("hooks", function()
  it("see requests and responses, never the key", function()
    local seen = {}
    local c = H.fake_client(H.const(200, '{"id":"00000000-0000-4000-8000-0000000000c1"}', JSON), {
      on_request = function(r) seen[#seen + 1] = r end,
      on_response = function(r) seen[#seen + 1] = r end,
    })
    assert(c.campaigns:update(C1, { name = "x" }))
    assert.equal(2, #seen)
    assert.equal("PATCH", seen[1].method)
    assert.equal("campaigns:update", seen[1].operation)
    assert.equal('{"name":"x"}', seen[1].body)
    assert.equal("Bearer inst…XYZ", seen[1].headers.authorization)
    assert.equal(200, seen[2].status)
    assert.is_number(seen[2].elapsed)
    local function scan(v)
      if type(v) == "string" then assert.is_nil(v:find(H.KEY, 1, true)) end
      if type(v) == "table" then for _, x in pairs(v) do scan(x) end end
    end
    scan(seen)
  end)
end)

describe("scheduler hook", function()
  it("routes requests and sleeps of a registered coroutine through the scheduler", function()
    local c = H.fake_client(function(_, n)
      if n == 1 then return 503, "{}", JSON end
      return 200, '{"id":"00000000-0000-4000-8000-0000000000c1"}', JSON
    end)
    local calls = {}
    local sched = {}
    function sched.request(_, session, req)
      calls[#calls + 1] = "request"
      return session:request(req)
    end
    function sched.sleep(_, s)
      calls[#calls + 1] = "sleep"
      assert.is_true(s >= 0)
    end
    local co = coroutine.create(function() return c.campaigns:get(C1) end)
    require("instantly.request.pipeline").attach(co, sched)
    local ok, v = coroutine.resume(co)
    assert.is_true(ok)
    assert.equal(C1, v.id)
    assert.same({ "request", "sleep", "request" }, calls)
    -- The main thread is not registered: plain requests.
    assert(c.campaigns:get(C1))
    assert.equal(3, #calls)
  end)
end)

describe("escape hatch", function()
  it("client:request goes through the same pipeline", function()
    local c, t = H.fake_client(H.const(200, '{"ok":true}', JSON))
    local v, status = c:request("POST", "/custom/thing", { query = { b = 2, a = "x y" }, body = { k = "v" } })
    assert.is_true(v.ok)
    assert.equal(200, status)
    assert.equal(DEFAULT_BASE .. "/api/v2/custom/thing?a=x%20y&b=2", t.log[1].url)
    assert.same({ k = "v" }, t.log[1].json)
    assert(c:request("GET", "/api/v2/campaigns"))
    assert.equal(DEFAULT_BASE .. "/api/v2/campaigns", t.log[2].url)
    assert.has_error(function() c:request("FETCH", "/x") end,
      "instantly: client:request: method must be one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS")
    assert.has_error(function() c:request("GET", "/x", { qs = 1 }) end,
      "instantly: client:request: unknown key 'qs' (known: body, headers, query)")
  end)
end)

describe("extensions", function()
  it("add entity, record and client methods that reach the client (extensions option)", function()
    local exts = {
      webhooks = {
        entity = { first = function(self) return self:get(W1) end },
        record = { ping = function(rec) return instantly.client_of(rec).webhooks:test(rec.id) end },
      },
      client = { client = { hello = function(cl) return cl.workspaces:get() end } },
    }
    local c, t = H.fake_client(H.const(200, '{"id":"00000000-0000-4000-8000-0000000000a1"}', JSON),
      { extensions = exts })
    local w = assert(c.webhooks:first())
    assert(w:ping())
    assert(c:hello())
    assert.equal(DEFAULT_BASE .. "/api/v2/webhooks/00000000-0000-4000-8000-0000000000a1/test", t.log[2].url)
    assert.equal(DEFAULT_BASE .. "/api/v2/workspaces/current", t.log[3].url)
    assert.equal(c, c.webhooks.client)
    -- another client does not see them
    local other = H.fake_client()
    assert.is_nil(other.webhooks.first)
    assert.is_nil(other.hello)
  end)

  it("a wrap gets the original method first", function()
    local exts = { campaigns = { wrap = { get = function(orig, self, id, ...)
      return orig(self, id:upper(), ...)
    end } } }
    local c, t = H.fake_client(H.const(200, '{"id":"' .. C1 .. '"}', JSON), { extensions = exts })
    assert(c.campaigns:get(C1))
    assert.equal(DEFAULT_BASE .. "/api/v2/campaigns/" .. C1:upper(), t.log[1].url)
  end)

  it("a module on package.path named like an extension changes nothing", function()
    -- Before, every client tried require("instantly.workflows.extra." .. entity):
    -- any such module on LUA_PATH silently changed every client.
    package.preload["instantly.workflows.extra.webhooks"] = function() error("must not be loaded") end
    local ok, c = pcall(H.fake_client)
    package.preload["instantly.workflows.extra.webhooks"] = nil
    assert.is_true(ok, tostring(c))
    assert.is_nil(rawget(c.webhooks, "first"))
    assert.is_nil(package.loaded["instantly.workflows.extra.webhooks"])
  end)

  it("clashes, unknown entities, bad shapes and missing wraps are refused by new", function()
    local cases = {
      { { webhooks = { entity = { get = function() end } } },
        "instantly.new: extensions.webhooks defines entity method 'get', which already exists" },
      { { webhooks = { entity = { each = function() end } } },
        "instantly.new: extensions.webhooks defines entity method 'each', which already exists" },
      { { campaigns = { record = { activate = function() end } } },
        "instantly.new: extensions.campaigns defines record method 'activate', which already exists" },
      { { campaigns = { record = { leads = function() end } } },
        "instantly.new: extensions.campaigns defines record method 'leads', which already exists" },
      { { client = { client = { gather = function() end } } },
        "instantly.new: extensions.client defines client method 'gather', which already exists" },
      { { client = { client = { campaigns = function() end } } },
        "instantly.new: extensions.client defines client method 'campaigns', which already exists" },
      { { nope = {} }, "instantly.new: extensions.nope: no entity named 'nope'" },
      { { webhooks = 5 }, "instantly.new: extension extensions.webhooks must be a table, got number" },
      { { webhooks = { methods = {} } },
        "instantly.new: extension extensions.webhooks has an unknown key 'methods' " ..
        "(known: client, entity, record, wrap)" },
      { { webhooks = { entity = { x = 1 } } },
        "instantly.new: extensions.webhooks.entity must map names to functions" },
      { { webhooks = { wrap = { missing = function() end } } },
        "instantly.new: extensions.webhooks wraps method 'missing', which does not exist" },
      { 7, "instantly.new: option 'extensions' must be a table mapping entity names (or \"client\") " ..
        "to extension modules" },
    }
    for _, case in ipairs(cases) do
      assert.has_error(function() H.fake_client(nil, { extensions = case[1] }) end, case[2])
    end
  end)

  it("the SDK's own extension list matches lua/instantly/workflows/extra/", function()
    local listed = {}
    for _, n in ipairs(require("instantly.entities").extensions) do listed[n] = true end
    local p = io.popen("ls lua/instantly/workflows/extra")
    local names = { client = true }
    for _, n in ipairs(require("instantly.entities").entities) do names[n] = true end
    local seen = 0
    for f in p:lines() do
      local n = f:match("^(.+)%.lua$")
      if n and names[n] then
        seen = seen + 1
        assert.is_true(listed[n] == true, n .. " is not in entities.extensions")
      end
    end
    p:close()
    assert.is_true(seen > 0, "no extension file found: the folder moved?")
    assert.equal(#require("instantly.entities").extensions, seen)
    for n in pairs(listed) do
      assert.is_table(require("instantly.workflows.extra." .. n))
    end
  end)
end)

describe("help", function()
  it("documents every generated method", function()
    local c = H.fake_client()
    local text = c.campaigns:help("activate")
    assert.matches("client.campaigns:activate(id[, opts])", text, 1, true)
    assert.matches("client.campaigns:list([params][, opts])", c.campaigns:help("list"), 1, true)
    assert.matches("client.campaigns:create(params[, opts])", c.campaigns:help("create"), 1, true)
    assert.matches("POST /api/v2/campaigns/{id}/activate", text, 1, true)
    assert.matches("each", c.campaigns:help())
  end)
end)
