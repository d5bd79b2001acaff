--- Injected faults: the queue the control plane fills, the match against
-- each API request, and the mangling of the answer.
--
-- A fault's `pattern` is a glob on the raw path: `*` matches any run of
-- characters (slashes included), every other character matches itself,
-- and the whole path must match. Matching walks the pieces between the
-- stars left to right with plain searches, so it never backtracks: the
-- cost is bounded by the path length times the number of pieces, whatever
-- the pattern (a Lua pattern such as `a-a-a-...-b` could freeze the loop).
-- @module instantly.mock.faults

local json = require "instantly.mock.json"
local util = require "instantly.mock.util"

local find, sub = string.find, string.sub

local M = {}

M.MAX_PENDING = 1000   -- faults queued at once
M.MAX_PATTERN = 1024   -- bytes in a glob
M.MAX_OVERSIZE = 256 * 1024 * 1024  -- bytes an oversize fault may send

local PREFIX = "/api/v2"

local KEYS = {
  method = "string", path = "string", pattern = "string", op = "string",
  count = "number", status = "number", retry_after = "number", delay = "number",
  close = "string", truncate = "boolean", invalid_json = "boolean",
  oversize = "number", trickle = "number", body = "any", process = "boolean",
  message = "string",
}

-- Pieces of a glob: the literal runs between stars, and whether the glob
-- is anchored at each end.
local function compile(glob)
  local pieces = {}
  for piece in (glob .. "*"):gmatch("([^*]*)%*") do pieces[#pieces + 1] = piece end
  return { pieces = pieces, head = sub(glob, 1, 1) ~= "*", tail = sub(glob, -1) ~= "*" }
end

--- Whether `s` matches the compiled glob `g`.
function M.glob_match(g, s)
  local pieces, n = g.pieces, #g.pieces
  if n == 1 then return s == pieces[1] end
  local first, last = pieces[1], pieces[n]
  if sub(s, 1, #first) ~= first then return false end
  local pos = #first + 1
  for i = 2, n - 1 do
    local p = pieces[i]
    if p ~= "" then
      local a, b = find(s, p, pos, true)
      if not a then return false end
      pos = b + 1
    end
  end
  if last == "" then return true end
  return #s - #last + 1 >= pos and sub(s, -#last) == last
end

M.compile = compile

local function check(f)
  if type(f) ~= "table" then return "fault must be an object" end
  for k, v in pairs(f) do
    local want = KEYS[k]
    if not want then return "unknown fault option '" .. tostring(k) .. "'" end
    if want ~= "any" and type(v) ~= want then return "fault option '" .. k .. "' must be " .. want end
  end
  if f.close and f.close ~= "before_headers" and f.close ~= "after_headers" then
    return "fault option 'close' must be before_headers or after_headers"
  end
  if f.status and (f.status < 100 or f.status > 599) then
    return "fault option 'status' must be an HTTP status"
  end
  if not (f.status or f.delay or f.close or f.truncate or f.invalid_json or f.oversize
          or f.trickle or f.body) then
    return "fault needs one of status, delay, close, truncate, invalid_json, oversize, trickle, body"
  end
  if f.oversize and f.oversize > M.MAX_OVERSIZE then
    return "fault option 'oversize' must be at most " .. M.MAX_OVERSIZE .. " bytes"
  end
  if f.pattern and #f.pattern > M.MAX_PATTERN then
    return "fault option 'pattern' is longer than " .. M.MAX_PATTERN .. " bytes"
  end
end

--- Validate and queue a fault; returns the queued copy or nil, message.
function M.add(list, f)
  local msg = check(f)
  if msg then return nil, msg end
  if #list >= M.MAX_PENDING then return nil, "too many pending faults (" .. M.MAX_PENDING .. ")" end
  local copy = {}
  for k, v in pairs(f) do copy[k] = v end
  copy.remaining = math.tointeger(f.count) or 1
  if copy.remaining < 1 then return nil, "fault option 'count' must be >= 1" end
  list[#list + 1] = copy
  return copy
end

local function matches(f, req, route)
  if f.method and f.method ~= "*" and f.method:upper() ~= req.method then return false end
  if f.op then return route ~= nil and route.op.id == f.op end
  if f.path then
    local p = f.path
    local full = sub(p, 1, #PREFIX) == PREFIX and p or (PREFIX .. p)
    if req.path ~= full and util.unescape(req.path) ~= full then
      -- a catalog template such as /campaigns/{id}
      if not (route and (PREFIX .. route.op.path) == full) then return false end
    end
  end
  if f.pattern then
    f.glob = f.glob or compile(f.pattern)
    if not M.glob_match(f.glob, req.path) then return false end
  end
  return true
end

--- The first pending fault for this request, consumed by one.
function M.take(list, req, route)
  for i, f in ipairs(list) do
    if matches(f, req, route) then
      f.remaining = f.remaining - 1
      if f.remaining <= 0 then table.remove(list, i) end
      f.hits = (f.hits or 0) + 1
      return f
    end
  end
end

--- The pending faults as plain tables (for GET /__mock/faults).
function M.public(list)
  local out = json.array({})
  for _, f in ipairs(list) do
    local c = {}
    for k, v in pairs(f) do if k ~= "glob" then c[k] = v end end
    out[#out + 1] = c
  end
  return out
end

--- Apply a fault's mangling to a computed response.
function M.mangle(res, f)
  if f.invalid_json then
    res.body = '{"items": [{"id": "truncated'
    res.status = res.status == 204 and 200 or res.status
  end
  if f.oversize then
    local n = math.tointeger(f.oversize) or 0
    local head = '{"padding":"'
    res.body = head .. string.rep("x", math.max(0, n - #head - 2)) .. '"}'
    res.status = res.status == 204 and 200 or res.status
  end
  if f.close or f.truncate or f.trickle then
    res.fault = { close = f.close, truncate = f.truncate, trickle = f.trickle }
    if f.truncate and #res.body < 2 then res.body = '{"message":"truncated body"}' end
  end
  return res
end

return M
