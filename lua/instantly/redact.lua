--- Keeping the API key out of everything a person or a log can see.
--
-- The key is only ever written into the `Authorization` header handed to
-- the transport. Everything else (`tostring(client)`, hook payloads,
-- errors) goes through these helpers.
-- @module instantly.redact

local pairs, type, tostring, lower = pairs, type, tostring, string.lower

local M = {}

--- The redacted form of a key: a short prefix, an ellipsis and the last
-- three characters (`inst…xyz`), or only the ellipsis for short keys, so
-- two keys can be told apart without revealing either.
-- @tparam string key
-- @treturn string
function M.key(key)
  if type(key) ~= "string" or #key < 16 then return "…" end
  return key:sub(1, 4) .. "…" .. key:sub(-3)
end

local SECRET = { authorization = true, ["proxy-authorization"] = true, cookie = true, ["x-api-key"] = true }

--- A copy of a header table with secrets replaced by their redacted form.
-- @tparam table headers `{name = value}`
-- @treturn table
function M.headers(headers)
  local out = {}
  for k, v in pairs(headers) do
    if SECRET[lower(k)] then
      local scheme, rest = tostring(v):match("^(%a+)%s+(.+)$")
      out[k] = scheme and (scheme .. " " .. M.key(rest)) or M.key(v)
    else
      out[k] = v
    end
  end
  return out
end

--- Remove every occurrence of `key` from a string (for messages that might
-- echo a request back).
-- @tparam string s
-- @tparam string key
-- @treturn string
function M.scrub(s, key)
  if type(s) ~= "string" or type(key) ~= "string" or key == "" then return s end
  local out, i = {}, 1
  while true do
    local a, b = s:find(key, i, true)
    if not a then break end
    out[#out + 1] = s:sub(i, a - 1)
    out[#out + 1] = M.key(key)
    i = b + 1
  end
  if i == 1 then return s end
  out[#out + 1] = s:sub(i)
  return table.concat(out)
end

--- `scrub` applied to every string inside a decoded value (in place, for
-- tables; a few levels deep), used on error bodies that could echo a
-- request back.
-- @param v decoded value
-- @tparam string key
-- @return v with the key removed
function M.scrub_deep(v, key, depth)
  if type(v) == "string" then return M.scrub(v, key) end
  if type(v) ~= "table" or (depth or 0) > 8 then return v end
  for k, x in pairs(v) do
    local y = M.scrub_deep(x, key, (depth or 0) + 1)
    if y ~= x then v[k] = y end
  end
  return v
end

return M
