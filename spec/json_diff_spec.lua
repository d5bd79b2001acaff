-- Differential spec: core.json_decode against lua-cjson (Debian 2.1.0) on
-- generated documents of the kinds both represent exactly.
--
-- The generator builds a Lua value together with a JSON text for it, the
-- text written with random whitespace, escapes and number spellings. Then:
--   1. our decode of the text equals the value, subtypes and float bits
--      included;
--   2. cjson's decode of the text matches ours (cjson 2.1.0 on Lua 5.4
--      makes every number a float, so our integers are compared by value);
--   3. our decode of cjson's encoding of the value equals the value
--      (cjson writes %.14g, so generated floats carry at most 12 digits and
--      integers stay below 1e14; containers are never empty, since cjson
--      writes every empty table as {});
--   4. our decode of our own encoding (compact, sorted, indented) equals
--      the value.
local core = require "instantly.core"
local has_cjson, cjson = pcall(require, "cjson")

local decode, encode = core.json_decode, core.json_encode
local null = core.null

local DOCS = 1500
local SEED = 20240611

-- Our own PRNG, so the documents do not depend on math.random's algorithm.
local function prng(seed)
  local s = seed
  return function(lo, hi)
    s = (s * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
    local r = (s >> 33) & 0x7FFFFFFF
    return lo + r % (hi - lo + 1)
  end
end

local function gen_doc(rand)
  local function ws()
    local n = rand(0, 6)
    if n > 2 then return "" end
    local t = {}
    for i = 1, n do t[i] = ({ " ", "\t", "\n", "\r", "  " })[rand(1, 5)] end
    return table.concat(t)
  end

  -- Characters: ASCII (with the specials), controls, 2/3/4-byte UTF-8.
  local function gen_char()
    local k = rand(1, 20)
    if k <= 10 then return rand(0x20, 0x7E)
    elseif k == 11 then return 0x22
    elseif k == 12 then return 0x5C
    elseif k == 13 then return 0x2F
    elseif k == 14 then return rand(0, 0x1F)
    elseif k <= 16 then return rand(0x80, 0x7FF)
    elseif k <= 18 then
      local c = rand(0x800, 0xFFFD)
      if c >= 0xD800 and c <= 0xDFFF then c = c - 0x800 end
      return c
    else return rand(0x10000, 0x10FFFF)
    end
  end

  local short = { [0x22] = '\\"', [0x5C] = "\\\\", [0x2F] = "\\/", [8] = "\\b", [12] = "\\f",
    [10] = "\\n", [13] = "\\r", [9] = "\\t" }

  local function gen_string(maxlen)
    local raw, text = {}, { '"' }
    for i = 1, rand(0, maxlen) do
      local c = gen_char()
      raw[i] = utf8.char(c)
      local mode = rand(1, 4)
      if c < 0x20 or c == 0x22 or c == 0x5C then
        if short[c] and mode <= 2 then
          text[#text + 1] = short[c]
        else
          text[#text + 1] = ("\\u%04x"):format(c)
        end
      elseif mode == 1 and c ~= 0x2F then
        if c >= 0x10000 then
          local v = c - 0x10000
          text[#text + 1] = ("\\u%04X\\u%04x"):format(0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF))
        else
          text[#text + 1] = ("\\u%04x"):format(c)
        end
      elseif mode == 2 and short[c] then
        text[#text + 1] = short[c]
      else
        text[#text + 1] = raw[i]
      end
    end
    text[#text + 1] = '"'
    return table.concat(raw), table.concat(text)
  end

  local function gen_number()
    local k = rand(1, 6)
    if k <= 3 then -- integer below 1e14
      local v = rand(0, 99999) * rand(0, 999999999)
      if rand(0, 1) == 1 then v = -v end
      return v, tostring(v)
    else -- float with at most 12 significant digits, never integral
      local m = rand(1, 999999) * 1000000 + rand(0, 999999)
      while m % 10 == 0 do m = m // 10 end
      local e = rand(-30, 20)
      local neg = rand(0, 1) == 1 and "-" or ""
      local text
      if rand(0, 1) == 0 then
        text = ("%s%d%s%s%d"):format(neg, m, ({ "e", "E" })[rand(1, 2)], ({ "", "+", "-" })[e < 0 and 3 or rand(1, 2)],
          math.abs(e))
      else
        local digits = tostring(m)
        local point = rand(1, #digits)
        text = neg .. digits:sub(1, point) .. "." .. digits:sub(point + 1) .. (point == #digits and "0" or "")
          .. "e" .. e
      end
      local v = tonumber(text)
      if v == math.floor(v) then -- integral after all: make it a fraction
        text = neg .. "0." .. tostring(m) .. "e-" .. rand(1, 5)
        v = tonumber(text)
      end
      assert(math.type(v) == "float")
      return v, text
    end
  end

  local function gen_value(depth)
    local k = rand(1, depth >= 5 and 6 or 10)
    if k == 1 then return true, "true"
    elseif k == 2 then return false, "false"
    elseif k == 3 then return null, "null"
    elseif k == 4 then return gen_number()
    elseif k <= 6 then return gen_string(12)
    elseif k <= 8 then
      local t, text = core.array({}), { "[" }
      for i = 1, rand(1, 5) do
        local v, vt = gen_value(depth + 1)
        t[i] = v
        text[#text + 1] = (i > 1 and "," or "") .. ws() .. vt .. ws()
      end
      text[#text + 1] = "]"
      return t, table.concat(text)
    else
      local t, text, n = {}, { "{" }, 0
      for _ = 1, rand(1, 5) do
        local key, kt = gen_string(8)
        if t[key] == nil then
          local v, vt = gen_value(depth + 1)
          t[key] = v
          n = n + 1
          text[#text + 1] = (n > 1 and "," or "") .. ws() .. kt .. ws() .. ":" .. ws() .. vt .. ws()
        end
      end
      text[#text + 1] = "}"
      return t, table.concat(text)
    end
  end

  local v, text = gen_value(rand(0, 3))
  return v, ws() .. text .. ws()
end

-- exact: subtypes and float bits must agree; array_mt must match.
local same = require "support.same_value"

-- ours vs cjson's decode: cjson makes every number a float and tables bare.
local function like_cjson(ours, theirs, path)
  if type(ours) == "number" and type(theirs) == "number" then
    if math.type(ours) == "integer" then
      return math.abs(ours) < 2 ^ 53 and ours == theirs, path .. ": integer differs"
    end
    return string.pack("<n", ours) == string.pack("<n", theirs), path .. ": float differs"
  end
  if type(ours) ~= type(theirs) then return false, path .. ": " .. type(ours) .. " vs " .. type(theirs) end
  if type(ours) ~= "table" then return ours == theirs, path .. ": values differ" end
  for k, v in pairs(ours) do
    local ok, why = like_cjson(v, theirs[k], path .. "." .. tostring(k))
    if not ok then return false, why end
  end
  for k in pairs(theirs) do
    if ours[k] == nil then return false, path .. "." .. tostring(k) .. ": extra key" end
  end
  return true
end

describe("json_decode against lua-cjson", function()
  if not has_cjson then
    it("needs lua-cjson", function() pending("lua-cjson is not installed") end)
    return
  end

  local docs = {}
  local rand = prng(SEED)
  for i = 1, DOCS do
    local v, text = gen_doc(rand)
    docs[i] = { value = v, text = text }
  end

  it(("generates %d varied documents"):format(DOCS), function()
    local kinds, escapes, astral = {}, 0, 0
    for _, d in ipairs(docs) do
      kinds[d.text:match("^%s*(.)")] = true
      if d.text:find("\\u", 1, true) then escapes = escapes + 1 end
      if d.text:find("[\240-\244]") or d.text:find("\\u[dD][89abAB]") then astral = astral + 1 end
    end
    for _, k in ipairs({ "[", "{", '"', "t", "f", "n" }) do
      assert.is_true(kinds[k], "no document starts with " .. k)
    end
    assert.is_true(escapes > DOCS / 10)
    assert.is_true(astral > DOCS / 20)
  end)

  it("decodes the text to the generated value", function()
    for i, d in ipairs(docs) do
      local v, err = decode(d.text)
      assert(v ~= nil, ("doc %d: %s\n%s"):format(i, err, d.text))
      local ok, why = same(d.value, v, "$")
      assert(ok, ("doc %d: %s\n%s"):format(i, why, d.text))
    end
  end)

  it("agrees with cjson.decode on the same text", function()
    for i, d in ipairs(docs) do
      local ok, why = like_cjson(decode(d.text), cjson.decode(d.text), "$")
      assert(ok, ("doc %d: %s\n%s"):format(i, why, d.text))
    end
  end)

  it("decodes cjson.encode output back to the original", function()
    for i, d in ipairs(docs) do
      local text = cjson.encode(d.value)
      local ok, why = same(d.value, decode(text), "$")
      assert(ok, ("doc %d: %s\n%s"):format(i, why, text))
    end
  end)

  it("decodes its own encodings back to the original", function()
    local variants = { {}, { sort_keys = true }, { indent = 2 }, { indent = 1, sort_keys = true } }
    for i, d in ipairs(docs) do
      local opts = variants[i % #variants + 1]
      local text = assert(encode(d.value, opts))
      local ok, why = same(d.value, decode(text), "$")
      assert(ok, ("doc %d: %s\n%s"):format(i, why, text))
      -- and cjson reads what we write
      ok, why = like_cjson(decode(text), cjson.decode(text), "$")
      assert(ok, ("doc %d (cjson reading ours): %s\n%s"):format(i, why, text))
    end
  end)

  it("rejects what cjson rejects on damaged documents", function()
    -- cjson 2.1.0 accepts some things RFC 8259 does not (invalid UTF-8,
    -- and more), so only one direction holds: what cjson refuses, we refuse.
    local r = prng(SEED + 1)
    local cut = 0
    for i = 1, #docs do
      local text = docs[i].text
      if #text > 2 then
        local pos = r(1, #text)
        local damaged = text:sub(1, pos - 1) .. string.char(r(0, 127)) .. text:sub(pos + 1)
        local theirs_ok = pcall(cjson.decode, damaged)
        if not theirs_ok then
          cut = cut + 1
          local v, err = decode(damaged)
          assert(v == nil, ("accepted what cjson refuses: %q"):format(damaged))
          assert.matches(" at byte %d+$", err)
        end
      end
    end
    assert.is_true(cut > 100)
  end)
end)
