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
    for round = 1, 3 do
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
