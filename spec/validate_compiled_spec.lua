-- The compiled tests of instantly.request.validate against its walker.
--
-- Each schema node is flattened once into a program for instantly.core's
-- shape test (csrc/shape.c), which only says "valid, send it as it is" or
-- "ask the walker". If it ever says yes where
-- the walker would report a problem or convert the value, the SDK would
-- send a bad body. So: for every parameter of every operation in the
-- catalog, a valid value and many mutated ones (a wrong type at each depth,
-- a bad enum, a bad format, null where it is not allowed, integral floats,
-- unmarked empty arrays, holes, metatables, extra keys at every level) go
-- through `check` (compiled tests first) and `walk` (the walker alone), and
-- the answers must be the same: the problems' messages in order, the value
-- to send, and the caller's value left as it was.
local validate = require "instantly.request.validate"
local core = require "instantly.core"
local entities = require "instantly.entities"

local null, array_mt = core.null, core.array_mt
local mtype = math.type

local UUID = "0b6f4a8e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
local SAMPLE = { uuid = UUID, email = "ada@example.com", date = "2026-02-28",
                 ["date-time"] = "2026-01-31T09:00:00Z", uri = "https://example.com/x", ["hh:mm"] = "09:30" }

-- A deterministic text of a value: float and integer apart, NaN, null,
-- marked arrays, metatables; so "unchanged" and "the same" can be asserted.
local function dump(v, seen)
  seen = seen or {}
  if v == null then return "null" end
  local t = type(v)
  if t == "number" then
    if v ~= v then return "nan" end
    return (mtype(v) == "float" and "f" or "i") .. string.format("%.17g", v)
  elseif t == "string" then
    return string.format("%q", v)
  elseif t ~= "table" then
    return t
  end
  if seen[v] then return "<cycle>" end
  seen[v] = true
  local out = {}
  for k, x in pairs(v) do out[#out + 1] = dump(k) .. "=" .. dump(x, seen) end
  table.sort(out)
  local mt = getmetatable(v)
  local tag = mt == array_mt and "A" or (mt and "M" or "")
  seen[v] = nil
  return tag .. "{" .. table.concat(out, ",") .. "}"
end

local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = deep_copy(x) end
  return setmetatable(out, getmetatable(v))
end

local function messages(probs)
  local out = {}
  for i, p in ipairs(probs) do out[i] = validate.message(p) end
  return out
end

-- A valid value for a prepared node, every optional field filled in.
local function valid(node)
  local t = node.type
  if node.enum and t ~= "array" then return node.enum[1] end
  if t == "string" then return SAMPLE[node.format] or "text" end
  if t == "integer" or t == "number" then
    local v = t == "integer" and 1 or 1.5
    if node.min and v < node.min then v = node.min end
    if node.max and v > node.max then v = node.max end
    return t == "integer" and math.tointeger(v) or v
  end
  if t == "boolean" then return true end
  if t == "scalar" then return "s" end
  if t == "array" then
    if node.item then return { valid(node.item), valid(node.item) } end
    return { "anything", 1 }
  end
  if t == "object" then
    local v = {}
    if node.field_map then
      for name, f in pairs(node.field_map) do v[name] = valid(f) end
    elseif node.keys or node.values then
      local k = node.keys and node.keys.enum and node.keys.enum[1] or "key"
      v[k] = node.values and valid(node.values) or "x"
    else
      v.anything = 1
    end
    return v
  end
  return "x"
end

-- Every place in `v` with the node that describes it: {path, node}.
local function places(node, v, path, out)
  out[#out + 1] = { path = path, node = node }
  if type(v) ~= "table" then return out end
  if node.type == "array" and node.item then
    -- the elements have one node: the first stands for the others
    for i = 1, math.min(#v, 1) do
      local p = { table.unpack(path) }
      p[#p + 1] = i
      places(node.item, v[i], p, out)
    end
  elseif node.type == "object" then
    for k, x in pairs(v) do
      local f = node.field_map and node.field_map[k] or (not node.field_map and node.values)
      if f then
        local p = { table.unpack(path) }
        p[#p + 1] = k
        places(f, x, p, out)
      end
    end
  end
  return out
end

-- Values to put at a place described by `node` (and the valid one there).
local function replacements(node, good)
  local r = { 42, -7, 1.5, 2.0, 0 / 0, math.huge, "str", "", true, false, null, {}, { 1, 2 }, { a = 1 },
              setmetatable({}, array_mt), setmetatable({ a = 1 }, {}), setmetatable({ 1, 2 }, {}),
              { 1, nil, 3 }, { [1] = "a", [3] = "c" }, { [3] = "c", [2] = "b", [1] = "a" }, print,
              { "a", nil, "c", x = 1 }, { "a", "b", [4] = "d" }, { "a", [2.5] = "b" } }
  if node.enum then r[#r + 1] = "not-in-the-enum"; r[#r + 1] = 987654 end
  if node.format then r[#r + 1] = "not a " .. node.format end
  if node.min then r[#r + 1] = node.min - 1; r[#r + 1] = node.min + 0.0 end
  if node.max then r[#r + 1] = node.max + 1; r[#r + 1] = node.max + 0.0 end
  if node.alts then
    for _, alt in ipairs(node.alts) do r[#r + 1] = valid(alt) end
  end
  if type(good) == "table" then
    -- nested extra key (let through), the valid one with a metatable,
    -- an empty element, an integral float inside, the same array reordered
    local extra = deep_copy(good)
    extra.zz_not_in_the_catalog = 1
    r[#r + 1] = extra
    r[#r + 1] = setmetatable(deep_copy(good), { __index = function() return "x" end })
    if node.type == "object" and not node.field_map and node.values then
      -- a key outside the keys' enum, with a value that fits
      local odd_key = deep_copy(good)
      odd_key["8"] = valid(node.values)
      r[#r + 1] = odd_key
    end
    if node.type == "array" then
      local holed = deep_copy(good)
      holed[#holed + 1] = {}
      r[#r + 1] = holed
      local marked = setmetatable(deep_copy(good), array_mt)
      r[#r + 1] = marked
      local back = {}
      for i = #good, 1, -1 do back[i] = deep_copy(good[i]) end
      r[#r + 1] = back
    end
  elseif mtype(good) == "integer" then
    r[#r + 1] = good + 0.0
  end
  return r
end

local function set_at(root, path, value)
  -- path[1] is the parameter name (the root itself)
  if #path == 1 then return value end
  local t = root
  for i = 2, #path - 1 do t = t[path[i]] end
  t[path[#path]] = value
  return root
end

-- The checking encoder (core.shape_encode) on the node's own program.
local shapes = setmetatable({}, { __mode = "k" })
local function shape_of(node)
  local s = shapes[node]
  if not s then
    s = core.shape_new(validate.program(node))
    shapes[node] = s
  end
  return s
end

-- core.shape_encode may answer text only where the walker finds nothing
-- to report and nothing to convert, and that text must be json_encode's,
-- byte for byte; where json_encode refuses the value it answers false.
local function encodes_same(node, v, label)
  local text = core.shape_encode(shape_of(node), v)
  local want = core.json_encode(v)
  if text == false then return false end
  assert.is_string(text, label)
  assert.equal(want, text, label .. ": shape_encode wrote other text than json_encode")
  local out, probs = validate.walk(node, v, {})
  assert.equal(0, #probs, label .. " encoded by shape_encode, refused by the walker")
  assert.is_true(rawequal(out, v), label .. " encoded by shape_encode, converted by the walker")
  return true
end

-- check (compiled tests first) and walk (walker alone) agree on `v`.
local function agree(node, v, name)
  local before = dump(v)
  local out_c, probs_c = validate.check(node, v, { name })
  local after_c = dump(v)
  local out_w, probs_w = validate.walk(node, v, { name })
  local m_c, m_w = messages(probs_c), messages(probs_w)
  assert.same(m_w, m_c, name .. " = " .. before)
  assert.equal(rawequal(out_w, v), rawequal(out_c, v), name .. " = " .. before .. ": sent as given?")
  if not rawequal(out_w, v) then assert.equal(dump(out_w), dump(out_c), name .. " = " .. before) end
  assert.equal(before, after_c, name .. ": the caller's value was changed")
  -- the compiled test may only say yes where the walker finds nothing to
  -- report and nothing to convert
  if validate.accepts(node)(v) then
    assert.equal(0, #probs_w, name .. " = " .. before .. " accepted by the test, refused by the walker")
    assert.is_true(rawequal(out_w, v), name .. " = " .. before .. " accepted by the test, converted by the walker")
  end
  local encoded = encodes_same(node, v, name .. " = " .. before)
  assert.equal(before, dump(v), name .. ": shape_encode changed the caller's value")
  -- what the compiled test takes, the checking encoder takes too (it may
  -- take more: a sequence whose keys come out of order)
  if validate.accepts(node)(v) and core.json_encode(v) then
    assert.is_true(encoded, name .. " = " .. before .. ": taken by shape_test, not by shape_encode")
  end
  return #probs_w
end

-- A whole call: when route checked the body while encoding it, the text
-- is json_encode's of the body it returns, every parameter passes the
-- walker unchanged, and nothing was reported.
local function route_agrees(c, args, mode)
  local query, body, err, warnings, text = validate.route(c, args, mode)
  if text == nil then return false end
  assert.is_nil(err)
  assert.is_nil(warnings)
  assert.equal(core.json_encode(body), text)
  for k, v in pairs(args) do
    local out, probs = validate.walk(c.params[k], v, { k })
    assert.equal(0, #probs, k .. " sent encoded, refused by the walker")
    assert.is_true(rawequal(out, v), k .. " sent encoded, converted by the walker")
    if c.params[k].where == "body" then assert.is_true(rawequal(v, body[k]), k .. " not sent as given") end
  end
  local q2, b2 = validate.route(c, args, "off")
  assert.equal(q2, query)
  assert.equal(core.json_encode(b2), text)
  return true
end

describe("compiled tests agree with the walker", function()
  for _, ename in ipairs(entities.entities) do
    local def = require("instantly.entities." .. ename)
    for _, op in ipairs(def.operations) do
      local c = validate.compile(op)
      if next(c.params) then
        it(ename .. ":" .. op.lua_method, function()
          local names = {}
          for name in pairs(c.params) do names[#names + 1] = name end
          table.sort(names)
          local args = {}
          for _, name in ipairs(names) do
            local node = c.params[name]
            local good = valid(node)
            args[name] = good
            -- the valid value passes both ways, and the compiled test
            -- takes it itself (the fast path is the one used)
            assert.equal(0, agree(node, good, name))
            assert.is_true(validate.accepts(node)(good), name .. " = " .. dump(good) .. " not accepted")
            assert.is_string(core.shape_encode(shape_of(node), good), name .. " = " .. dump(good) .. " not encoded")
            for _, place in ipairs(places(node, good, { name }, {})) do
              local here = good
              for i = 2, #place.path do here = here[place.path[i]] end
              for _, bad in ipairs(replacements(place.node, here)) do
                local v = set_at(deep_copy(good), place.path, bad)
                agree(node, v, name)
                if c.has_body then
                  -- the same value in a whole call, the other parameters valid
                  local call = {}
                  for _, n2 in ipairs(names) do call[n2] = valid(c.params[n2]) end
                  call[name] = v
                  route_agrees(c, call, "strict")
                end
              end
              if #place.path > 1 then
                -- the field left out (a required one is then missing)
                agree(node, set_at(deep_copy(good), place.path, nil), name)
              end
            end
          end
          -- the whole call: strict refuses with the walker's first message,
          -- warn reports all of them; a valid call passes
          local _, _, err = validate.route(c, args)
          assert.is_nil(err)
          if c.has_body then
            -- the valid call takes the one-walk path, in both checking modes
            assert.is_true(route_agrees(c, args, "strict"), "valid call not encoded in one walk")
            assert.is_true(route_agrees(c, args, "warn"), "valid call not encoded in one walk (warn)")
          end
          local name = names[1]
          local bad = deep_copy(args)
          bad[name] = print
          local _, wprobs = validate.walk(c.params[name], print, { name })
          local _, _, serr = validate.route(c, bad, "strict")
          assert.equal(validate.message(wprobs[1]), serr)
          local _, _, werr, warnings = validate.route(c, bad, "warn")
          assert.is_nil(werr)
          assert.same(messages(wprobs), warnings)
          local extra = deep_copy(args)
          extra.zz_unknown = 1
          local _, _, uerr = validate.route(c, extra, "strict")
          assert.matches("^unknown parameter 'zz_unknown'", uerr)
        end)
      end
    end
  end
end)

describe("compiled tests on hostile schemas and values", function()
  it("field names that are not identifiers are quoted in the generated source", function()
    local node = validate.prepare({ name = "odd", type = "object", fields = {
      { name = 'a"b\n]]--', type = "string", required = true },
      { name = "\0z", type = "integer", min = 2, max = 5 },
      { name = "end", type = "number", nullable = true, max = 10 },
    } })
    for _, v in ipairs({
      { ['a"b\n]]--'] = "x" }, { ['a"b\n]]--'] = 1 }, {}, { ['a"b\n]]--'] = "x", ["\0z"] = 3 },
      { ['a"b\n]]--'] = "x", ["\0z"] = 9 }, { ['a"b\n]]--'] = "x", ["\0z"] = 3.0 },
      { ['a"b\n]]--'] = "x", ["end"] = null }, { ['a"b\n]]--'] = "x", ["end"] = 0 / 0 },
      { ['a"b\n]]--'] = "x", ["end"] = 11 }, { ['a"b\n]]--'] = "x", ["end"] = -math.huge },
    }) do
      agree(node, v, "odd")
    end
    assert.is_true(validate.accepts(node)({ ['a"b\n]]--'] = "x", ["\0z"] = 3, ["end"] = 9.5 }))
  end)

  it("a table dressed as a string, an array or an object is never taken for one", function()
    local node = validate.prepare({ name = "o", type = "object", fields = {
      { name = "s", type = "string" }, { name = "e", type = "string", enum = { "A", "B" } },
      { name = "list", type = "array", items = "string" },
      { name = "m", type = "object", values = { type = "scalar" } },
    } })
    local fake_string = setmetatable({}, {
      __index = string, __len = function() return 3 end, __concat = function(a) return a end,
      __le = function() return true end, __lt = function() return true end, __eq = function() return true end,
    })
    local tricky = {
      { s = fake_string }, { e = fake_string }, { e = setmetatable({}, { __eq = function() return true end }) },
      { list = setmetatable({ "a", "b" }, { __len = function() return 1 end }) },
      { list = setmetatable({ "a" }, { __pairs = function() return next, {}, nil end }) },
      { list = { "a", [1.5] = "b" } }, { list = { "a", n = 1 } }, { list = { [0] = "z", "a" } },
      { m = setmetatable({ k = 1 }, { __pairs = function() return next, {}, nil end }) },
      { m = { k = fake_string } }, { m = { k = 0 / 0 } }, { m = { k = {} } }, { m = "str" }, { m = 5 },
      setmetatable({ s = "x" }, { __index = function() return 5 end }), "str", 5, true, print,
      coroutine.create(function() end), io.stdout,
    }
    for _, v in ipairs(tricky) do agree(node, v, "o") end
    assert.is_true(validate.accepts(node)({ s = "x", e = "B", list = { "a" }, m = { k = 1, j = "x", b = false } }))
    assert.is_false(validate.accepts(node)({ s = fake_string }))
  end)

  it("a sequence it cannot prove cheaply goes to the walker, which takes it", function()
    local node = validate.prepare({ name = "ids", type = "array", items = "string" })
    local back = {}
    for i = 40, 1, -1 do back[i] = "id" .. i end
    local out, probs = validate.check(node, back, { "ids" })
    assert.same({}, probs)
    assert.equal(back, out)
  end)
end)

describe("core.shape_new", function()
  local HEAD = 10
  local function rec(kind, child, nfields, nreq)
    return { kind, 0, 0, 0, 0, 0, child or -1, 0, nfields or 0, nreq or 0 }
  end
  local function cat(...)
    local out = {}
    for _, t in ipairs({ ... }) do for _, x in ipairs(t) do out[#out + 1] = x end end
    return out
  end
  local refs = { array_mt, null, "name" }

  it("takes a program the validator builds and runs it", function()
    local code, r = validate.program(validate.prepare({ name = "l", type = "array", items = "string" }))
    local shape = core.shape_new(code, r)
    assert.is_true(core.shape_test(shape, { "a", "b" }))
    assert.is_false(core.shape_test(shape, { "a", 2 }))
    assert.is_false(core.shape_test(shape, {}))
    assert.is_true(core.shape_test(shape, setmetatable({}, array_mt)))
  end)

  it("says no past 100 nested containers (only a hand-made program nests so deep)", function()
    local function nested(levels)
      local code = {}
      for i = 0, levels do
        for _, x in ipairs(i == levels and rec(1) or rec(6, (i + 1) * HEAD)) do code[#code + 1] = x end
      end
      local v = "leaf"
      for _ = 1, levels do v = { v } end
      return core.shape_new(code, refs), v
    end
    assert.is_true(core.shape_test(nested(60)))
    assert.is_false(core.shape_test(nested(150)))
    assert.is_false(core.shape_test(nested(5000)))
  end)

  it("refuses a program that could read outside itself or loop", function()
    local bad = {
      { {}, "program size out of range" },
      { rec(1), nil },                                    -- fine: one string record
      { cat(rec(1), { 1 }), "truncated record" },
      { rec(42), "bad record" },
      { rec(-1), "bad record" },
      { rec(6, 0), "bad child offset" },                  -- an array whose item is itself
      { rec(6, 3), "bad child offset" },                  -- into the middle of nowhere
      { cat(rec(6, HEAD + 1), rec(1)), "bad child offset" }, -- not where a record starts
      { cat(rec(7, nil, 1), { 3, 0 }), "bad field offset" },  -- a field that is its parent
      { cat(rec(7, nil, 1), { 9, HEAD + 2 }, rec(1)), "bad ref" },
      { cat(rec(7, nil, 1), { 0, HEAD + 2 }, rec(1)), "bad ref" },
      { cat(rec(7, nil, 0, 1), { 7 }), "bad ref" },
      { cat(rec(7, nil, 5), { 3, HEAD + 2 }), "bad record" }, -- more fields than integers
      { { 1, 0, 99, 0, 0, 0, -1, 0, 0, 0 }, "bad ref" },
      { { 1, 2, 0, 0, 0, 0, -1, 0, 0, 0 }, "bad ref" },
      { { 1, 0, 0, 0, 0, 0, -1, 0, 0, 0.5 }, "non%-integer" },
      { { 1, 0, 0, 0, 0, 0, -1, 0, 0, "0" }, "non%-integer" },
    }
    for i, case in ipairs(bad) do
      local ok, err = pcall(core.shape_new, case[1], refs)
      if case[2] then
        assert.is_false(ok, "case " .. i)
        assert.matches(case[2], err, 1, false, "case " .. i)
      else
        assert.is_true(ok, "case " .. i .. ": " .. tostring(err))
      end
    end
    assert.has_error(function() core.shape_new(rec(1), { array_mt }) end)
    assert.has_error(function() core.shape_test({}, 1) end)
  end)
end)

describe("a 1000-lead body", function()
  local leads_def = require "instantly.entities.leads"
  local op
  for _, o in ipairs(leads_def.operations) do if o.lua_method == "add_many" then op = o end end
  local c = validate.compile(op)

  local function body()
    local leads = {}
    for i = 1, 1000 do
      leads[i] = { email = ("lead%04d@example.com"):format(i), first_name = "F" .. i, last_name = "L" .. i,
                   company_name = "C", phone = "+1", website = "https://x.example",
                   custom_variables = { industry = "SaaS", employees = 11, vip = false } }
    end
    return { campaign_id = UUID, skip_if_in_workspace = true, leads = leads }
  end

  it("is accepted by the compiled test and sent as it is", function()
    local b = body()
    assert.is_true(validate.accepts(c.params.leads)(b.leads))
    local _, sent, err = validate.route(c, b)
    assert.is_nil(err)
    assert.equal(b.leads, sent.leads)
  end)

  it("names the one bad lead among 1000, at any depth", function()
    local cases = {
      { 537, "email", 5, "leads[537].email: must be a string, got integer" },
      { 1000, "custom_variables", { x = {} },
        "leads[1000].custom_variables.x: must be a string, number or boolean, got empty table" },
      { 1, "lt_interest_status", 7, "leads[1].lt_interest_status: 7 is not one of 1, 2, 3, 4, 0, -1, -2, -3, -4" },
      { 250, "assigned_to", "nope", 'leads[250].assigned_to: "nope" is not a uuid' },
      { 999, "custom_variables", { 1, 2 },
        "leads[999].custom_variables: must be an object (a table with string keys), got array" },
    }
    for _, case in ipairs(cases) do
      local b = body()
      b.leads[case[1]][case[2]] = case[3]
      local _, _, err = validate.route(c, b)
      assert.equal(case[4], err)
    end
  end)

  it("converts on a copy: the one changed lead is new, the others are the caller's", function()
    local b = body()
    b.leads[20].lt_interest_status = 2.0
    local _, sent, err = validate.route(c, b)
    assert.is_nil(err)
    assert.equal("float", mtype(b.leads[20].lt_interest_status))
    assert.equal("integer", mtype(sent.leads[20].lt_interest_status))
    assert.are_not.equal(b.leads, sent.leads)
    assert.are_not.equal(b.leads[20], sent.leads[20])
    assert.equal(b.leads[19], sent.leads[19])
    assert.equal(b.leads[21], sent.leads[21])
  end)

  it("warn reports at most 20 problems, in lead order, and sends the body as given", function()
    local b = body()
    for i = 1, 30 do b.leads[i * 10].first_name = i end
    local _, sent, err, warnings = validate.route(c, b, "warn")
    assert.is_nil(err)
    assert.equal(20, #warnings)
    assert.equal("leads[10].first_name: must be a string, got integer", warnings[1])
    assert.equal("leads[200].first_name: must be a string, got integer", warnings[20])
    assert.equal(b.leads, sent.leads)
  end)
end)

describe("core.shape_encode", function()
  -- Shapes that let nearly anything through, so what is written comes
  -- from the encoder's own walk: the text must be json_encode's.
  local open_shapes = {
    any = validate.prepare({ name = "any", type = "object" }),
    list = validate.prepare({ name = "list", type = "array" }),
    field = validate.prepare({ name = "f", type = "object", fields = {
      { name = "x", type = "object" }, { name = "s", type = "string", nullable = true },
      { name = ("long"):rep(20), type = "integer" } } }),
    map = validate.prepare({ name = "m", type = "object", values = { type = "scalar", nullable = true } }),
  }

  local function all_bytes()
    local b = {}
    for i = 0, 255 do b[#b + 1] = string.char(i) end
    return table.concat(b)
  end

  local function nest(levels, leaf)
    local v = leaf
    for _ = 1, levels do v = { x = v } end
    return v
  end

  local cyclic = { x = {} }
  cyclic.x.back = cyclic
  local self_list = {}
  self_list[1] = self_list

  local hostile = {
    {}, { x = {} }, { x = core.null }, { s = core.null }, { x = { 1, 2, core.null } },
    { x = cyclic }, cyclic, { self_list }, self_list,
    nest(998, "leaf"), nest(999, "leaf"), nest(1000, "leaf"), nest(1200, {}),
    { x = { big = ("\u{10348}a\"\\\n"):rep(50000) } }, { s = ("x"):rep(1 << 20) },
    { x = { n = 0 / 0 } }, { x = { n = math.huge } }, { x = { n = -math.huge } }, { x = { n = 1.5, i = 1 << 62 } },
    { x = { [2] = "b" } }, { x = { "a", [3] = "c" } }, { x = { [true] = 1 } }, { x = { [1.5] = 1 } },
    { x = { a = 1, [1] = 2 } }, { [5] = "five" }, { [true] = 1 },
    setmetatable({ x = {} }, { __index = function() return "ghost" end }),
    setmetatable({ x = {} }, { __pairs = function() return next, { s = 5 }, nil end }),
    { x = setmetatable({ a = 1 }, { __pairs = function() return next, {}, nil end }) },
    { x = setmetatable({}, { __index = { a = 1 } }) },
    { x = core.array({}) }, { x = core.array({ 1, 2 }) }, core.array({}),
    { x = setmetatable({ a = 1 }, core.array_mt) },
    { s = all_bytes() }, { x = { [all_bytes()] = 1 } }, { s = "\xff" }, { s = "\xc0\x80" }, { s = "\xed\xa0\x80" },
    { s = "ok\xf4\x90\x80\x80" }, { s = "\xe2\x82" }, { x = { ["\xff"] = 1 } },
    { x = print }, { x = coroutine.create(function() end) }, { x = io.stdout }, print, "str", 5, true, core.null,
    { 1, 2, 3 }, { "a", { b = { "c" } } }, { [1] = "a", [2] = "b", [3] = "c" },
    { [("long"):rep(20)] = 5 }, { [("long"):rep(20)] = "five" }, { [("long"):rep(20)] = 5.0 },
    { k = "v", j = false, n = 1, f = 2.5 }, { k = {} }, { k = core.null },
    { { 1, 2 }, { "a" } }, core.array({ core.null }), { "a", ("\0"):rep(10), { [all_bytes()] = true } },
    { 0 / 0 }, { { [2] = 1 } }, { "x", print },
  }
  for i = 0, 255 do hostile[#hostile + 1] = { s = string.char(i) } end
  for i = 0, 255 do hostile[#hostile + 1] = { s = "ab" .. string.char(i) .. ("c"):rep(20) } end

  for name, node in pairs(open_shapes) do
    it("writes json_encode's text or says false: " .. name, function()
      local shape = core.shape_new(validate.program(node))
      local taken = 0
      for i, v in ipairs(hostile) do
        local want = core.json_encode(v)
        local text = core.shape_encode(shape, v)
        if not want then
          assert.is_false(text, "case " .. i .. " encoded where json_encode refuses")
        elseif text then
          taken = taken + 1
          assert.equal(want, text, "case " .. i)
          local out, probs = validate.walk(node, v, {})
          assert.same({}, probs, "case " .. i)
          assert.is_true(rawequal(out, v), "case " .. i)
        else
          assert.is_false(text)
        end
      end
      assert.is_true(taken > 5, name .. " took only " .. taken)
    end)
  end

  it("takes every valid value json_encode can write, under an open shape", function()
    local shape = core.shape_new(validate.program(open_shapes.any))
    for i, v in ipairs(hostile) do
      if type(v) == "table" and getmetatable(v) == nil and next(v) ~= nil and type(next(v)) == "string" then
        local want = core.json_encode(v)
        if want then assert.equal(want, core.shape_encode(shape, v), "case " .. i) end
      end
    end
  end)

  it("keeps the key cache right for json_encode after a refusal halfway", function()
    local shape = core.shape_new(validate.program(open_shapes.field))
    local v = { x = { alpha = 1, beta = 2 }, s = 5 }
    assert.is_false(core.shape_encode(shape, v))
    local w = { x = { alpha = 1, beta = 2 } }
    assert.equal(core.json_encode(w), core.shape_encode(shape, w))
    assert.equal('{"alpha":1,"beta":2}', core.json_encode(w.x, { sort_keys = true }))
  end)

  it("raises on misuse only", function()
    local shape = core.shape_new(validate.program(open_shapes.any))
    assert.has_error(function() core.shape_encode({}, {}) end)
    assert.has_error(function() core.shape_encode(shape) end)
    assert.has_error(function() core.shape_new({ 1, 0, 0, 0, 0, 0, -1, 0, 0, 0 }, { {}, null }) end,
      "bad argument #2 to 'shape_new' (refs[1] must be core.array_mt and refs[2] core.null)")
    assert.has_error(function() core.shape_new({ 1, 0, 0, 0, 0, 0, -1, 0, 0, 0 }, { array_mt, false }) end)
  end)

  it("finds a field whose name Lua does not intern by its bytes", function()
    local long = ("n"):rep(100)
    local node = validate.prepare({ name = "o", type = "object", fields = {
      { name = long, type = "integer", required = true } } })
    local shape = core.shape_new(validate.program(node))
    -- a different string object with the same bytes
    local key = ("n"):rep(50) .. ("n"):rep(50)
    assert.equal('{"' .. long .. '":1}', core.shape_encode(shape, { [key] = 1 }))
    assert.is_false(core.shape_encode(shape, { [key] = "one" }))
    assert.is_false(core.shape_encode(shape, { [long:sub(2)] = 1 }))
  end)

  -- A table whose first key (in next's order) is a string but that holds
  -- key 1 too, in its hash part: shape_encode takes it for an object
  -- without asking for its length, and must still refuse it when the
  -- integer key comes, as json_encode raises for it.
  local function string_first_with_ints(value_of_one)
    for i = 1, 500 do
      local t = { ["k" .. i] = "v", ["j" .. i] = "w", ["m" .. i] = "x" }
      t[1] = value_of_one -- a free hash slot takes it: no array part
      if type(next(t)) == "string" and rawlen(t) >= 1 then return t end
    end
    error("no table with a string first and key 1 in its hash part")
  end

  it("refuses an object whose first key is a string when it also holds key 1", function()
    local field = core.shape_new(validate.program(open_shapes.field))
    for _, one in ipairs({ "one", 1, core.null, {}, print, 0 / 0 }) do
      local t = string_first_with_ints(one)
      local text, err = core.json_encode(t)
      assert.is_nil(text)
      assert.equal("(root): mixed array/object keys", err)
      for name, node in pairs(open_shapes) do
        local shape = core.shape_new(validate.program(node))
        assert.is_false(core.shape_encode(shape, t), name)
        assert.is_false(core.shape_encode(shape, { x = t }), name)
        assert.is_false(core.shape_encode(shape, { t }), name)
      end
      assert.is_false(core.shape_encode(field, { x = t, s = "ok" }))
      -- the cache of keys still writes the right text afterwards
      local good = { x = { k1 = "v" }, s = "ok" }
      assert.equal(core.json_encode(good), core.shape_encode(field, good))
    end
  end)

  -- Arrays under a record are walked with next, keys 1 to n in order:
  -- whatever else a table holds, or an order next does not give, is a
  -- refusal (the walker then decides), never other text.
  it("writes an array's text or says false, whatever keys it holds and in whatever order", function()
    local list = core.shape_new(validate.program(open_shapes.list))
    local any = core.shape_new(validate.program(open_shapes.any))
    local function backwards(n)
      local t = {}
      for i = n, 1, -1 do t[i] = i * 10 end
      return t
    end
    local function one_left(v)
      local t = { a = 1, b = 2, c = 3 }
      t[1] = v -- in the hash part, beside dead keys once the rest go
      t.a, t.b, t.c = nil, nil, nil
      return t
    end
    local cases = {
      { 1, 2, 3, x = 1 }, { 1, 2, 3, [5] = 5 }, { 1, nil, 3 }, { nil, 2, 3 }, { [1] = 1, [2.5] = 2 },
      { [1] = 1, ["2"] = 2 }, { 1, 2, [true] = 3 }, { { a = 1 }, { b = 2 }, [4] = {} }, { 1, 2, [-1] = 0 },
      { 1, 2, [0] = 0 }, { [1] = "a", [3] = "c" }, backwards(3), backwards(40), one_left("x"), one_left({ 1 }),
      { 1, 2, 3, [1 << 40] = 1 }, setmetatable({ 1, 2 }, { __index = function() return 3 end }),
      setmetatable({ 1, 2 }, { __pairs = function() return next, { 9 }, nil end }),
      core.array({ 1, 2, x = 3 }), { 1, 0 / 0 }, { "a", print }, { 1, { 2, { 3, nil, 5 } } },
    }
    local seq = {}
    for i = 1, 1000 do seq[i] = i % 3 == 0 and { id = i } or (i % 3 == 1 and ("s" .. i) or i + 0.5) end
    cases[#cases + 1] = seq
    for i, t in ipairs(cases) do
      for _, v in ipairs({ t, { t }, { t, t } }) do
        local want = core.json_encode(v)
        for name, shape in pairs({ list = list, any = any }) do
          local text = core.shape_encode(shape, v)
          if not want then
            assert.is_false(text, name .. " case " .. i .. " encoded where json_encode refuses")
          elseif text then
            assert.equal(want, text, name .. " case " .. i)
          end
        end
      end
    end
    -- a plain sequence, in its array part or only in the hash part, is taken
    for _, t in ipairs({ { 1, "two", core.null, false }, seq, one_left("x"), one_left({ 1 }) }) do
      assert.equal(core.json_encode(t), core.shape_encode(list, t))
      assert.equal(core.json_encode({ t }), core.shape_encode(list, { t }))
    end
  end)

  it("refuses an object that lacks a required field, or has one only through __index", function()
    local node = validate.prepare({ name = "o", type = "object", fields = {
      { name = "a", type = "string", required = true }, { name = "b", type = "string", required = true } } })
    local shape = core.shape_new(validate.program(node))
    local both = { a = "x", b = "y" }
    assert.equal(core.json_encode(both), core.shape_encode(shape, both))
    assert.is_false(core.shape_encode(shape, { a = "x", c = "y" }))
    assert.is_false(core.shape_encode(shape, {}))
    assert.is_false(core.shape_encode(shape, setmetatable({ a = "x" }, { __index = { b = "y" } })))
  end)
end)

describe("formats checked in C", function()
  -- csrc/shape.h checks each catalog format itself; it must answer what
  -- validate.lua's Lua pattern answers, on the valid samples and on every
  -- string one edit away from them (each byte replaced, dropped or
  -- doubled, a byte inserted anywhere), plus a deterministic random set.
  local SEEDS = {
    uuid = { "0b6f4a8e-1c2d-4e5f-8a9b-0c1d2e3f4a5b", "ABCDEF01-2345-6789-abcd-ef0123456789" },
    email = { "ada@example.com", "a.b@c.d", "x@y.z", "first.last@sub.domain.org", "a@b..c", "a@.b", "a@b.",
              "@b.c", "a@@b.c", "a b@c.d", "a@b.c\n", ("a"):rep(246) .. "@b.cd", ("a"):rep(247) .. "@b.cd",
              ("a"):rep(248) .. "@b.cd" },
    date = { "2026-02-28", "2024-02-29", "2023-02-29", "1900-02-29", "2000-02-29", "2026-12-31", "2026-13-01",
             "2026-04-31", "0000-01-01" },
    ["date-time"] = { "2026-01-31T09:00:00Z", "2026-01-31t09:00", "2026-01-31 23:59:60.123+05:30",
                      "2026-01-31T09:00:30:60Z", "2026-01-31T09:00:00.5-1130", "2026-01-31T24:00",
                      "2026-01-31T09:00:00.Z", "2026-01-31T09:00:00+2400", "2026-01-31", "2024-02-29T00:00z",
                      "2026-01-31T09:00:60:60", "2026-01-31T09:00+19:59" },
    uri = { "https://example.com/x", "a://b", "h+t.t-p://x?y#z", "1http://x", "http:/x", "http:///x",
            "http://?x", "http://x y", "http://#", "ftp://host", "A://b/c d" },
    ["hh:mm"] = { "09:30", "23:59", "24:00", "00:60", "9:30", "09:3", "19:59" },
  }
  local ALPHABET = { "0", "1", "2", "3", "5", "6", "9", "a", "f", "g", "A", "F", "Z", "z", "T", "t", " ", "\t",
                     "\v", "-", "+", ":", ".", "@", "/", "?", "#", "\0", "\x80", "\xe9", "\xff" }

  local function variants(seed)
    local out = { seed, "" }
    for i = 1, #seed do
      local before, after = seed:sub(1, i - 1), seed:sub(i + 1)
      out[#out + 1] = before .. after
      out[#out + 1] = before .. seed:sub(i, i):rep(2) .. after
      for _, c in ipairs(ALPHABET) do out[#out + 1] = before .. c .. after end
    end
    for i = 1, #seed + 1 do
      for _, c in ipairs(ALPHABET) do out[#out + 1] = seed:sub(1, i - 1) .. c .. seed:sub(i) end
    end
    return out
  end

  for name, seeds in pairs(SEEDS) do
    it(name, function()
      local node = validate.prepare({ name = "f", type = "string", format = name })
      local accepts = validate.accepts(node)
      local shape = core.shape_new(validate.program(node))
      local seen, yes = 0, 0
      local function same(s)
        local want = validate.format_ok(name, s)
        assert.equal(want, accepts(s), ("%s %q"):format(name, s))
        if core.json_encode(s) then -- (else no text whatever the format says)
          assert.equal(want, core.shape_encode(shape, s) ~= false, ("%s %q (shape_encode)"):format(name, s))
        end
        seen = seen + 1
        if want then yes = yes + 1 end
      end
      for _, seed in ipairs(seeds) do
        for _, s in ipairs(variants(seed)) do same(s) end
      end
      -- a deterministic random set over the alphabet, lengths 0 to 40
      local x = 12345
      for _ = 1, 3000 do
        local t = {}
        x = (x * 1103515245 + 12345) % 2147483648
        for j = 1, x % 41 do
          x = (x * 1103515245 + 12345) % 2147483648
          t[j] = ALPHABET[x % #ALPHABET + 1]
        end
        same(table.concat(t))
      end
      assert.is_true(yes > 20 and yes < seen, name .. ": " .. yes .. " of " .. seen .. " valid")
    end)
  end
end)
