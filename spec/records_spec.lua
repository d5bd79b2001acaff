-- Records without truthiness traps: JSON null left out (raw value on
-- request), boolean fields as booleans, custom variables under one name.
local H = require "support.client_helper"
local instantly = require "instantly"
local core = require "instantly.core"

local JSON = { ["content-type"] = "application/json" }
local ID = "0b6f4a8e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"

describe("records and JSON null", function()
  local body = '{"id":"' .. ID .. '","email":"a@b.co","lt_interest_status":null,"company_name":null,'
    .. '"payload":{"tier":"gold","seats":null},"status":1,'
    .. '"tags":[null,"x"],"nested":[{"k":null,"v":2}]}'

  it("leave null fields out, so an if takes the branch a person expects", function()
    local c = H.fake_client(H.const(200, body, JSON))
    local lead = assert(c.leads:get(ID))
    assert.is_nil(lead.lt_interest_status)
    assert.is_nil(rawget(lead, "company_name"))
    local branch = "none"
    if lead.lt_interest_status then branch = "some" end
    assert.equal("none", branch)
    for k, v in pairs(lead) do assert.are_not.equal(instantly.null, v, k) end
    -- nested objects too; array positions are kept
    assert.is_nil(lead.custom_variables.seats)
    assert.equal(instantly.null, lead.tags[1])
    assert.equal("x", lead.tags[2])
    assert.is_nil(lead.nested[1].k)
    assert.equal(2, lead.nested[1].v)
  end)

  it("say which fields were null, and give the raw record on request", function()
    local c = H.fake_client(H.const(200, body, JSON))
    local lead = assert(c.leads:get(ID))
    assert.same({ "company_name", "lt_interest_status" }, instantly.nulls(lead))
    assert.same({ "seats" }, instantly.nulls(lead.custom_variables))
    local raw = instantly.raw(lead)
    assert.is_nil(getmetatable(raw), "plain data")
    assert.equal(instantly.null, raw.lt_interest_status)
    assert.equal(instantly.null, raw.payload.seats)
    assert.equal("gold", raw.payload.tier)
    assert.is_nil(raw.custom_variables)
    -- the raw record encodes back to what was received
    assert.same(core.json_decode(body), core.json_decode(assert(core.json_encode(raw))))
  end)

  it("apply to list items and iterators", function()
    local page = '{"items":[{"id":"l1","lt_interest_status":null},{"id":"l2","lt_interest_status":1}],'
      .. '"next_starting_after":null}'
    local c = H.fake_client(H.const(200, page, JSON))
    local seen = {}
    for lead in c.leads:each() do seen[#seen + 1] = lead.lt_interest_status or "none" end
    assert.same({ "none", 1 }, seen)
  end)

  it("follow the last of repeated keys, at any depth, and name only the fields left null", function()
    local text = '{"id":"' .. ID .. '","email":null,"email":"a@b.co","company_name":"X","company_name":null,'
      .. '"payload":{"a":{"b":{"c":null,"d":[null,{"e":null,"f":1}]}}}}'
    local c = H.fake_client(H.const(200, text, JSON))
    local lead = assert(c.leads:get(ID))
    assert.equal("a@b.co", lead.email)
    assert.is_nil(rawget(lead, "company_name"))
    assert.same({ "company_name" }, instantly.nulls(lead))
    local b = lead.custom_variables.a.b
    assert.same({ "c" }, instantly.nulls(b))
    assert.equal(instantly.null, b.d[1], "arrays keep their positions")
    assert.same({}, instantly.nulls(b.d))
    assert.same({ "e" }, instantly.nulls(b.d[2]))
    assert.same({ f = 1 }, b.d[2])
    local raw = instantly.raw(lead)
    assert.equal(instantly.null, raw.company_name)
    assert.equal("a@b.co", raw.email)
    assert.equal(instantly.null, raw.payload.a.b.c)
    assert.equal(instantly.null, raw.payload.a.b.d[2].e)
  end)

  it("name one null or many, past 64 members, through nulls, raw, re-encoding and collections", function()
    -- a lead with 100 members (nulls at 1, 64, 65 and 100), its payload
    -- with one null and an object under it with two
    local parts, want = { '"id":"' .. ID .. '"' }, {}
    for i = 1, 99 do
      local null = i == 1 or i == 63 or i == 64 or i == 99
      parts[#parts + 1] = ('"x%02d":%s'):format(i, null and "null" or i)
      if null then want[#want + 1] = ("x%02d"):format(i) end
    end
    parts[#parts + 1] = '"payload":{"one":null,"two":{"a":null,"b":null,"c":3},"k":"v"}'
    local text = "{" .. table.concat(parts, ",") .. "}"
    local c = H.fake_client(H.const(200, text, JSON))
    local lead = assert(c.leads:get(ID))
    collectgarbage()
    collectgarbage()
    assert.same(want, instantly.nulls(lead))
    assert.same({ "one" }, instantly.nulls(lead.custom_variables))
    assert.same({ "a", "b" }, instantly.nulls(lead.custom_variables.two))
    assert.same({}, instantly.nulls({ plain = "table" }))
    -- the list nulls gives is the caller's: changing it changes nothing
    table.insert(instantly.nulls(lead.custom_variables), "mine")
    assert.same({ "one" }, instantly.nulls(lead.custom_variables))
    local raw = instantly.raw(lead)
    assert.equal(instantly.null, raw.x01)
    assert.equal(instantly.null, raw.x99)
    assert.equal(2, raw.x02)
    assert.equal(instantly.null, raw.payload.one)
    assert.equal(instantly.null, raw.payload.two.b)
    assert.same(core.json_decode(text), core.json_decode(assert(core.json_encode(raw))))
    -- the record itself encodes without its nulls
    local back = core.json_decode(assert(core.json_encode(lead)))
    assert.is_nil(back.x01)
    assert.equal(2, back.x02)
    assert.equal("v", back.custom_variables.k)
  end)

  it("let their null names go with them", function()
    local items = {}
    for i = 1, 2000 do items[i] = ('{"id":"l%d","lt_interest_status":null,"n":%d}'):format(i, i) end
    local page = '{"items":[' .. table.concat(items, ",") .. '],"next_starting_after":null}'
    local c = H.fake_client(H.const(200, page, JSON))
    local function held(fn)
      collectgarbage()
      collectgarbage()
      local before = collectgarbage("count")
      fn()
      collectgarbage()
      collectgarbage()
      return (collectgarbage("count") - before) * 1024
    end
    local kept
    local with = held(function()
      kept = assert(c.leads:list())
      assert.same({ "lt_interest_status" }, instantly.nulls(kept.items[2000]))
    end)
    assert(with > 2000 * 40, "the page is held: " .. with)
    assert.same({ "lt_interest_status" }, instantly.nulls(kept.items[1]))
    local after = held(function() kept = nil end)
    -- the records and every name recorded for them are gone (what stays
    -- is the weak table's room for 2000 entries, 64 KB)
    assert(after < -0.7 * with, ("%d bytes held, %d freed"):format(with, -after))
  end)

  it("leave an explicit null possible when sending (clearing a field)", function()
    local c, t = H.fake_client(H.const(200, '{"id":"' .. ID .. '","daily_limit":null}', JSON))
    local camp = assert(c.campaigns:update(ID, { daily_limit = instantly.null }))
    assert.matches('"daily_limit":null', t.log[1].body)
    assert.is_nil(camp.daily_limit)
  end)
end)

describe("records and booleans", function()
  it("read 0/1 in a field the catalog types as boolean as false/true", function()
    local c = H.fake_client(H.const(200, '{"id":"' .. ID .. '","is_evergreen":0,"stop_on_reply":1,'
      .. '"open_tracking":true}', JSON))
    local camp = assert(c.campaigns:get(ID))
    assert.is_false(camp.is_evergreen)
    assert.is_true(camp.stop_on_reply)
    assert.is_true(camp.open_tracking)
  end)

  it("convert every boolean field of every entity, and only 0 and 1", function()
    local record = require "instantly.request.record"
    local builder = require "instantly.request.builder"
    for _, def in ipairs(builder.definitions()) do
      local shape = record.shaper_for(def)
      local t, want, n = {}, {}, 0
      for _, f in ipairs(def.fields) do
        if f.type == "boolean" then
          n = n + 1
          local v = ({ 0, 1, 2, "1", true })[n % 5 + 1]
          t[f.name], want[f.name] = v, v
          if v == 1 then want[f.name] = true elseif v == 0 then want[f.name] = false end
        elseif f.type == "integer" then
          t[f.name], want[f.name] = 1, 1
        end
      end
      if shape then shape(t) end
      assert.same(want, t, def.name)
      assert.equal(n > 0 or record.aliases(def) ~= nil, shape ~= false, def.name)
    end
    -- names are quoted in the code the shaper is made of
    local odd = 'we"ird]] name\n' .. "'"
    local shape = record.shaper { name = "Odd",
                                  fields = { { name = odd, type = "boolean" }, { name = "b", type = "boolean" } } }
    local t = { [odd] = 1, b = 0 }
    shape(t)
    assert.same({ [odd] = true, b = false }, t)
  end)

  it("convert a number equal to 0 or 1 (floats too, as Lua's ==), nothing else, only at the record's level", function()
    local text = '{"id":"' .. ID .. '","is_evergreen":1.0,"stop_on_reply":-0.0,"open_tracking":0.5,'
      .. '"link_tracking":"1","stop_on_auto_reply":null,"text_only":1e0,'
      .. '"campaign_schedule":{"is_evergreen":1,"schedules":[{"stop_on_reply":0}]}}'
    local c = H.fake_client(H.const(200, text, JSON))
    local camp = assert(c.campaigns:get(ID))
    assert.is_true(camp.is_evergreen)
    assert.is_false(camp.stop_on_reply)
    assert.equal(0.5, camp.open_tracking)
    assert.equal("1", camp.link_tracking)
    assert.is_nil(camp.stop_on_auto_reply)
    assert.same({ "stop_on_auto_reply" }, instantly.nulls(camp))
    assert.is_true(camp.text_only)
    assert.equal(1, camp.campaign_schedule.is_evergreen, "nested objects are not the record")
    assert.equal(0, camp.campaign_schedule.schedules[1].stop_on_reply)
  end)

  it("keep the 0/1 email flags as numbers (the API takes them back as numbers)", function()
    local c, t = H.fake_client(H.const(200, '{"id":"' .. ID .. '","is_auto_reply":0,"is_unread":1}', JSON))
    local e = assert(c.emails:get(ID))
    assert.equal(0, e.is_auto_reply)
    assert.is_false(e.is_auto_reply == instantly.enums.email.is_auto_reply.yes)
    assert(c.emails:update(ID, { is_unread = e.is_unread }))
    assert.same({ is_unread = 1 }, t.log[2].json)
  end)
end)

describe("custom variables", function()
  it("are written and read as custom_variables; payload still reads", function()
    local c, t = H.fake_client(function(req)
      if req.method == "PATCH" then return 200, '{"id":"' .. ID .. '","payload":{"tier":"gold"}}', JSON end
      return 200, '{"id":"' .. ID .. '","payload":{"tier":"silver"}}', JSON
    end)
    local lead = assert(c.leads:get(ID))
    assert.equal("silver", lead.custom_variables.tier)
    assert.equal(lead.custom_variables, lead.payload)
    assert.is_nil(rawget(lead, "payload"))
    local keys = {}
    for k in pairs(lead) do keys[#keys + 1] = k end
    table.sort(keys)
    assert.same({ "custom_variables", "id" }, keys)
    local updated = assert(lead:update { custom_variables = { tier = "gold" } })
    assert.same({ custom_variables = { tier = "gold" } }, t.log[2].json)
    assert.equal("gold", updated.custom_variables.tier)
  end)

  it("round-trip through the mock under one name", function()
    local srv = H.mock()
    local ok, err = pcall(function()
      local c = H.mock_client(srv, { max_retries = 0 })
      local camp = assert(c.campaigns:list { limit = 1 }).items[1]
      local lead = assert(c.leads:create { campaign = camp.id, email = "cv-roundtrip@example.com",
        custom_variables = { plan = "pro" } })
      assert.equal("pro", lead.custom_variables.plan)
      local again = assert(c.leads:get(lead.id))
      assert.equal("pro", again.custom_variables.plan)
      for k, v in pairs(again) do assert.are_not.equal(instantly.null, v, k) end
    end)
    srv:stop()
    assert(ok, err)
  end)
end)
