-- The JSON codec of instantly.core: every rule of the README "JSON"
-- section, with exact messages for failures and misuse.
local core = require "instantly.core"

local decode, encode = core.json_decode, core.json_encode

-- Runs a finalizer re-entry scenario in a fresh lua5.4 with only the core
-- (a small heap: whether a finalizer runs mid-call does not depend on
-- busted's heap) and returns the counts its last line reports.
local function finalizer_rounds(script)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(script)
  f:close()
  local p = assert(io.popen("LUA_CPATH='" .. package.cpath:gsub("'", "") .. "' lua5.4 " .. path .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  os.remove(path)
  assert(ok, out)
  local during, inner = out:match("^during (%d+) inner (%d+)\n$")
  assert(during, out)
  return during, inner
end

-- A decode interrupted by finalizers that decode too, in a fresh process
-- (whether a finalizer runs inside the outer decode depends on the heap,
-- so only the core is loaded); rounds double the outer work (400 to 51200
-- items) until a finalizer has run inside it. `p` holds Lua snippets:
-- setup (optional), part (the i-th item's text), inner (a finalizer's
-- decode and checks, with i), outer (the outer decode of `text`) and
-- check (of item `o`, the i-th of the outer value). Returns the counts
-- of finalizers that ran during an outer decode, and of all of them.
local function decode_under_finalizers(p)
  return finalizer_rounds(([==[
    local core = require("instantly.core")
    local decode, null = core.json_decode, core.null
    %s
    local inner, during, in_outer = 0, 0, false
    for r = 0, 7 do
      local n, parts = 400 << r, {}
      for i = 1, n do parts[i] = %s end
      local text = "[" .. table.concat(parts, ",") .. "]"
      collectgarbage("incremental", 10, 400)
      for i = 1, 200 do
        setmetatable({}, { __gc = function()
          if in_outer then during = during + 1 end
          %s
          inner = inner + 1
        end })
      end
      in_outer = true
      local v = %s
      in_outer = false
      collectgarbage("incremental", 200, 100)
      for i = 1, n do
        local o = v[i]
        %s
      end
      if during > 0 then break end
    end
    collectgarbage()
    io.write("during ", during, " inner ", inner, "\n")
  ]==]):format(p.setup or "", p.part, p.inner, p.outer, p.check))
end
local null = core.null

local same = require "support.same_value"

local A = core.array

describe("core.json_decode", function()
  describe("the null_tables option", function()
    it("lists each object holding a null once, inner objects first, after what the list holds", function()
      local l = { "before" }
      local v = assert(decode('{"a":null,"b":{"c":1,"d":null,"e":null},"f":[null,{"g":null}],"h":{},"i":{"j":2}}',
        { null_tables = l }))
      assert.equal(4, #l)
      assert.equal("before", l[1])
      assert.equal(v.b, l[2])
      assert.equal(v.f[2], l[3])
      assert.equal(v, l[4])
      assert.equal(core.null, v.a, "the decoded value itself keeps its nulls")
      assert.equal(core.null, v.f[1])
    end)

    it("lists an object once even when it is moved into its table in several chunks", function()
      local parts = {}
      for i = 1, 9000 do parts[i] = ('"k%d":%s'):format(i, i % 3000 == 0 and "null" or "1") end
      local l = {}
      local v = assert(decode("{" .. table.concat(parts, ",") .. "}", { null_tables = l }))
      assert.same({ v }, l)
    end)

    it("lists nothing for documents without nulls, and refuses a list that is not a table", function()
      local l = {}
      assert(decode('[{"a":1},[],{},"null"]', { null_tables = l }))
      assert.equal(0, #l)
      assert.has_error(function() decode("{}", { null_tables = 5 }) end,
        "bad argument #2 to 'decode' (option 'null_tables' must be a table)")
      assert.has_error(function() core.json_encode({}, { null_tables = {} }) end)
    end)

    it("keeps the entries of a finalizer decoding into the same list in the middle of a decode", function()
      -- The decode used to count from the list's length at its start, so
      -- its later entries overwrote those a finalizer's decode appended.
      local during, inner = decode_under_finalizers {
        setup = [[local L, INNER, SET = {}, {}, nil]],
        part = [[('{"id":%d,"x":null,"s":"v%d"}'):format(i, i)]],
        inner = [[INNER[#INNER + 1] = decode(('{"inner":%d,"y":null}'):format(i), { null_tables = L })]],
        outer = [[decode(text, { null_tables = L })]],
        check = [[if i == 1 then
          SET = {}
          for _, t in ipairs(L) do SET[t] = (SET[t] or 0) + 1 end
          for k, t in ipairs(INNER) do assert(SET[t] == 1, "the finalizer's object " .. k) end
        end
        assert(o.id == i and o.x == null and SET[o] == 1, "record " .. i)]],
      }
      assert.is_true(tonumber(during) > 0, "no finalizer ran during a decode: the spec proves nothing")
      assert.is_true(tonumber(inner) > 0)
    end)
  end)

  describe("the nulls option", function()
    -- What a decode gives and then a walk takes out (what the SDK did
    -- before the option): every object member holding null, at any depth,
    -- leaves the object and its name goes to gone[object]; arrays keep
    -- theirs. The option must give the same value and the same names.
    local function reference(text)
      local v = assert(decode(text))
      local gone = {}
      local function walk(t)
        if type(t) ~= "table" then return end
        local is_array = getmetatable(t) == core.array_mt
        local names
        for k, x in pairs(t) do
          if x == null and not is_array then
            names = names or {}
            names[#names + 1] = k
            t[k] = nil
          else
            walk(x)
          end
        end
        if names then
          table.sort(names)
          gone[t] = names
        end
      end
      walk(v)
      return v, gone
    end

    -- The names recorded for an object as a fresh array: one name is
    -- recorded as the string itself, several as an array.
    local function listed(names)
      if type(names) == "string" then return { names } end
      assert(names == nil or type(names) == "table", "a string or an array of names")
      return names and { table.unpack(names) } or nil
    end

    -- Compares the two values and the names recorded for each object.
    local function check(text)
      local W = setmetatable({}, { __mode = "k" })
      local ours = assert(decode(text, { nulls = W }))
      local theirs, gone = reference(text)
      assert(same(theirs, ours), text)
      local function walk(a, b, path)
        if type(a) ~= "table" then return end
        local names = listed(W[b])
        if names then
          assert(#names > 1 or type(W[b]) == "string", "one name is the name itself")
          table.sort(names)
        end
        assert.same(gone[a], names, text .. " at " .. path)
        for k, x in pairs(a) do walk(x, b[k], path .. "." .. tostring(k)) end
      end
      walk(theirs, ours, "(root)")
      return ours, W
    end

    local function keys(t)
      local ks = {}
      for k in pairs(t) do ks[#ks + 1] = k end
      table.sort(ks)
      return ks
    end

    it("leaves null members out of objects at any depth, names them in input order, keeps array nulls", function()
      local W = setmetatable({}, { __mode = "k" })
      local v = assert(decode('{"z":null,"b":1,"a":null,"c":{"d":null,"e":{"f":null,"g":[null,{"h":null}]}},'
        .. '"i":[null,null],"j":{},"k":{"l":2}}', { nulls = W }))
      assert.same({ "z", "a" }, W[v])
      assert.same({ "b", "c", "i", "j", "k" }, keys(v))
      assert.equal("d", W[v.c]) -- one name: the name itself, no list
      assert.same({ "e" }, keys(v.c))
      assert.equal("f", W[v.c.e])
      assert.equal("h", W[v.c.e.g[2]])
      assert.is_nil(next(v.c.e.g[2]))
      assert.equal(null, v.c.e.g[1])
      assert.is_nil(W[v.c.e.g], "arrays keep their positions")
      assert.equal(2, #v.i)
      assert.equal(null, v.i[2])
      assert.is_nil(W[v.j])
      assert.is_nil(W[v.k])
      -- a document that is null, or an array of them, stays as it is
      assert.equal(null, decode("null", { nulls = W }))
      assert.equal(null, decode("[null]", { nulls = W })[1])
    end)

    it("names one null by the name itself and several by an array, whatever the path", function()
      local W = setmetatable({}, { __mode = "k" })
      -- names that are empty, hold a NUL, come through escapes or bypass the key cache
      local long = ("n"):rep(60)
      for text, name in pairs {
        ['{"":null,"x":1}'] = "", ['{"a\\u0000b":null}'] = "a\0b",
        ['{"\\u00e9t\\u00e9":null,"b":[]}'] = "\u{e9}t\u{e9}",
        ['{"' .. long .. '":null,"y":2}'] = long,
        -- repeated keys (the general path): the last one decides
        ['{"a":1,"a":null,"b":2}'] = "a", ['{"a":null,"b":2,"a":3,"b":null}'] = "b",
      } do
        local v = assert(decode(text, { nulls = W }))
        assert.equal(name, W[v], text)
        assert.is_nil(v[name], text)
      end
      local v = assert(decode('{"a":null,"a":null,"b":null}', { nulls = W }))
      local names = { table.unpack(W[v]) }
      table.sort(names)
      assert.same({ "a", "b" }, names)
      -- nested objects each get their own entry
      v = assert(decode('{"p":{"q":null,"r":{"s":null,"t":null}},"u":null}', { nulls = W }))
      assert.equal("u", W[v])
      assert.equal("q", W[v.p])
      assert.same({ "s", "t" }, W[v.p.r])
      -- one null beyond the 64 members the decoder keeps a bit for
      local parts = {}
      for i = 1, 100 do parts[i] = ('"k%d":%s'):format(i, i == 80 and "null" or i) end
      v = assert(decode("{" .. table.concat(parts, ",") .. "}", { nulls = W }))
      assert.equal("k80", W[v])
      assert.equal(79, v.k79)
      assert.equal(81, v.k81)
    end)

    it("gives what decoding and then taking nulls out gives, repeated keys included", function()
      for _, text in ipairs {
        '{"a":null,"a":1}', '{"a":1,"a":null}', '{"a":null,"a":null}', '{"a":null,"b":2,"a":3,"b":null}',
        '{"a":{"x":null},"a":null}', '{"a":null,"a":{"x":null,"x":0}}', '[{"a":null},{"a":1,"a":null}]',
        '{"a\\u0062":null,"ab":1}', '{"ab":1,"a\\u0062":null}', '{"\\u00e9":null}',
      } do
        check(text)
      end
      -- objects with more than 64 members (where the decoder stops keeping
      -- a bit per member), with nulls before and after the 64th
      for _, at in ipairs { { 1 }, { 64 }, { 65 }, { 1, 64, 65, 200 }, { 200 } } do
        local parts, isnull = {}, {}
        for _, i in ipairs(at) do isnull[i] = true end
        for i = 1, 200 do parts[i] = ('"k%d":%s'):format(i, isnull[i] and "null" or i) end
        check("{" .. table.concat(parts, ",") .. "}")
        check("[{" .. table.concat(parts, ",") .. '},{"k1":null}]')
      end
    end)

    it("gives the same on objects moved in several steps, a key repeated across them", function()
      local parts = {}
      for i = 1, 9000 do parts[i] = ('"k%d":%s'):format(i, i % 3000 == 0 and "null" or "1") end
      parts[#parts + 1] = '"k3000":5'   -- null in the first step, a value in the last
      parts[#parts + 1] = '"k2":null'   -- a value in the first step, null in the last
      local v, W = check("{" .. table.concat(parts, ",") .. "}")
      assert.equal(5, v.k3000)
      assert.is_nil(v.k2)
      local names = { table.unpack(W[v]) }
      table.sort(names)
      assert.same({ "k2", "k6000", "k9000" }, names)
      -- one null across the steps: the name alone
      parts = {}
      for i = 1, 9000 do parts[i] = ('"k%d":%s'):format(i, i == 4500 and "null" or "1") end
      v, W = check("{" .. table.concat(parts, ",") .. "}")
      assert.equal("k4500", W[v])
      assert.is_nil(v.k4500)
    end)

    it("gives the same on generated documents (repeated keys, depth, many keys)", function()
      local seed = 14
      local function rnd(n)
        seed = (seed * 1103515245 + 12345) % 2147483648
        return seed % n + 1
      end
      local gen
      gen = function(depth)
        local r = rnd(10)
        if depth > 4 or r <= 3 then
          return ({ "null", "1", '"s"', "true", "0", "null" })[rnd(6)]
        elseif r <= 5 then
          local t = {}
          for i = 1, rnd(5) - 1 do t[i] = gen(depth + 1) end
          return "[" .. table.concat(t, ",") .. "]"
        end
        -- one object in ten is wide (past 64 members), with scalar members
        local t, wide = {}, r == 10
        for i = 1, rnd(wide and 90 or 8) - 1 do
          t[i] = ('"k%d":%s'):format(rnd(wide and 80 or 6), gen(wide and 9 or depth + 1))
        end
        return "{" .. table.concat(t, ",") .. "}"
      end
      for _ = 1, 300 do check(gen(0)) end
    end)

    it("stays right when a finalizer decodes with the same table in the middle of a decode", function()
      local during, inner = decode_under_finalizers {
        setup = [[local W = setmetatable({}, { __mode = "k" })]],
        part = [[('{"id":%d,"a_%d":null,"k%d":[%d,null],"z":null}'):format(i, i % 50, i % 70, i)]],
        inner = [[local t = decode(('{"k%d":null,"a_%d":1}'):format(i % 70, i % 50), { nulls = W })
          assert(t["k" .. i % 70] == nil and t["a_" .. i % 50] == 1)
          assert(W[t] == "k" .. i % 70)]],
        outer = [[decode(text, { nulls = W })]],
        check = [[assert(o.id == i and o["a_" .. i % 50] == nil and o.z == nil and o["k" .. i % 70][2] == null,
          "record " .. i)
        assert(#W[o] == 2 and W[o][1] == "a_" .. i % 50 and W[o][2] == "z", "names of record " .. i)]],
      }
      assert.is_true(tonumber(during) > 0, "no finalizer ran during a decode: the spec proves nothing")
      assert.is_true(tonumber(inner) > 0)
    end)

    it("holds no more than decoding and then taking nulls out: objects that only hold a null", function()
      local text = "[" .. ('{"a":null},'):rep(99999) .. '{"a":null}]'
      local function held(fn)
        collectgarbage()
        collectgarbage()
        local before = collectgarbage("count")
        local keep = { fn() }
        collectgarbage()
        collectgarbage()
        local bytes = (collectgarbage("count") - before) * 1024
        assert.is_not_nil(keep[2])
        return bytes
      end
      local ours = held(function()
        local W = setmetatable({}, { __mode = "k" })
        return assert(decode(text, { nulls = W })), W
      end)
      local theirs = held(function() return reference(text) end)
      assert(ours <= theirs, ("%d bytes held, decode and strip %d"):format(ours, theirs))
    end)

    it("refuses a value that is not a table, and null_tables with it", function()
      assert.has_error(function() decode("{}", { nulls = true }) end,
        "bad argument #2 to 'decode' (option 'nulls' must be a table)")
      assert.has_error(function() decode("{}", { nulls = {}, null_tables = {} }) end,
        "bad argument #2 to 'decode' (options 'nulls' and 'null_tables' exclude each other)")
      assert.has_error(function() encode({}, { nulls = {} }) end)
    end)

    it("leaves what a failed decode named to the collector", function()
      local W = setmetatable({}, { __mode = "k" })
      assert.is_nil(decode('{"a":{"b":null},"c":null,', { nulls = W }))
      collectgarbage()
      collectgarbage()
      assert.is_nil(next(W))
    end)
  end)

  describe("values", function()
    local rows = {
      { "0", 0 },
      { "-0", 0 },
      { "42", 42 },
      { "-17", -17 },
      { "9007199254740993", 9007199254740993 },
      { "9223372036854775807", math.maxinteger },
      { "-9223372036854775808", math.mininteger },
      { "9223372036854775808", 9223372036854775808.0 },
      { "-9223372036854775809", -9223372036854775809.0 },
      { "123456789012345678901234567890", 1.2345678901234568e29 },
      -- around the short positive integer path (up to 18 digits)
      { "7", 7 },
      { "123456789012345678", 123456789012345678 },
      { "999999999999999999", 999999999999999999 },
      { "1234567890123456789", 1234567890123456789 },
      { "[7,12e3,12.5,120E-1,3]", A { 7, 12000.0, 12.5, 12.0, 3 } },
      { '{"a":42,"b":9}', { a = 42, b = 9 } },
      { "1.5", 1.5 },
      { "-0.0", -0.0 },
      { "1e2", 100.0 },
      { "1E+2", 100.0 },
      { "1e-2", 0.01 },
      { "0.1", 0.1 },
      { "2.2250738585072014e-308", 2.2250738585072014e-308 },
      { "4.9406564584124654e-324", 4.9406564584124654e-324 },
      { "1.7976931348623157e308", 1.7976931348623157e308 },
      { "1e-400", 0.0 },
      { "0.30000000000000004", 0.30000000000000004 },
      { "12345678901234567890.5", 12345678901234567890.5 },
      { "0.000000000000000000000000001", 1e-27 },
      { "true", true },
      { "false", false },
      { "null", null },
      { '""', "" },
      { '"abc"', "abc" },
      { '"a\\"b\\\\c\\/d"', 'a"b\\c/d' },
      { '"\\b\\f\\n\\r\\t"', "\b\f\n\r\t" },
      { '"\\u0041\\u00e9\\u20AC"', "Aé€" },
      { '"\\u0000"', "\0" },
      { '"\\ud83d\\ude00"', "😀" },
      { '"\\uDBFF\\uDFFF"', "\u{10FFFF}" },
      { '"héllo wörld 😀"', "héllo wörld 😀" },
      { '"x\\ny"', "x\ny" },
      { " \t\r\n1 \t\r\n", 1 },
      { "[]", A {} },
      { "{}", {} },
      { "[1,2,3]", A { 1, 2, 3 } },
      { "[null, 1, null]", A { null, 1, null } },
      { "[null]", A { null } },
      { '{"a":null}', { a = null } },
      { '{"a":1,"a":2}', { a = 2 } },
      { '{"1":"one"}', { ["1"] = "one" } },
      { '{"a":[{"b":[]}],"c":{"d":true}}', { a = A { { b = A {} } }, c = { d = true } } },
      { ' [ 1 , { "x" : [ ] } ] ', A { 1, { x = A {} } } },
    }
    for _, row in ipairs(rows) do
      it(("decodes %q"):format(row[1]), function()
        local v, err = decode(row[1])
        assert.is_nil(err)
        assert(same(v, row[2]))
      end)
    end
  end)

  it("finds bad bytes at every position of a string (word boundaries)", function()
    for len = 1, 20 do
      for pos = 1, len do
        local pre, post = ("a"):rep(pos - 1), ("b"):rep(len - pos)
        for _, c in ipairs({ "\n", "\0", "\127\255", "\192\128" }) do
          local v, err = decode('"' .. pre .. c .. post .. '"')
          if c == "\127\255" then
            assert.is_nil(v)
            assert.equal("invalid UTF-8 at byte " .. (pos + 2), err)
          elseif c == "\192\128" then
            assert.equal("invalid UTF-8 at byte " .. (pos + 1), err)
          else
            assert.equal(("unescaped control character 0x%02X in string at byte %d"):format(c:byte(), pos + 1), err)
          end
        end
        assert.equal(pre .. "é" .. post, decode('"' .. pre .. "é" .. post .. '"'))
        assert.equal(pre .. '"' .. post, decode('"' .. pre .. '\\"' .. post .. '"'))
      end
    end
  end)

  it("keeps integer and float subtypes apart", function()
    assert.equal("integer", math.type(decode("10")))
    assert.equal("float", math.type(decode("10.0")))
    assert.equal("float", math.type(decode("1e1")))
  end)

  it("gives decoded arrays core.array_mt and objects no metatable", function()
    local v = decode('{"a":[],"b":{}}')
    assert.equal(core.array_mt, getmetatable(v.a))
    assert.is_nil(getmetatable(v.b))
    assert.is_nil(getmetatable(v))
  end)

  it("keeps the length and positions of arrays with nulls", function()
    local v = decode("[null,null,3,null]")
    assert.equal(4, #v)
    assert.equal(null, v[1])
    assert.equal(3, v[3])
    assert.equal(null, v[4])
  end)

  it("uses the same null as lua-cjson", function()
    local ok, cjson = pcall(require, "cjson")
    if not ok then return pending("lua-cjson not installed") end
    assert.equal(cjson.null, core.null)
    assert.equal(cjson.null, decode("null"))
    assert.equal("null", encode(cjson.decode("null")))
  end)

  describe("errors", function()
    local rows = {
      { "", "unexpected end of input at byte 1" },
      { "   ", "unexpected end of input at byte 4" },
      { '{"a":}', "unexpected '}' at byte 6" },
      { "[1,]", "unexpected ']' at byte 4" },
      { "[1 2]", "unexpected '2' at byte 4" },
      { "{,}", "unexpected ',' at byte 2" },
      { '{"a" 1}', "unexpected '1' at byte 6" },
      { "{1:2}", "unexpected '1' at byte 2" },
      { '{"a":1,}', "unexpected '}' at byte 8" },
      { "[", "unexpected end of input at byte 2" },
      { "[1", "unexpected end of input at byte 3" },
      { '{"a":1', "unexpected end of input at byte 7" },
      { '"abc', "unexpected end of input at byte 5" },
      { '"ab\\', "unexpected end of input at byte 5" },
      { "1 2", "unexpected '2' at byte 3" },
      { "[12x]", "unexpected 'x' at byte 4" },
      { "[12\128]", "unexpected byte 0x80 at byte 4" },
      { "[1.]", "invalid number at byte 2" },
      { "[] x", "unexpected 'x' at byte 4" },
      { "\0", "unexpected byte 0x00 at byte 1" },
      { "\239\187\191{}", "unexpected byte 0xEF at byte 1" },
      { "'a'", "unexpected ''' at byte 1" },
      { "tru", "invalid literal at byte 1" },
      { "nul", "invalid literal at byte 1" },
      { "falsy", "invalid literal at byte 1" },
      { "[truex]", "unexpected 'x' at byte 6" },
      { "NaN", "unexpected 'N' at byte 1" },
      { "Infinity", "unexpected 'I' at byte 1" },
      { "-", "invalid number at byte 1" },
      { "-a", "invalid number at byte 1" },
      { "01", "invalid number at byte 1" },
      { "[-01]", "invalid number at byte 2" },
      { "1.", "invalid number at byte 1" },
      { "1.e5", "invalid number at byte 1" },
      { ".5", "unexpected '.' at byte 1" },
      { "+1", "unexpected '+' at byte 1" },
      { "1e", "invalid number at byte 1" },
      { "1e+", "invalid number at byte 1" },
      { "0x10", "unexpected 'x' at byte 2" },
      { "1e400", "number out of range at byte 1" },
      { "[-1e400]", "number out of range at byte 2" },
      { '"a\nb"', "unescaped control character 0x0A in string at byte 3" },
      { '"a\tb"', "unescaped control character 0x09 in string at byte 3" },
      { '"a\\qb"', "invalid escape '\\q' at byte 3" },
      { '"a\\ b"', "invalid escape '\\' + byte 0x20 at byte 3" },
      { '"\\u12"', "invalid \\u escape at byte 2" },
      { '"\\u12G4"', "invalid \\u escape at byte 2" },
      { '"\\ud83d"', "unpaired surrogate in \\u escape at byte 2" },
      { '"\\ud83dx"', "unpaired surrogate in \\u escape at byte 2" },
      { '"\\ud83d\\u0041"', "unpaired surrogate in \\u escape at byte 2" },
      { '"\\ude00"', "unpaired surrogate in \\u escape at byte 2" },
      { '"\\ud83d\\ud83d"', "unpaired surrogate in \\u escape at byte 2" },
      { '"a\255"', "invalid UTF-8 at byte 3" },
      { '"\192\128"', "invalid UTF-8 at byte 2" },          -- overlong NUL
      { '"\224\128\128"', "invalid UTF-8 at byte 2" },      -- overlong
      { '"\237\160\128"', "invalid UTF-8 at byte 2" },      -- encoded surrogate
      { '"\244\144\128\128"', "invalid UTF-8 at byte 2" },  -- above U+10FFFF
      { '"\226\130"', "invalid UTF-8 at byte 2" },          -- truncated
      { '"\128"', "invalid UTF-8 at byte 2" },              -- lone continuation
      { '"\\n\255"', "invalid UTF-8 at byte 4" },           -- after an escape
      { '{"\255":1}', "invalid UTF-8 at byte 3" },
      { '"\\n\1"', "unescaped control character 0x01 in string at byte 4" },
    }
    for _, row in ipairs(rows) do
      it(("rejects %q"):format(row[1]), function()
        local v, err = decode(row[1])
        assert.is_nil(v)
        assert.equal(row[2], err)
      end)
    end
  end)

  describe("depth", function()
    local function nest(n, open, close)
      return open:rep(n) .. close:rep(n)
    end

    it("accepts 1000 levels by default and refuses 1001", function()
      assert.is_table(decode(nest(1000, "[", "]")))
      local v, err = decode(nest(1001, "[", "]"))
      assert.is_nil(v)
      assert.equal("nesting deeper than max_depth (1000) at byte 1001", err)
      v, err = decode(('{"a":'):rep(1001) .. "1" .. ("}"):rep(1001))
      assert.is_nil(v)
      assert.equal("nesting deeper than max_depth (1000) at byte 5001", err)
    end)

    it("takes max_depth per call", function()
      assert.same({ { {} } }, decode("[[[]]]", { max_depth = 3 }))
      assert.same({ nil, "nesting deeper than max_depth (2) at byte 3" },
        { decode("[[[]]]", { max_depth = 2 }) })
      assert.equal(1, decode("1", { max_depth = 1 }))
      -- and the next call is back to the default
      assert.is_table(decode(nest(1000, "[", "]")))
    end)

    it("handles the deepest allowed document without trouble", function()
      local v = decode(nest(10000, "[", "]"), { max_depth = 10000 })
      assert.is_table(v)
    end)

    it("keeps every value of a deep document whose levels are wide", function()
      -- 999 levels of 300 values each: more waiting values than the
      -- decoder keeps on the Lua stack, so inner levels are moved early.
      local level = ("7,"):rep(299)
      local text = ("[" .. level):rep(999) .. '{"k":"v"}' .. ("]"):rep(999)
      local v = decode(text)
      for _ = 1, 999 do
        assert.equal(300, #v)
        assert.equal(7, v[299])
        v = v[300]
      end
      assert.same({ k = "v" }, v)
    end)
  end)

  describe("long containers", function()
    -- Values wait on the Lua stack until their container closes, but a
    -- container moves them into its table every DEC_CHUNK values, and
    -- the innermost one moves its values at once when the stack passes
    -- DEC_STACK_MAX (csrc/json.c): Lua's stack holds at most a million
    -- slots, so a decoder that kept everything waiting would fail these
    -- with "out of Lua stack".
    it("move waiting values early enough that Lua's stack never runs out", function()
      local v = assert(decode("[" .. ("7,"):rep(1100000) .. "8]"))
      assert.equal(1100001, #v)
      assert.equal(7, v[1100000])
      assert.equal(8, v[1100001])
      -- 900 levels of 1300 values: each below the chunk size, together
      -- more than the stack holds
      local level = ("7,"):rep(1299)
      v = assert(decode(("[" .. level):rep(900) .. "9" .. ("]"):rep(900)))
      for _ = 1, 899 do
        assert.equal(1300, #v)
        assert.equal(7, v[1299])
        v = v[1300]
      end
      assert.same({ 7, 9 }, { v[1299], v[1300] })
    end)

    it("keeps order and count across the decoder's chunk size", function()
      for _, n in ipairs { 2047, 2048, 2049, 4095, 4096, 4097, 10000 } do
        local t = {}
        for i = 1, n do t[i] = i end
        local v = decode("[" .. table.concat(t, ",") .. "]")
        assert.equal(n, #v)
        for i = 1, n do
          if v[i] ~= i then error(("n=%d: [%d] is %s"):format(n, i, tostring(v[i]))) end
        end
        local parts = {}
        for i = 1, n do parts[i] = ('"k%d":%d'):format(i, i) end
        local o = decode("{" .. table.concat(parts, ",") .. "}")
        local count = 0
        for k, x in pairs(o) do
          count = count + 1
          assert.equal("k" .. x, k)
        end
        assert.equal(n, count)
      end
    end)

    it("lets the last of repeated keys win, also across chunks", function()
      local parts = {}
      for i = 1, 5000 do parts[i] = ('"k%d":%d'):format(i % 3, i) end
      assert.same({ k0 = 4998, k1 = 4999, k2 = 5000 }, decode("{" .. table.concat(parts, ",") .. "}"))
      assert.same({ a = 3 }, decode('{"a":1,"a":2,"a":3}'))
    end)
  end)

  -- Keys go through a per-state cache (csrc/json.c push_key): every key
  -- must still come back exactly, whatever its length or neighbours.
  describe("object keys", function()
    it("come back exactly at every length, even when only a middle byte differs", function()
      local parts, want = {}, {}
      for n = 1, 45 do
        for _, mid in ipairs { "a", "b" } do
          local k = ("x"):rep(n - 1) .. mid
          if n > 2 then k = ("x"):rep(n // 2) .. mid .. ("x"):rep(n - n // 2 - 1) end
          if want[k] == nil then
            parts[#parts + 1] = ('"%s":%d'):format(k, #parts + 1)
            want[k] = #parts
          end
        end
      end
      local text = "{" .. table.concat(parts, ",") .. "}"
      for _ = 1, 2 do -- the second time from the cache
        local got = decode(text)
        assert.same(want, got)
      end
    end)

    it("survive evictions: 3000 distinct keys over many objects", function()
      local objs = {}
      for i = 1, 100 do
        local p = {}
        for j = 1, 30 do p[j] = ('"key_%d_%d":%d'):format((i * 7 + j) % 300, j, j) end
        objs[i] = "{" .. table.concat(p, ",") .. "}"
      end
      local v = decode("[" .. table.concat(objs, ",") .. "]")
      for i = 1, 100 do
        for j = 1, 30 do assert.equal(j, v[i][("key_%d_%d"):format((i * 7 + j) % 300, j)]) end
      end
    end)

    -- Objects without repeated keys fill their table from the stack top
    -- (csrc/json.c kcache); an object that may repeat one must still let
    -- the last one win, however the repetition hides from the cache.
    it("let the last of repeated keys win after evictions, nesting and bypassing keys", function()
      local many = {}
      for i = 1, 600 do many[i] = ('"evict_%d":%d'):format(i, i) end
      local long = ("L"):rep(45)
      local rows = {
        -- the first use is evicted by 600 other keys before the repeat
        { '{"dup":1,' .. table.concat(many, ",") .. ',"dup":2}', "dup", 2 },
        -- the repeat comes after an inner object that used the key too
        { '{"a":1,"x":{"a":2,"b":3},"a":4}', "a", 4 },
        { '{"a":1,"x":[{"a":2},{"b":{"a":5}}],"a":4}', "a", 4 },
        -- keys that bypass the cache: long, escaped, non-ASCII
        { ('{"%s":1,"b":2,"%s":3}'):format(long, long), long, 3 },
        { '{"ab":1,"a\\u0062":2}', "ab", 2 },
        { '{"a\\u0062":1,"ab":2}', "ab", 2 },
        { '{"é":1,"x":0,"é":2}', "é", 2 },
        { '{"a":1,"a":2,"a":3}', "a", 3 },
      }
      for _, row in ipairs(rows) do
        for _ = 1, 2 do -- cold and warm cache
          local v = assert(decode(row[1]))
          assert.equal(row[3], v[row[2]], row[1]:sub(1, 60))
        end
      end
      local inner = decode('{"a":1,"x":{"a":2,"a":3},"a":4}')
      assert.equal(3, inner.x.a)
      assert.equal(4, inner.a)
    end)

    it("give what lua-cjson gives on 400 objects full of repeated keys", function()
      local cjson = require "cjson"
      local seed = 99
      local function rand(n)
        seed = (seed * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        return 1 + (seed >> 33) % n
      end
      local function obj(depth)
        local parts = {}
        for i = 1, rand(12) do
          local k = ("k%d"):format(rand(6))
          local v = depth < 3 and rand(4) == 1 and obj(depth + 1) or ('"v%d"'):format(i)
          parts[i] = ('"%s":%s'):format(k, v)
        end
        return "{" .. table.concat(parts, ",") .. "}"
      end
      for _ = 1, 400 do
        local text = obj(1)
        local ours, theirs = decode(text), cjson.decode(text)
        local ok, why = same(theirs, ours)
        assert(ok, text .. ": " .. tostring(why))
      end
    end)

    it("stay right when many keys compete for the cache's slots", function()
      -- 5000 distinct keys, each used in three objects spread over the
      -- document, so entries are stored, moved to their other slot and
      -- evicted while objects that use them are open.
      local objs = {}
      for i = 1, 1500 do
        local p = {}
        for j = 1, 10 do
          local k = (i * 7 + j * 131) % 5000
          p[j] = ('"%s%d":%d'):format(("q"):rep(k % 37), k, j)
        end
        objs[i] = "{" .. table.concat(p, ",") .. "}"
      end
      for _ = 1, 2 do
        local v = decode("[" .. table.concat(objs, ",") .. "]")
        for i = 1, 1500 do
          for j = 1, 10 do
            local k = (i * 7 + j * 131) % 5000
            assert.equal(j, v[i][("q"):rep(k % 37) .. k])
          end
        end
      end
    end)

    -- Each cached key remembers the key that followed it (csrc/json.c
    -- parse_key) and checks it in place first: a document that breaks the
    -- pattern must read exactly as one that does not.
    it("follow objects that change their key order, or use prefixes of the expected key", function()
      local rows = {
        { "abc", "abd" }, { "abc", "ab" }, { "abc", "abdx" }, { "abc", "abd\\u0078", "abdx" },
        { "abc", "abd" }, { "abd", "abc" }, { "abc", "" }, { "abc", "abd_and_a_long_tail_of_text_x" },
        { "abc", "abd_and_a_long_tail_of_text_y" }, { "abc", "abd_and_a_lonG_tail_of_text_y" },
        { "abc", "abd" },
      }
      local parts = {}
      for i, r in ipairs(rows) do
        parts[i] = ('{"%s":%d,"%s":{"%s":%d}}'):format(r[1], i, r[2], r[1], -i)
      end
      local text = "[" .. table.concat(parts, ",") .. "]"
      for _ = 1, 3 do
        local v = assert(decode(text))
        for i, r in ipairs(rows) do
          local second = r[3] or r[2]
          assert.equal(i, v[i][r[1]])
          assert.equal(-i, v[i][second][r[1]], text)
          local n = 0
          for _ in pairs(v[i]) do n = n + 1 end
          assert.equal(2, n)
        end
      end
      -- the expected key cut short by the end of the input
      for cut = 1, 12 do
        local t = '[{"abc":1,"abd":2},{"abc":1,"abd":2}]'
        local head = t:sub(1, 20 + cut)
        local v, err = decode(head)
        assert.is_nil(v)
        assert.equal("unexpected end of input at byte " .. #head + 1, err)
      end
    end)

    -- A key that objects of two kinds share ("name" followed by "status"
    -- in one, by "timing" in the other) is predicted from either of the
    -- last two keys that followed it (csrc/json.c parse_key_scan).
    it("follow a key that objects of two kinds share, and catch a repeat found that way", function()
      local text = "[" .. ('{"name":1,"status":2,"x":{"name":3,"timing":4}},'):rep(4)
        -- "status" repeats, and the repeat is predicted as the other follower of "name"
        .. '{"status":1,"name":2,"status":3},'
        .. '{"name":1,"statuz":2},{"name":1,"timinG":3},{"name":1,"status":5,"timing":6}]'
      for _ = 1, 3 do
        local v = assert(decode(text))
        for i = 1, 4 do assert.same({ name = 1, status = 2, x = { name = 3, timing = 4 } }, v[i]) end
        assert.same({ status = 3, name = 2 }, v[5])
        assert.same({ name = 1, statuz = 2 }, v[6])
        assert.same({ name = 1, timinG = 3 }, v[7])
        assert.same({ name = 1, status = 5, timing = 6 }, v[8])
      end
    end)

    it("read right at the end of the input", function()
      assert.same({ a = 1 }, decode('{"a":1}'))
      assert.same({ ab = 1 }, decode('{"ab":1}'))
      assert.same({ abcdefg = 1 }, decode('{"abcdefg":1}'))
    end)

    it("stay right when a finalizer decodes in the middle of a decode", function()
      local during, inner = decode_under_finalizers {
        part = [[('{"id":%d,"name_%d":"n","k%d":[%d]}'):format(i, i % 50, i % 70, i)]],
        inner = [[local t = decode(('{"k%d":%d,"name_%d":1}'):format(i % 70, i, i % 50))
          assert(t["k" .. i % 70] == i and t["name_" .. i % 50] == 1)]],
        outer = [[decode(text)]],
        check = [[assert(o.id == i and o["name_" .. i % 50] == "n" and o["k" .. i % 70][1] == i, "record " .. i)]],
      }
      assert.is_true(tonumber(during) > 0, "no finalizer ran during a decode: the spec proves nothing")
      assert.is_true(tonumber(inner) > 0)
    end)
  end)

  -- A predicted key (the one that followed the previous key last time,
  -- checked in place with 8-byte reads) within 8 bytes of the end of the
  -- input: the last key of a small document. There it is checked without
  -- reading past the end (csrc/json.c entry_at_end), and a wrong match
  -- would give a wrong key.
  describe("a predicted key at the end of the input", function()
    it("is read right, and a near miss or a cut anywhere after it is no match", function()
      for n = 1, 20 do
        local k = ("k"):rep(n - 1) .. "z"
        local doc = ('{"first":1,"%s":2}'):format(k)
        for _ = 1, 3 do assert.same({ first = 1, [k] = 2 }, decode(doc)) end -- predicted from the 2nd time
        -- same length, another byte (first, middle, last) after the prediction
        for _, pos in ipairs { 1, (n + 1) // 2, n } do
          local other = k:sub(1, pos - 1) .. "Q" .. k:sub(pos + 1)
          assert.same({ first = 1, [other] = 3 }, decode(('{"first":1,"%s":3}'):format(other)))
          assert.same({ first = 1, [k] = 2 }, decode(doc))
        end
        -- shorter and longer keys that share the prefix
        local shorter = k:sub(1, -2) .. "y"
        assert.same({ first = 1, [shorter] = 4 }, decode(('{"first":1,"%s":4}'):format(shorter)))
        assert.same({ first = 1, [k .. "z"] = 5 }, decode(('{"first":1,"%s":5}'):format(k .. "z")))
        assert.same({ first = 1, [k] = 2 }, decode(doc))
        -- the document cut at every byte from the key on: an error, never a value
        local at = #('{"first":1,"')
        for cut = at, #doc - 1 do
          local v, err = decode(doc:sub(1, cut))
          assert.is_nil(v, doc:sub(1, cut))
          assert.is_string(err)
        end
        -- white space and a nested value after the predicted key
        assert.same({ first = 1, [k] = { 1 } }, decode(('{"first":1,"%s" : [1]}'):format(k)))
      end
    end)

    it("keeps the last of a repeated key when the repeat is predicted at the end", function()
      for _ = 1, 3 do
        assert.same({ a = 3, b = 2 }, decode('{"a":1,"b":2,"a":3}'))
        assert.same({ b = 2, a = 9 }, decode('{"b":1,"a":1,"b":2,"a":9}'))
      end
    end)
  end)

  -- Short string values go through a per-state cache too (csrc/json.c
  -- push_value), kept from the second time a value is seen: each must
  -- come back exactly, whatever its neighbours, evictions or errors.
  describe("short string values", function()
    -- Strings of every length around what the cache keeps (40 bytes) that
    -- differ from each other in one byte only: the first, a middle one or
    -- the last.
    local function variants()
      local list = {}
      for n = 1, 45 do
        local base = ("v"):rep(n)
        list[#list + 1] = base
        for _, at in ipairs { 1, n // 2 + 1, n } do
          list[#list + 1] = base:sub(1, at - 1) .. "w" .. base:sub(at + 1)
        end
        if n > 1 then list[#list + 1] = base:sub(1, n - 1) .. "\195\169" end -- é at the end
      end
      return list
    end

    it("come back exactly at every length, when one byte differs", function()
      local list = variants()
      local parts = {}
      for _ = 1, 3 do -- seen, kept, then read from the cache
        for _, v in ipairs(list) do parts[#parts + 1] = ('"%s"'):format(v) end
      end
      local text = "[" .. table.concat(parts, ",") .. "]"
      for _ = 1, 2 do
        local got = assert(decode(text))
        assert.equal(#parts, #got)
        for i, v in ipairs(got) do assert.equal(list[(i - 1) % #list + 1], v) end
      end
    end)

    -- Values of one shape that differ only in the middle, such as the
    -- timestamps of a page ("2025-07-17T12:30:00.000Z"): the cache hashes
    -- the middle word of strings over 16 bytes too (csrc/json.c
    -- kslot_of), and still compares every byte.
    it("come back exactly when strings of one shape differ in any one byte", function()
      local list = {}
      for d = 1, 28 do list[#list + 1] = ("2025-07-%02dT12:30:00.000Z"):format(d) end
      for _, n in ipairs { 17, 24, 25, 33, 40 } do
        local base = ("0123456789abcdefghijklmnopqrstuvwxyzABCD"):sub(1, n)
        list[#list + 1] = base
        for at = 1, n do list[#list + 1] = base:sub(1, at - 1) .. "#" .. base:sub(at + 1) end
      end
      local parts = {}
      for r = 1, 4 do -- seen, kept, read from the cache, in two orders
        for i = 1, #list do
          local j = r % 2 == 0 and #list + 1 - i or i
          parts[#parts + 1] = ('{"at":"%s"}'):format(list[j])
        end
      end
      local text = "[" .. table.concat(parts, ",") .. "]"
      for _ = 1, 2 do
        local got = assert(decode(text))
        for r = 1, 4 do
          for i = 1, #list do
            local j = r % 2 == 0 and #list + 1 - i or i
            assert.equal(list[j], got[(r - 1) * #list + i].at)
          end
        end
      end
    end)

    it("are not confused with escaped or non-ASCII strings of the same bytes", function()
      for _ = 1, 3 do
        assert.same(A { "ab", "ab", "ab", "é", "é", "\\u00e9", "a\"b" },
          decode('["ab","a\\u0062","ab","é","\\u00e9","\\\\u00e9","a\\"b"]'))
      end
    end)

    it("stay right across 5000 distinct values repeated out of order", function()
      local parts, want = {}, {}
      for i = 1, 15000 do
        local k = (i * 7919) % 5000
        want[i] = ("%s-%d"):format(("s"):rep(k % 30), k)
        parts[i] = '"' .. want[i] .. '"'
      end
      local text = "[" .. table.concat(parts, ",") .. "]"
      for _ = 1, 2 do
        local got = assert(decode(text))
        for i = 1, #want do assert.equal(want[i], got[i]) end
      end
    end)

    it("stay right after a decode that fails half way, and after collections", function()
      local parts = {}
      for i = 1, 2000 do parts[i] = ('"val%d"'):format(i % 300) end
      local good = "[" .. table.concat(parts, ",") .. "]"
      local bad = "[" .. table.concat(parts, ",", 1, 1000) .. ',"val1",tru]'
      for _ = 1, 3 do
        local v, err = decode(bad)
        assert.is_nil(v)
        assert.matches("^invalid literal at byte", err)
        collectgarbage()
        do
          local got = assert(decode(good))
          for i = 1, 2000 do assert.equal(("val%d"):format(i % 300), got[i]) end
        end
        collectgarbage() -- the cached strings outlive the value that used them
        collectgarbage()
      end
    end)

    it("stay right in coroutines that decode in turn", function()
      local function worker(tag)
        return coroutine.wrap(function()
          for r = 1, 5 do
            local parts = {}
            for i = 1, 300 do parts[i] = ('{"k%d":"%s%d"}'):format(i % 7, tag, i % 11) end
            local v = assert(decode("[" .. table.concat(parts, ",") .. "]"))
            for i = 1, 300 do assert.equal(("%s%d"):format(tag, i % 11), v[i]["k" .. i % 7]) end
            coroutine.yield(r)
          end
        end)
      end
      local a, b = worker("a"), worker("b")
      for r = 1, 5 do
        assert.equal(r, a())
        assert.equal(r, b())
      end
    end)

    it("stay right when a finalizer decodes in the middle of a decode", function()
      local during, inner = decode_under_finalizers {
        part = [[('["v%d","w%d","v%d"]'):format(i % 40, i % 90, i % 40)]],
        inner = [[local t = decode(('["w%d","v%d","x%d","w%d"]'):format(i % 90, i % 40, i, i % 90))
          assert(t[1] == "w" .. i % 90 and t[2] == "v" .. i % 40 and t[3] == "x" .. i and t[4] == t[1])]],
        outer = [[decode(text)]],
        check = [[assert(o[1] == "v" .. i % 40 and o[2] == "w" .. i % 90 and o[3] == o[1], "row " .. i)]],
      }
      assert.is_true(tonumber(during) > 0, "no finalizer ran during a decode: the spec proves nothing")
      assert.is_true(tonumber(inner) > 0)
    end)
  end)

  -- Issue 11: tables were sized from the last container closed at the
  -- same depth, so `[[1,...,1],[],[],...]` (92 KB) held 470 MB. Every
  -- table is now created once its values are counted. The bound (see
  -- docs/json.md): what a decoded value holds is what lua-cjson's holds
  -- for the same text, plus at most 48 bytes per repeated object key.
  describe("memory is bounded by the input", function()
    local ok_cjson, cjson = pcall(require, "cjson")

    -- Bytes the decoded value holds once garbage is collected.
    local function held(fn, text)
      collectgarbage()
      collectgarbage()
      local before = collectgarbage("count")
      local v = fn(text)
      collectgarbage()
      collectgarbage()
      local bytes = (collectgarbage("count") - before) * 1024
      assert.is_not_nil(v)
      return bytes
    end

    local function list(n, fmt)
      local t = {}
      for i = 1, n do t[i] = fmt:format(i) end
      return table.concat(t, ",")
    end
    local nums, keys = list(1024, "1"), list(1024, '"k%d":1')
    local rows = {
      { "array then empties", "[[" .. nums .. "]" .. (",[]"):rep(30000) .. "]" },
      { "object then empties", "[{" .. keys .. "}" .. (",{}"):rep(30000) .. "]" },
      { "array then one-element arrays", "[[" .. nums .. "]" .. (",[1]"):rep(30000) .. "]" },
      { "object then one-key objects", "[{" .. keys .. "}" .. (',{"a":1}'):rep(30000) .. "]" },
      { "big and empty alternating", "[" .. ("[" .. nums .. "],[],"):rep(20) .. "[]]" },
      { "one level down", '[{"a":[' .. nums .. "]}" .. (',{"a":[]}'):rep(20000) .. "]" },
      { "empties inside objects", '{"x":[' .. nums .. '],"y":' .. ("[[],"):rep(900) .. "[]"
        .. ("]"):rep(900) .. "}" },
      { "past the chunk size", "[[" .. list(5000, "%d") .. "]" .. (",[]"):rep(10000) .. "]" },
    }
    for _, row in ipairs(rows) do
      it("holds what lua-cjson holds: " .. row[1], function()
        if not ok_cjson then return pending("lua-cjson not installed") end
        local ours, theirs = held(decode, row[2]), held(cjson.decode, row[2])
        assert(ours <= theirs * 1.05 + 4096, ("%s: %d bytes held for %d bytes of input, lua-cjson %d")
          :format(row[1], ours, #row[2], theirs))
      end)
    end

    -- docs/json.md "Kept between calls": the decoder's caches anchor at
    -- most 1024 strings of up to 40 bytes (Lua counts 24 + 41 bytes for
    -- the longest) once the decoded value is gone. In a fresh process
    -- (the heap's history fixed); the baseline is taken after a document
    -- that decodes to the same strings but spells each with an escape
    -- (never cached), so the Lua stack, Lua's string table and the
    -- scratch buffer have grown the same way in both.
    it("keeps at most 1024 short strings alive between calls", function()
      local path = os.tmpname()
      local f = assert(io.open(path, "w"))
      f:write([==[
        local decode = require("instantly.core").json_decode
        local function doc(last)
          local parts = {}
          for i = 1, 6000 do
            local k = ("k%05d_%s"):format(i, ("x"):rep(i % 30))
            parts[i] = ('{"%s%s":"v%s%s","%s%s":"v%s%s"}'):format(k, last, k, last, k, last .. "y", k, last)
          end
          return "[" .. table.concat(parts, ",") .. "," .. table.concat(parts, ",") .. "]"
        end
        local function kept_after(text)
          local v = assert(decode(text))
          assert(#v == 12000 and v[1].k00001_xA == "vk00001_xA")
          v = nil -- luacheck: ignore
          collectgarbage()
          collectgarbage()
          return collectgarbage("count") * 1024
        end
        local escaped, plain = doc("\\u0041"), doc("A")
        local before = kept_after(escaped)
        io.write(("kept %d\n"):format(kept_after(plain) - before))
      ]==])
      f:close()
      local p = assert(io.popen("LUA_CPATH='" .. package.cpath:gsub("'", "") .. "' lua5.4 " .. path .. " 2>&1"))
      local out = p:read("a")
      p:close()
      os.remove(path)
      local kept = tonumber(out:match("^kept (%-?%d+)\n$"))
      assert(kept, out)
      assert(kept <= 1024 * 65, ("%d bytes kept after the value is gone"):format(kept))
    end)

    it("adds at most 48 bytes per repeated key", function()
      if not ok_cjson then return pending("lua-cjson not installed") end
      for _, text in ipairs {
        "{" .. ('"a":1,'):rep(5000) .. '"a":1}',
        "[" .. ("{" .. ('"a":1,'):rep(500) .. '"a":1},'):rep(20) .. "{}]",
      } do
        local ours, theirs = held(decode, text), held(cjson.decode, text)
        local _, repeats = text:gsub('"a"', "")
        assert(ours <= theirs + 48 * repeats + 4096, ("%d bytes held, lua-cjson %d"):format(ours, theirs))
      end
    end)
  end)

  describe("misuse raises", function()
    local rows = {
      { function() core.json_decode() end, "bad argument #1 to 'json_decode' (string expected, got no value)" },
      { function() core.json_decode(42) end, "bad argument #1 to 'json_decode' (string expected, got number)" },
      { function() core.json_decode({}) end, "bad argument #1 to 'json_decode' (string expected, got table)" },
      { function() core.json_decode("1", 5) end, "bad argument #2 to 'json_decode' (table expected, got number)" },
      { function() core.json_decode("1", { foo = 1 }) end, "bad argument #2 to 'json_decode' (unknown option 'foo')" },
      { function() core.json_decode("1", { sort_keys = true }) end,
        "bad argument #2 to 'json_decode' (unknown option 'sort_keys')" },
      { function() core.json_decode("1", { "x" }) end,
        "bad argument #2 to 'json_decode' (unknown option key (a number))" },
      { function() core.json_decode("1", { max_depth = 0 }) end,
        "bad argument #2 to 'json_decode' (option 'max_depth' must be an integer from 1 to 10000)" },
      { function() core.json_decode("1", { max_depth = 1.5 }) end,
        "bad argument #2 to 'json_decode' (option 'max_depth' must be an integer from 1 to 10000)" },
      { function() core.json_decode("1", { max_depth = "5" }) end,
        "bad argument #2 to 'json_decode' (option 'max_depth' must be an integer from 1 to 10000)" },
      { function() core.json_decode("1", { max_depth = 10001 }) end,
        "bad argument #2 to 'json_decode' (option 'max_depth' must be an integer from 1 to 10000)" },
    }
    for i, row in ipairs(rows) do
      it("case " .. i, function()
        assert.has_error(row[1], row[2])
      end)
    end
  end)
end)

describe("core.json_decoder", function()
  it("decodes as json_decode with the same options", function()
    local texts = {
      '{"a":1,"b":[1,null,{"c":null,"d":"x"}],"e":null,"f":{"g":null,"h":null}}', "[]", "{}", "null", '"s"',
      "12.5", '[{"a":null},{"a":1,"a":null}]', '{"a":1,}', "[[[[1]]]]", '{"\\u00e9":null}',
    }
    for _, opts in ipairs {
      {}, { max_depth = 3 }, { nulls = setmetatable({}, { __mode = "k" }) }, { null_tables = {} },
      { memory_error = "raise" }, { memory_error = "return", max_depth = 2 },
    } do
      local d = core.json_decoder(opts)
      local nulls2 = opts.nulls and setmetatable({}, { __mode = "k" })
      local list2 = opts.null_tables and {}
      local o2 = {}
      for k, v in pairs(opts) do o2[k] = v end
      o2.nulls, o2.null_tables = nulls2 or nil, list2 or nil
      for _, text in ipairs(texts) do
        local a, amsg = d(text)
        local b, bmsg = decode(text, o2)
        assert(same(a, b), text)
        assert.equal(bmsg, amsg, text)
        if nulls2 and type(a) == "table" then
          assert.same(nulls2[b], opts.nulls[a], text)
          if type(a.f) == "table" then assert.same(nulls2[b.f], opts.nulls[a.f], text) end
        end
        if list2 then assert.equal(#list2, #opts.null_tables, text) end
      end
    end
  end)

  it("reads its options once: changing the table afterwards changes nothing", function()
    local W = setmetatable({}, { __mode = "k" })
    local opts = { nulls = W, max_depth = 2 }
    local d = core.json_decoder(opts)
    opts.nulls, opts.max_depth, opts.bogus = nil, 100, true
    local v = assert(d('{"a":null,"b":[1]}'))
    assert.is_nil(v.a)
    assert.equal("a", W[v])
    local none, msg = d('[[[1]]]')
    assert.is_nil(none)
    assert.equal("nesting deeper than max_depth (2) at byte 3", msg)
    -- each decoder its own options; all share the state's caches
    local plain = core.json_decoder()
    assert.equal(null, plain('{"a":null}').a)
    assert.is_nil(d('{"a":null}').a)
  end)

  it("refuses what json_decode refuses, when it is made", function()
    local MEM = "option 'memory_error' must be \"raise\" or \"return\""
    for opts, msg in pairs {
      [5] = "table expected, got number",
      [{ foo = 1 }] = "unknown option 'foo'",
      [{ indent = 2 }] = "unknown option 'indent'",
      [{ nulls = {}, null_tables = {} }] = "options 'nulls' and 'null_tables' exclude each other",
      [{ memory_error = "ignore" }] = MEM,
      [{ memory_error = true }] = MEM,
    } do
      assert.has_error(function() core.json_decoder(opts) end, "bad argument #1 to 'json_decoder' (" .. msg .. ")")
    end
    local d = core.json_decoder()
    assert.error_matches(function() d(42) end, "bad argument #1 to '%w+' %(string expected, got number%)")
    assert.error_matches(function() d() end, "bad argument #1 to '%w+' %(string expected, got no value%)")
    assert.has_error(function() decode("1", { memory_error = "maybe" }) end,
      "bad argument #2 to 'decode' (option 'memory_error' must be \"raise\" or \"return\")")
    assert.has_error(function() encode({}, { memory_error = "return" }) end)
  end)

  it("stays right when a finalizer decodes with it in the middle of a decode", function()
    local during, inner = decode_under_finalizers {
      setup = [[local W = setmetatable({}, { __mode = "k" })
        local d = core.json_decoder { nulls = W, memory_error = "return" }]],
      part = [[('{"id":%d,"s":"a\\n%d","a_%d":null,"z":null}'):format(i, i, i % 50)]],
      inner = [[local t = d(('{"k%d":null,"e":"x\\ty%d"}'):format(i % 70, i))
        assert(t["k" .. i % 70] == nil and t.e == "x\ty" .. i and W[t] == "k" .. i % 70)]],
      outer = [[d(text)]],
      check = [[assert(o.id == i and o.s == "a\n" .. i and o["a_" .. i % 50] == nil, "record " .. i)
        assert(#W[o] == 2 and W[o][1] == "a_" .. i % 50 and W[o][2] == "z", "names of record " .. i)]],
    }
    assert.is_true(tonumber(during) > 0, "no finalizer ran during a decode: the spec proves nothing")
    assert.is_true(tonumber(inner) > 0)
  end)

  it("with memory_error = \"return\", running out of memory is nil, message, true (not raised)", function()
    if (os.getenv("LD_PRELOAD") or ""):find("libasan", 1, true) then
      pending("an address-space limit cannot run under AddressSanitizer")
      return
    end
    -- In a child limited to 150 MB of address space: 3,000,000 empty
    -- objects (9 MB of JSON) need more than that as Lua tables.
    local code = "local core = require 'instantly.core'; local text = '[' .. ('{},'):rep(3000000) .. '{}]'; " ..
      "local v, msg, oom = core.json_decoder { memory_error = 'return' }(text); print('bound', v, msg, oom); " ..
      "v, msg, oom = core.json_decode(text, { memory_error = 'return' }); print('call', v, msg, oom); " ..
      "print('raise', pcall(core.json_decoder(), text)); " ..
      "collectgarbage(); print('after', core.json_decoder { memory_error = 'return' }('[1,2]')[2])"
    local p = assert(io.popen("ulimit -v 150000; LUA_CPATH='" .. package.cpath:gsub("'", "") ..
      "' lua5.4 -e \"" .. code .. "\" 2>&1"))
    local out = p:read("a")
    p:close()
    assert.equal("bound\tnil\tnot enough memory\ttrue\ncall\tnil\tnot enough memory\ttrue\n" ..
      "raise\tfalse\tnot enough memory\nafter\t2\n", out)
  end)
end)

describe("core.json_encode", function()
  describe("values", function()
    local rows = {
      { 0, "0" },
      { -17, "-17" },
      { math.maxinteger, "9223372036854775807" },
      { math.mininteger, "-9223372036854775808" },
      { 9007199254740993, "9007199254740993" },
      { 1.0, "1.0" },
      { -0.0, "-0.0" },
      { 0.0, "0.0" },
      { 1.5, "1.5" },
      { 0.1, "0.1" },
      { 1 / 3, "0.3333333333333333" },
      { 0.1 + 0.2, "0.30000000000000004" },
      { 1e300, "1e+300" },
      { 2 ^ 63, "9.223372036854776e+18" },
      { 123456789.0, "123456789.0" },
      { true, "true" },
      { false, "false" },
      { null, "null" },
      { nil, "null" },
      { "", '""' },
      { "abc", '"abc"' },
      { 'a"b\\c/d', '"a\\"b\\\\c/d"' },
      { "\b\f\n\r\t", '"\\b\\f\\n\\r\\t"' },
      { "\0\1\31\127", '"\\u0000\\u0001\\u001f\127"' },
      { "héllo 😀", '"héllo 😀"' },
      { {}, "{}" },
      { A {}, "[]" },
      { { 1, 2, 3 }, "[1,2,3]" },
      { A { 1, 2 }, "[1,2]" },
      { { null, null }, "[null,null]" },
      { { a = 1 }, '{"a":1}' },
      { { a = null }, '{"a":null}' },
      { { ["1"] = 1 }, '{"1":1}' },
      { { a = { b = A {} } }, '{"a":{"b":[]}}' },
      { { { {} } }, "[[{}]]" },
    }
    for _, row in ipairs(rows) do
      it(("encodes %s as %s"):format(tostring(row[1]), row[2]), function()
        local s, err = encode(row[1])
        assert.is_nil(err)
        assert.equal(row[2], s)
      end)
    end
  end)

  it("marks tables with core.array and returns them", function()
    local t = {}
    assert.equal(t, core.array(t))
    assert.equal(core.array_mt, getmetatable(t))
    assert.equal(t, core.array(t)) -- twice is fine
    assert.has_error(function() core.array(1) end, "bad argument #1 to 'array' (table expected, got number)")
    assert.has_error(function() core.array(setmetatable({}, {})) end,
      "bad argument #1 to 'array' (table already has a metatable)")
  end)

  it("encodes the raw fields of tables with other metatables", function()
    local rec = setmetatable({ id = "x" }, { __index = function() return "method" end })
    assert.equal('{"id":"x"}', encode(rec))
  end)

  it("re-encodes an empty decoded array as []", function()
    assert.equal('{"a":[],"b":{}}', encode(decode('{"a":[],"b":{}}'), { sort_keys = true }))
  end)

  it("round-trips the int64 range and float bits", function()
    local ints = { 0, 1, -1, math.maxinteger, math.mininteger, math.maxinteger - 1, math.mininteger + 1,
      2 ^ 53 | 1, -(2 ^ 53 | 1), 1 << 62 }
    for _, v in ipairs(ints) do
      local back = decode(encode(v))
      assert.equal("integer", math.type(back))
      assert.equal(v, back)
    end
    local floats = { 0.0, -0.0, 1.0, -1.0, 0.1, 1 / 3, 2 ^ 53, 2 ^ 63, 2 ^ 64, 1e22, 1e23, 5e-324,
      2.2250738585072014e-308, 2.225073858507201e-308, 1.7976931348623157e308, math.pi, 100.0,
      123456789012345680000.0, 9007199254740993.0 }
    local seed = 12345
    for _ = 1, 2000 do -- plus pseudo-random bit patterns
      seed = (seed * 6364136223846793005 + 1442695040888963407) & math.maxinteger
      local f = string.unpack("<d", string.pack("<i8", seed ~ (seed >> 7)))
      if f == f and f ~= math.huge and f ~= -math.huge then floats[#floats + 1] = f end
    end
    for _, v in ipairs(floats) do
      local s = assert(encode(v))
      local back = decode(s)
      assert.equal("float", math.type(back), s)
      assert.equal(string.pack("<d", v), string.pack("<d", back), s)
    end
  end)

  it("writes the shortest of %.15g/%.16g/%.17g that round-trips", function()
    assert.equal("0.1", encode(0.1))
    assert.equal("1.2345678901234567", encode(1.2345678901234567))
    assert.equal("1e+22", encode(1e22))
  end)

  it("round-trips short decimals and writes no more digits than %.15g/%.16g/%.17g", function()
    local function sig(s) -- significant digits in a number text
      local m = s:gsub("^%-", ""):gsub("[eE].*$", "")
      if m:find(".", 1, true) then m = m:gsub("0+$", "") end
      m = m:gsub("%.", ""):gsub("^0+", "")
      return #m
    end
    local function reference(v)
      for prec = 15, 17 do
        local s = ("%." .. prec .. "g"):format(v)
        if tonumber(s) == v or prec == 17 then return s end
      end
    end
    local seed = 99
    local function rnd(n)
      seed = (seed * 6364136223846793005 + 1442695040888963407) & math.maxinteger
      return (seed >> 20) % n
    end
    for _ = 1, 6000 do
      local v
      local k = rnd(4)
      if k == 0 then v = rnd(10 ^ 9) / 10 ^ rnd(10)          -- prices, rates
      elseif k == 1 then v = rnd(1 << 52) / (1 << rnd(60))    -- binary fractions
      elseif k == 2 then v = rnd(10 ^ 15) * 10.0 ^ (rnd(40) - 20)
      else v = (rnd(1 << 52) + 1) / (rnd(1 << 30) + 1) end    -- long expansions
      if rnd(2) == 1 then v = -v end
      v = v + 0.0
      local s = encode(v)
      assert.equal(string.pack("<d", v), string.pack("<d", decode(s)), s)
      assert(sig(s) <= math.max(sig(reference(v)), 1), s .. " longer than " .. reference(v))
    end
  end)

  it("escapes specials at every position of a string (word boundaries)", function()
    for len = 0, 20 do
      for pos = 1, len do
        for _, c in ipairs({ '"', "\\", "\n", "\1", "\31", "é", "😀" }) do
          local str = ("a"):rep(pos - 1) .. c .. ("b"):rep(len - pos)
          local text = assert(encode(str))
          assert.equal(str, decode(text))
          assert.equal(str, decode('"' .. str:gsub('[%c"\\]', function(ch)
            return ("\\u%04x"):format(ch:byte())
          end) .. '"'))
        end
      end
    end
  end)

  it("sorts keys bytewise with sort_keys", function()
    local t = { b = 1, a = 2, ["B"] = 3, ["é"] = 4, aa = 5, [""] = 6 }
    assert.equal('{"":6,"B":3,"a":2,"aa":5,"b":1,"é":4}', encode(t, { sort_keys = true }))
    assert.equal('{"x":{"a":1,"b":2}}', encode({ x = { b = 2, a = 1 } }, { sort_keys = true }))
  end)

  it("pretty-prints with indent", function()
    local t = { a = 1, b = A { 1, { c = A {} } }, d = {} }
    local want = table.concat({
      "{",
      '  "a": 1,',
      '  "b": [',
      "    1,",
      "    {",
      '      "c": []',
      "    }",
      "  ],",
      '  "d": {}',
      "}",
    }, "\n")
    assert.equal(want, encode(t, { sort_keys = true, indent = 2 }))
    assert.equal('[\n    1\n]', encode({ 1 }, { indent = 4 }))
    assert.equal('[1]', encode({ 1 }, { indent = 0 }))
    assert(same(t, decode(encode(t, { indent = 3 }))))
  end)

  it("options hold for one call only", function()
    assert.equal('[\n 1\n]', encode({ 1 }, { indent = 1 }))
    assert.equal("[1]", encode({ 1 }))
  end)

  describe("errors name the path", function()
    local cyc = {}
    cyc.self = cyc
    local deep = { leads = {} }
    deep.leads[1] = { list = { deep } }
    local rows = {
      { 0 / 0, "(root): cannot encode NaN" },
      { math.huge, "(root): cannot encode inf" },
      { -math.huge, "(root): cannot encode -inf" },
      { { a = { 1, 0 / 0 } }, "a[2]: cannot encode NaN" },
      { print, "(root): cannot encode function" },
      { { f = print }, "f: cannot encode function" },
      { { co = coroutine.create(print) }, "co: cannot encode thread" },
      { { u = io.stdout }, "u: cannot encode userdata" },
      { { p = A { 1, { q = io.stdout } } }, "p[2].q: cannot encode userdata" },
      { { ["a b"] = { [""] = print } }, '["a b"][""]: cannot encode function' },
      { { leads = { 1, 2, { custom_variables = { 1, x = 2 } } } },
        "leads[3].custom_variables: mixed array/object keys" },
      { { x = 1, [1] = 2 }, "(root): mixed array/object keys" },
      { { [1] = 1, [3] = 3 }, "(root): sparse array (keys are not 1..n)" },
      { { [2] = 1 }, "(root): sparse array (keys are not 1..n)" },
      { { [0] = 1, 2 }, "(root): sparse array (keys are not 1..n)" },
      { { [-1] = 1 }, "(root): sparse array (keys are not 1..n)" },
      { { [1.5] = 1 }, "(root): unsupported key type (non-integer number)" },
      { { [true] = 1 }, "(root): unsupported key type (boolean)" },
      { { a = { [{}] = 1 } }, "a: unsupported key type (table)" },
      { A { x = 1 }, "(root): mixed array/object keys" },
      { A { 1, nil, 3 }, "(root): sparse array (keys are not 1..n)" },
      { { s = "a\255b" }, "s: invalid UTF-8 in string" },
      { { ["k\255"] = 1 }, '["k\\xFF"]: invalid UTF-8 in string' },
      { cyc, "self: circular reference" },
      { deep, "leads[1].list[1]: circular reference" },
    }
    for _, row in ipairs(rows) do
      it(row[2], function()
        local s, err = encode(row[1])
        assert.is_nil(s)
        assert.equal(row[2], err)
        -- sorted output goes through another loop: same messages
        s, err = encode(row[1], { sort_keys = true })
        assert.is_nil(s)
        assert.equal(row[2], err)
      end)
    end

    it("refuses lightuserdata other than null", function()
      local up = 1
      local function f() return up end
      local lud = debug.upvalueid(f, 1) -- a lightuserdata in Lua 5.4
      assert.equal("userdata", type(lud))
      local s, err = encode({ x = lud })
      assert.is_nil(s)
      assert.equal("x: cannot encode lightuserdata", err)
    end)
  end)

  -- Keys go through a per-state cache of their quoted form, found by the
  -- string's address (csrc/json.c put_key): every key must still be
  -- written exactly, whatever its bytes, type or neighbours.
  describe("object keys", function()
    it("are written exactly when they need escaping, again and again", function()
      local rows = {
        { 'a"b', '"a\\"b"' }, { "tab\there", '"tab\\there"' }, { "\1", '"\\u0001"' },
        { "é—😀", '"é—😀"' }, { "back\\slash", '"back\\\\slash"' }, { "", '""' },
        { ("\0"):rep(9), '"' .. ("\\u0000"):rep(9) .. '"' },
      }
      for _, row in ipairs(rows) do
        local list, want = {}, {}
        for i = 1, 5 do
          list[i] = { [row[1]] = i }
          want[i] = ("{%s:%d}"):format(row[2], i)
        end
        assert.equal("[" .. table.concat(want, ",") .. "]", encode(list))
        assert.equal("[" .. table.concat(want, ",") .. "]", encode(list, { sort_keys = true }))
      end
    end)

    it("are written exactly at every length around what the cache keeps", function()
      for n = 1, 70 do
        for _, mid in ipairs { "a", '"' } do
          local k = ("x"):rep(n // 2) .. mid .. ("x"):rep(n - n // 2 - 1)
          local q = '"' .. k:gsub('"', '\\"') .. '"'
          -- long strings (over 40 bytes) are separate objects with the
          -- same bytes: build the key anew for each record
          local list, want = {}, {}
          for i = 1, 3 do
            list[i] = { [("x"):rep(n // 2) .. mid .. ("x"):rep(n - n // 2 - 1)] = i }
            want[i] = ("{%s:%d}"):format(q, i)
          end
          assert.equal("[" .. table.concat(want, ",") .. "]", encode(list))
        end
      end
    end)

    it("survive collisions and evictions: 3000 distinct keys over many objects, every layout", function()
      local list = {}
      for i = 1, 100 do
        local o = {}
        for j = 1, 30 do o[("key_%d_%d"):format((i * 7 + j) % 300, j)] = j end
        list[i] = o
      end
      for _, opts in ipairs { {}, { sort_keys = true }, { indent = 2 }, { sort_keys = true, indent = 1 } } do
        for _ = 1, 2 do
          local ok, why = same(list, setmetatable(decode(encode(list, opts)), nil))
          assert(ok, why)
        end
      end
      -- sorted output is deterministic: compare with a plain Lua writer
      local parts = {}
      for i = 1, 100 do
        local keys, members = {}, {}
        for k in pairs(list[i]) do keys[#keys + 1] = k end
        table.sort(keys)
        for m, k in ipairs(keys) do members[m] = ('"%s":%d'):format(k, list[i][k]) end
        parts[i] = "{" .. table.concat(members, ",") .. "}"
      end
      assert.equal("[" .. table.concat(parts, ",") .. "]", encode(list, { sort_keys = true }))
    end)

    it("refuse a number key after string keys, with an empty cache (a fresh state)", function()
      -- A number's lua_topointer is NULL, the address an empty entry
      -- holds: it must not be taken for a cached key.
      local script = [==[
        local encode = require("instantly.core").json_encode
        local bad = 0
        for n = 1, 40 do
          local t = {}
          for j = 1, n do t["k" .. j] = j end
          t[0] = 0
          local s, err = encode(t)
          assert(s == nil and err == "(root): mixed array/object keys", tostring(s or err))
          t[0], t[0.5] = nil, 1
          s, err = encode(t)
          assert(s == nil and err == "(root): unsupported key type (non-integer number)", tostring(s or err))
          bad = bad + 2
        end
        io.write("during ", bad, " inner 0\n")
      ]==]
      assert.equal("80", (finalizer_rounds(script)))
    end)

    it("stay right when finalizers encode other keys in the middle of an encode", function()
      local script = [==[
        local core = require "instantly.core"
        local encode = core.json_encode
        local inner, during, in_outer = 0, 0, false
        local function junk(r)
          for i = 1, 200 do
            setmetatable({}, { __gc = function()
              if in_outer then during = during + 1 end
              -- the outer keys, and 300 new ones that evict every entry
              local o = { a = i, b = "x", c = { d = i } }
              for j = 1, 300 do o[("fin_%d_%d_%d"):format(r, i, j)] = j end
              local s = encode(o, { sort_keys = i % 2 == 0 })
              assert(s:find('"a":' .. i .. ',', 1, true) and s:find('"c":{"d":' .. i .. '}', 1, true), s)
              inner = inner + 1
            end })
          end
        end
        for r = 0, 7 do
          local big = {}
          for i = 1, 500 << r do big[i] = { a = i, b = ("x"):rep(30), c = { d = i }, ['e"q'] = i } end
          local want = encode(big, { sort_keys = true })
          collectgarbage("incremental", 10, 400)
          junk(r)
          in_outer = true
          local got = encode(big, { sort_keys = true })
          in_outer = false
          collectgarbage("incremental", 200, 100)
          assert(want == got, "the outer encode changed")
          if during > 0 then break end
        end
        collectgarbage()
        io.write("during ", during, " inner ", inner, "\n")
      ]==]
      local during, inner = finalizer_rounds(script)
      assert.is_true(tonumber(during) > 0, "no finalizer ran during an encode: the spec proves nothing")
      assert.is_true(tonumber(inner) > 0)
    end)
  end)

  describe("depth", function()
    local function nested(n)
      local t = {}
      local cur = t
      for _ = 2, n do
        local nxt = {}
        cur[1] = nxt
        cur = nxt
      end
      return t
    end

    it("accepts 1000 levels by default and refuses 1001", function()
      assert.equal(("["):rep(999) .. "{}" .. ("]"):rep(999), encode(nested(1000)))
      local s, err = encode(nested(1001))
      assert.is_nil(s)
      assert.equal(("[1]"):rep(10) .. "..." .. ("[1]"):rep(10)
        .. ": nesting deeper than max_depth (1000)", err)
    end)

    it("takes max_depth per call", function()
      assert.equal("[[{}]]", encode(nested(3), { max_depth = 3 }))
      assert.same({ nil, "[1][1]: nesting deeper than max_depth (2)" }, { encode(nested(3), { max_depth = 2 }) })
      assert.equal("1", encode(1, { max_depth = 1 }))
    end)

    it("reports a cycle as a cycle, however small max_depth is", function()
      local t = { a = {} }
      t.a.b = t
      assert.same({ nil, "a.b: circular reference" }, { encode(t) })
      assert.same({ nil, "a.b: circular reference" }, { encode(t, { max_depth = 10000 }) })
    end)

    it("allows the same table twice when it is not its own ancestor", function()
      local shared = { 1 }
      assert.equal('{"a":[1],"b":[1]}', encode({ a = shared, b = shared }, { sort_keys = true }))
    end)
  end)

  describe("misuse raises", function()
    local rows = {
      { function() core.json_encode() end, "bad argument #1 to 'json_encode' (value expected)" },
      { function() core.json_encode(1, "x") end, "bad argument #2 to 'json_encode' (table expected, got string)" },
      { function() core.json_encode(1, { foo = 1 }) end, "bad argument #2 to 'json_encode' (unknown option 'foo')" },
      { function() core.json_encode(1, { sort_keys = 1 }) end,
        "bad argument #2 to 'json_encode' (option 'sort_keys' must be a boolean)" },
      { function() core.json_encode(1, { indent = -1 }) end,
        "bad argument #2 to 'json_encode' (option 'indent' must be an integer from 0 to 32)" },
      { function() core.json_encode(1, { indent = "2" }) end,
        "bad argument #2 to 'json_encode' (option 'indent' must be an integer from 0 to 32)" },
      { function() core.json_encode(1, { max_depth = 0 }) end,
        "bad argument #2 to 'json_encode' (option 'max_depth' must be an integer from 1 to 10000)" },
    }
    for i, row in ipairs(rows) do
      it("case " .. i, function()
        assert.has_error(row[1], row[2])
      end)
    end
  end)
end)

describe("the codec as a whole", function()
  it("uses no C recursion: 10000 levels both ways within a 256 KB C stack", function()
    local script = [[
      local core = require "instantly.core"
      local t, cur = {}, nil
      cur = t
      for _ = 2, 10000 do local n = {}; cur.k = n; cur = n end
      local a, acur = core.array({}), nil
      acur = a
      for _ = 2, 10000 do local n = core.array({}); acur[1] = n; acur = n end
      local s = assert(core.json_encode(t, { max_depth = 10000 }))
      assert(core.json_encode(a, { max_depth = 10000, sort_keys = true, indent = 1 }))
      assert(core.json_decode(s, { max_depth = 10000 }))
      assert(core.json_decode(("["):rep(10000) .. ("]"):rep(10000), { max_depth = 10000 }))
      print("deep ok")
    ]]
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(script)
    f:close()
    local cmd = ("ulimit -s 256 && LUA_CPATH=%q lua5.4 %q 2>&1"):format(package.cpath, path)
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    p:close()
    os.remove(path)
    assert.equal("deep ok\n", out)
  end)

  it("round-trips a realistic document", function()
    local doc = {
      items = A {
        { id = "c0ffee00-0000-4000-8000-000000000001", name = "Q3 outreach", status = 1,
          daily_limit = 50, stop_on_reply = true, text_only = false, open_rate = 0.4375,
          campaign_schedule = { start_date = null, schedules = A {
            { name = "Weekdays", timing = { from = "09:00", to = "17:30" },
              days = { ["1"] = true, ["2"] = true }, timezone = "America/Chicago" } } },
          sequences = A { { steps = A { { type = "email", delay = 2,
            variants = A { { subject = "Hi {{firstName}}", body = "Line 1\nLine 2 — “quoted” 😀" } } } } } },
          email_list = A {} },
      },
      next_starting_after = null,
    }
    for _, opts in ipairs({ {}, { sort_keys = true }, { indent = 2 } }) do
      local text = assert(encode(doc, opts))
      local ok, why = same(doc, assert(decode(text)))
      assert(ok, why)
    end
  end)

  it("does not leak when decoding fails halfway", function()
    local bad = "[" .. ('"\\u00e9 long string ' .. ("x"):rep(200) .. '",'):rep(2000) .. "}"
    collectgarbage()
    collectgarbage()
    local before = collectgarbage("count")
    for _ = 1, 50 do
      local v, err = decode(bad)
      assert.is_nil(v)
      assert.matches("^unexpected '}' at byte %d+$", err)
    end
    collectgarbage()
    collectgarbage()
    assert.is_true(collectgarbage("count") < before + 256)
  end)

  it("does not leak when encoding fails halfway", function()
    local t = {}
    for i = 1, 5000 do t[i] = ("y"):rep(100) end
    t[5001] = print
    collectgarbage()
    collectgarbage()
    local before = collectgarbage("count")
    for _ = 1, 50 do
      assert.is_nil((encode(t)))
    end
    collectgarbage()
    collectgarbage()
    assert.is_true(collectgarbage("count") < before + 256)
  end)

  it("releases every byte when an allocation fails at any point (spec/fuzz/json_oom.c)", function()
    local exe = os.tmpname()
    local cmd = ("cc -std=c99 -O1 -Icsrc $(pkg-config --cflags lua5.4) spec/fuzz/json_oom.c csrc/json.c "
      .. "$(pkg-config --libs lua5.4) -lm -o %q 2>&1 && %q 2>&1"):format(exe, exe)
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    local ok = p:close()
    os.remove(exe)
    assert(ok, out)
    assert.matches("^json_oom: %d+ allocation%-failure points, all clean\n$", out)
    assert.is_true(tonumber(out:match("(%d+) allocation")) > 1000)
  end)

  it("stays correct when a finalizer encodes in the middle of an encode", function()
    -- Finalizers run from GC steps inside the outer encode. How soon they
    -- run depends on the heap, so the scenario runs in a fresh process with
    -- only the core loaded (a small heap, where an aggressive incremental
    -- GC runs them in the first rounds), not inside busted's large heap.
    local script = [==[
      local core = require "instantly.core"
      local encode = core.json_encode
      local inner, during, in_outer = {}, 0, false
      local function junk()
        for i = 1, 200 do
          setmetatable({}, { __gc = function()
            if in_outer then during = during + 1 end
            inner[#inner + 1] = encode({ i = i, s = ("z"):rep(50) }, { sort_keys = true })
          end })
        end
      end
      for r = 0, 7 do
        local big = {}
        for i = 1, 500 << r do big[i] = { a = i, b = ("x"):rep(30), c = { d = i } } end
        local want = encode(big, { sort_keys = true })
        collectgarbage("incremental", 10, 400)
        junk()
        in_outer = true
        local got = encode(big, { sort_keys = true })
        in_outer = false
        collectgarbage("incremental", 200, 100)
        assert(want == got, "the outer encode changed")
        if during > 0 then break end
      end
      collectgarbage()
      for _, s in ipairs(inner) do assert(s:match('^{"i":%d+,"s":"z+"}$'), s) end
      io.write("during ", during, " inner ", #inner, "\n")
    ]==]
    local during, inner = finalizer_rounds(script)
    assert.is_true(tonumber(during) > 0, "no finalizer ran during an encode: the spec proves nothing")
    assert.is_true(tonumber(inner) > 0)
  end)

  it("works from inside coroutines", function()
    local co = coroutine.wrap(function()
      return encode(decode('{"a":[1,2]}'))
    end)
    assert.equal('{"a":[1,2]}', co())
  end)
end)
