--- The JSON the mock speaks: instantly.core's codec (exact int64, a null
-- sentinel, arrays marked so empty ones encode as []).
-- @module instantly.mock.json

local core = require "instantly.core"

local M = {}

local encode, decode = core.json_encode, core.json_decode
M.null = core.null
M.array_mt = core.array_mt

if not encode then
  error("instantly.core has no JSON codec (csrc/json.c); rebuild the core", 2)
end

--- Mark (and return) a table as a JSON array.
function M.array(t)
  return core.array(t or {})
end

function M.is_array(v)
  return type(v) == "table" and getmetatable(v) == M.array_mt
end

function M.encode(v)
  return encode(v)
end

function M.decode(s)
  return decode(s)
end

return M
