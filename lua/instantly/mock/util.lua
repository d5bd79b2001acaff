--- Small helpers the mock's parts share: a seeded PRNG, UUIDs, ISO 8601
-- times, percent-decoding and query strings.
-- @module instantly.mock.util

local floor, fmt, char = math.floor, string.format, string.char
local tonumber = tonumber

local M = {}

--- A deterministic PRNG (xorshift64*), independent of math.random so two
-- mocks in one process never disturb each other.
-- rng() -> float in [0,1); rng(n) -> integer in [1,n]; rng(a, b) -> [a,b].
function M.rng(seed)
  local s = (math.tointeger(seed) or 0) * 0x9E3779B97F4A7C15 + 0x2545F4914F6CDD1D
  if s == 0 then s = 1 end
  return function(a, b)
    s = s ~ (s << 13)
    s = s ~ (s >> 7)
    s = s ~ (s << 17)
    local x = (s * 0x2545F4914F6CDD1D) >> 11 -- 53 random bits, non-negative
    if not a then return x / 9007199254740992.0 end
    if not b then a, b = 1, a end
    return a + x % (b - a + 1)
  end
end

function M.uuid(rng)
  local a, b, c, d = rng(0, 0xffffffff), rng(0, 0xffffffff), rng(0, 0xffffffff), rng(0, 0xffffffff)
  return fmt("%08x-%04x-4%03x-%04x-%04x%08x",
    a, b >> 16, b & 0xfff, 0x8000 | (c >> 16 & 0x3fff), c & 0xffff, d)
end

local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

--- Milliseconds since the epoch -> "2026-01-05T08:00:00.000Z".
function M.iso(ms)
  local sec = ms // 1000
  return os.date("!%Y-%m-%dT%H:%M:%S", sec) .. fmt(".%03dZ", ms % 1000)
end

--- Milliseconds -> "2026-01-05".
function M.date(ms)
  return os.date("!%Y-%m-%d", ms // 1000)
end

--- Parse an ISO 8601 date or date-time (UTC or with offset) to
-- milliseconds; nil when it is not one.
function M.parse_time(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d, rest = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  if not y then return nil end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo < 1 or mo > 12 or d < 1 or d > 31 then return nil end
  local h, mi, se, frac, zone = 0, 0, 0, nil, ""
  if rest ~= "" then
    local hh, mm, tail = rest:match("^[T ](%d%d):(%d%d)(.*)$")
    if not hh then return nil end
    h, mi = tonumber(hh), tonumber(mm)
    local ss, tail2 = tail:match("^:(%d%d)(.*)$")
    if ss then se, tail = tonumber(ss), tail2 end
    local f, tail3 = tail:match("^%.(%d+)(.*)$")
    if f then frac, tail = f, tail3 end
    zone = tail
  end
  local offset = 0
  if zone ~= "" and zone ~= "Z" and zone ~= "z" then
    local sign, oh, om = zone:match("^([+-])(%d%d):?(%d%d)$")
    if not sign then return nil end
    offset = (tonumber(oh) * 60 + tonumber(om)) * 60
    if sign == "-" then offset = -offset end
  end
  local ms = 0
  if frac then ms = floor(tonumber("0." .. frac) * 1000 + 0.5) end
  local days = days_from_civil(y, mo, d)
  return ((days * 86400 + h * 3600 + mi * 60 + se) - offset) * 1000 + ms
end

local function unhex(h) return char(tonumber(h, 16)) end

--- Percent-decode (path segments: '+' stays '+').
function M.unescape(s)
  if not s:find("%", 1, true) then return s end
  return (s:gsub("%%(%x%x)", unhex))
end

--- Query string -> table; repeated keys become arrays (in order).
function M.parse_query(q)
  local t = {}
  if not q or q == "" then return t end
  for pair in q:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    k = M.unescape((k:gsub("%+", " ")))
    v = M.unescape((v:gsub("%+", " ")))
    local old = t[k]
    if old == nil then
      t[k] = v
    elseif type(old) == "table" then
      old[#old + 1] = v
    else
      t[k] = { old, v }
    end
  end
  return t
end

function M.shallow_copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return setmetatable(c, getmetatable(t))
end

--- Deep copy, keeping metatables (array marks).
function M.deep_copy(v)
  if type(v) ~= "table" then return v end
  local c = {}
  for k, x in pairs(v) do c[k] = M.deep_copy(x) end
  return setmetatable(c, getmetatable(v))
end

local EMAIL = "^[%w.!#$%%&'*+/=?^_`{|}~-]+@[%w-]+%.[%w.-]*%w$"
function M.is_email(s)
  return type(s) == "string" and #s <= 254 and s:match(EMAIL) ~= nil and not s:find("..", 1, true)
end

function M.is_uuid(s)
  return type(s) == "string" and #s == 36
    and s:match("^%x+%-%x+%-%x+%-%x+%-%x+$") ~= nil
    and s:sub(9, 9) == "-" and s:sub(14, 14) == "-" and s:sub(19, 19) == "-" and s:sub(24, 24) == "-"
end

return M
