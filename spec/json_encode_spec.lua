-- core.json_encode's strings against a reference written in Lua, at every
-- length and position the encoder's fast paths treat apart (under 4, 8
-- and 16 bytes, 16 to 48 in two or three blocks, the loop past that and
-- its short tail, the 4096-byte chunks), so a shortcut that skips a byte
-- or copies one too many shows up as a difference in the text.
local core = require "instantly.core"

local encode = core.json_encode

-- The text json_encode must write for string s, or nil when s is not
-- valid UTF-8 (utf8.len: no overlongs, no surrogates, nothing past
-- U+10FFFF).
local SHORT = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\t"] = "\\t", ["\n"] = "\\n", ["\f"] = "\\f",
                ["\r"] = "\\r" }
local function reference(s)
  if not utf8.len(s) then return nil end
  return '"' .. s:gsub('[%z\1-\31"\\]', function(c) return SHORT[c] or ("\\u%04x"):format(c:byte()) end) .. '"'
end

local SPECIALS = { '"', "\\", "\n", "\0", "\1", "\31", "\127", " ", "\u{e9}", "\u{20ac}", "\u{1f600}",
                   "\xff", "\xc3", "\xe2\x82", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc0\xaf" }

local function check(s)
  local want = reference(s)
  local text, err = encode(s)
  if want then
    assert.equal(want, text, ("%q"):format(s))
  else
    assert.is_nil(text, ("%q"):format(s))
    assert.equal("(root): invalid UTF-8 in string", err)
  end
end

describe("json_encode strings", function()
  it("are written exactly with one special byte at every position, lengths 0 to 80", function()
    for len = 0, 80 do
      check(("p"):rep(len))
      for pos = 1, len do
        for _, c in ipairs(SPECIALS) do
          check(("a"):rep(pos - 1) .. c .. ("b"):rep(len - pos))
        end
      end
    end
  end)

  it("are written exactly with two specials at every pair of positions, lengths 14 to 50", function()
    for len = 14, 50, 3 do
      for i = 1, len do
        for j = i + 1, len do
          check(("x"):rep(i - 1) .. '"' .. ("y"):rep(j - i - 1) .. "\n" .. ("z"):rep(len - j))
        end
      end
    end
  end)

  it("are written exactly when every byte 0-255 comes at every offset", function()
    local all = {}
    for b = 0, 255 do all[#all + 1] = string.char(b) end
    all = table.concat(all)
    for off = 0, 40 do
      for b = 0, 255 do
        check(("k"):rep(off) .. string.char(b) .. ("m"):rep(40 - off))
      end
    end
    check(all)
  end)

  it("are written exactly across the encoder's chunks (4096 bytes)", function()
    for _, len in ipairs({ 4095, 4096, 4097, 8191, 8192, 8193, 20000 }) do
      check(("q"):rep(len))
      check(("\u{e9}"):rep(len // 2))
      check(("q"):rep(len - 1) .. '"')
      check(("q"):rep(len - 2) .. "\u{e9}")
      check(("q"):rep(len - 1) .. "\xc3")
      check(("\n"):rep(len))
    end
  end)

  it("are written exactly as keys and as values of many objects (the key cache)", function()
    local keys = {}
    for len = 0, 60 do keys[#keys + 1] = ("k"):rep(len) .. (len % 7 == 0 and '"' or "") end
    for round = 1, 3 do
      for _, k in ipairs(keys) do
        local v = { [k] = k .. round }
        assert.equal("{" .. reference(k) .. ":" .. reference(k .. round) .. "}", encode(v))
      end
    end
  end)

  it("are written exactly as later members' keys, cached, at every length around 16", function()
    -- the second and later members of an object: comma, cached key and
    -- colon in one go; a quoted key of at most 16 bytes is one block
    for _ = 1, 3 do -- misses, then hits
      for len = 0, 60 do
        local k = ("q"):rep(len)
        if len % 5 == 1 then k = k:sub(1, -2) .. "\n" end
        local v = { [k] = len, ["\0" .. k] = true, ["x" .. k] = { [k] = "v" } }
        local parts = {}
        for key, val in pairs(v) do
          local txt = type(val) == "table" and "{" .. reference(k) .. ':"v"}' or tostring(val)
          parts[#parts + 1] = reference(key) .. ":" .. txt
        end
        assert.equal("{" .. table.concat(parts, ",") .. "}", encode(v), "length " .. len)
      end
    end
  end)

  it("name the member that fails by its key, sorted or not, at every key length", function()
    for len = 1, 40 do
      local k = ("k"):rep(len)
      local path = k
      for _, opts in ipairs { {}, { sort_keys = true }, { indent = 2 } } do
        local text, err = encode({ a = 1, [k] = { b = 2, [k] = { 1, print } } }, opts)
        assert.is_nil(text)
        assert.equal(path .. "." .. path .. "[2]: cannot encode function", err)
      end
    end
  end)
end)

-- An object is opened on its first key, a string, without asking for its
-- length. A table whose first key (in next's order) is a string but that
-- also holds integer keys in its hash part is still refused by its keys
-- before anything inside it, as when the length was asked first: the
-- outermost such table speaks, whatever fails inside it.
describe("json_encode tables whose first key is a string and that hold key 1 too", function()
  local function mixed(first_val, extra_key)
    for i = 1, 500 do
      local t = { ["k" .. i] = first_val, ["j" .. i] = "w", ["m" .. i] = "x", ["n" .. i] = "y", ["o" .. i] = "z" }
      if extra_key ~= nil then t[extra_key] = 1 end
      t[1] = "one" -- a free hash slot takes it: no array part
      if type(next(t)) == "string" and rawlen(t) >= 1 then return t end
    end
    error("no table with a string first and key 1 in its hash part")
  end

  local OPTS = { {}, { sort_keys = true }, { indent = 2 } }

  local function refused(v, want)
    for _, o in ipairs(OPTS) do
      local text, err = encode(v, o)
      assert.is_nil(text)
      assert.equal(want, err)
    end
  end

  it("are refused by their keys, not by a value inside them", function()
    for _, v in ipairs({ "ok", print, 0 / 0, math.huge, "\xff", {}, { a = print }, { 1, nil, 3 }, { [true] = 1 } }) do
      refused(mixed(v), "(root): mixed array/object keys")
      refused({ x = { y = mixed(v) } }, "x.y: mixed array/object keys")
      refused({ mixed(v), print }, "[1]: mixed array/object keys")
      refused(mixed({ deep = mixed(v) }), "(root): mixed array/object keys")
      refused({ x = { deep = mixed(v) } }, "x.deep: mixed array/object keys")
      refused(mixed(v, true), "(root): unsupported key type (boolean)")
      refused(mixed(v, 2.5), "(root): unsupported key type (non-integer number)")
      refused(setmetatable(mixed(v), core.array_mt), "(root): mixed array/object keys")
      refused({ a = setmetatable(mixed(v, false), core.array_mt) }, "a: unsupported key type (boolean)")
    end
  end)

  it("are refused before a cycle or a depth inside them is", function()
    local back = { a = {} }
    back.a.b = mixed(back)
    refused(back, "a.b: mixed array/object keys")
    local own = mixed("x")
    own.self = own
    refused(own, "(root): mixed array/object keys")
    local deep = "leaf"
    for i = 1, 1100 do deep = i == 600 and mixed(deep) or { x = deep } end
    local text, err = encode(deep)
    assert.is_nil(text)
    assert.matches("^x%.x%.x.*%.x: mixed array/object keys$", err)
    text, err = encode(deep, { max_depth = 10000 })
    assert.is_nil(text)
    assert.matches(": mixed array/object keys$", err)
  end)

  it("leave the key cache right for the next call", function()
    assert.is_nil(encode({ x = mixed(print) }))
    local t = { k1 = "v", j1 = "w" }
    local want = {}
    for k, v in pairs(t) do want[#want + 1] = ('"%s":"%s"'):format(k, v) end
    assert.equal("{" .. table.concat(want, ",") .. "}", encode(t))
  end)
end)
