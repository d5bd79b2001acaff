--- Keeping the API key out of everything a person or a log can see.
--
-- The key is only ever written into the `Authorization` header handed to
-- the transport. Everything else (`tostring(client)`, hook payloads,
-- errors, the CLI's `--verbose` and `--dry-run` output) goes through
-- these helpers.
--
-- The rule, one for everything: wherever a string could carry text the
-- server sent back (an error's message, its body at any depth, the keys
-- of that body, its response headers, raw text before it is cut short),
-- every occurrence of the key is replaced by its redacted form
-- (`M.key`). The key is looked for as sent, percent-encoded and
-- JSON-escaped, so an echo in any of those forms is caught. Secret
-- header names (`authorization`, `cookie`, ...) are redacted whatever
-- their value.
-- @module instantly.request.redact

local pairs, type, tostring, next = pairs, type, tostring, next
local lower, find, sub, gsub = string.lower, string.find, string.sub, string.gsub
local format, byte = string.format, string.byte
local concat = table.concat

local M = {}

--- The redacted form of a key: a short prefix, an ellipsis and the last
-- three characters (`inst…xyz`), or only the ellipsis for short keys, so
-- two keys can be told apart without revealing either.
-- @tparam string key
-- @treturn string
function M.key(key)
  if type(key) ~= "string" or #key < 16 then return "…" end
  return sub(key, 1, 4) .. "…" .. sub(key, -3)
end

local SECRET = { authorization = true, ["proxy-authorization"] = true, cookie = true, ["set-cookie"] = true,
                 ["x-api-key"] = true }

-- The spellings of the key an echo can take: as sent, percent-encoded,
-- JSON-escaped. One-entry cache: a process almost always has one key.
local last_key, last_forms
local function forms(key)
  if key == last_key then return last_forms end
  local f = { key }
  local pct = gsub(key, "[^%w%-%._~]", function(c) return format("%%%02X", byte(c)) end)
  if pct ~= key then f[#f + 1] = pct end
  local js = gsub(key, '[/"\\]', function(c) return "\\" .. c end)
  if js ~= key then f[#f + 1] = js end
  last_key, last_forms = key, f
  return f
end

local function scrub_one(s, pattern, shown)
  local a, b = find(s, pattern, 1, true)
  if not a then return s end
  local out, i = {}, 1
  while a do
    out[#out + 1] = sub(s, i, a - 1)
    out[#out + 1] = shown
    i = b + 1
    a, b = find(s, pattern, i, true)
  end
  out[#out + 1] = sub(s, i)
  return concat(out)
end

--- Remove every occurrence of `key` (in any of its spellings) from a string.
-- Anything else is returned as it is.
-- @param s string (or any value)
-- @tparam string|nil key
-- @return s without the key
function M.scrub(s, key)
  if type(s) ~= "string" or type(key) ~= "string" or key == "" then return s end
  local shown = M.key(key)
  for _, f in pairs(forms(key)) do s = scrub_one(s, f, shown) end
  return s
end
local scrub = M.scrub

-- Header names are case-insensitive (the transport lower-cases them):
-- look for the key's spellings lower-cased too.
local function scrub_name(name, key)
  name = scrub(name, key)
  local low = lower(name)
  local shown = M.key(key)
  local changed = false
  for _, f in pairs(forms(key)) do
    local lf = lower(f)
    if find(low, lf, 1, true) then low, changed = scrub_one(low, lf, shown), true end
  end
  return changed and low or name
end

--- `scrub` applied to a value at any depth: strings, and in tables
-- (changed in place) every string value and every string key. Cycles and
-- shared tables are visited once; no recursion, so no depth limit.
-- @param v any value
-- @tparam string|nil key
-- @return v with the key removed (a new string when `v` is a string)
function M.deep(v, key)
  if type(key) ~= "string" or key == "" then return v end
  if type(v) == "string" then return scrub(v, key) end
  if type(v) ~= "table" then return v end
  local seen, stack, n = { [v] = true }, { v }, 1
  while n > 0 do
    local t = stack[n]
    stack[n] = nil
    n = n - 1
    local renames
    for k, x in pairs(t) do
      if type(x) == "string" then
        local y = scrub(x, key)
        if y ~= x then t[k] = y end
      elseif type(x) == "table" and not seen[x] then
        seen[x] = true
        n = n + 1
        stack[n] = x
      end
      if type(k) == "string" then
        local k2 = scrub(k, key)
        if k2 ~= k then renames = renames or {}; renames[k] = k2 end
      elseif type(k) == "table" and not seen[k] then
        seen[k] = true
        n = n + 1
        stack[n] = k
      end
    end
    if renames then
      for k, k2 in pairs(renames) do t[k2], t[k] = t[k], nil end
    end
  end
  return v
end

--- A copy of a header table with secrets replaced by their redacted form,
-- and, when `key` is given, the key removed from every other name and value.
-- @tparam table headers `{name = value}`
-- @tparam[opt] string key
-- @treturn table
function M.headers(headers, key)
  local out = {}
  if type(headers) ~= "table" then return out end
  for k, v in pairs(headers) do
    if type(k) == "string" and SECRET[lower(k)] then
      local scheme, rest = tostring(v):match("^(%a+)%s+(.+)$")
      out[k] = scheme and (scheme .. " " .. M.key(rest)) or M.key(v)
    elseif key then
      local name = type(k) == "string" and scrub_name(k, key) or k
      out[name] = type(v) == "table" and M.deep(M.copy(v), key) or scrub(v, key)
    else
      out[k] = v
    end
  end
  return out
end

--- A shallow copy (header values that are lists).
-- @tparam table t
-- @treturn table
function M.copy(t)
  local o = {}
  for k, v in next, t do o[k] = v end
  return o
end

return M
