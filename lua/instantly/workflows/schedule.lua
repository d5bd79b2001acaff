--- Build a campaign's sending schedule from words people use.
--
--     local schedule = require "instantly.workflows.schedule"
--     local s = schedule.new { days = "weekdays", from = "9:00", to = "17:00",
--                              timezone = "America/Chicago" }
--     client.campaigns:create { name = "Q3", campaign_schedule = s, ... }
--
-- Day names come from the catalog (`instantly.enums`, `campaign.days`:
-- "0" = Sunday ... "6" = Saturday), so do the timezones (the API accepts
-- only the zones of its fixed list, `enums.values("campaign.timezone")`;
-- `Europe/Berlin`, for one, is not in it). A wrong day, time or zone is
-- misuse and raises, naming the entry and the value.
-- @module instantly.schedule

local enums = require "instantly.enums"

local type, ipairs, pairs, next, tostring, error, tonumber = type, ipairs, pairs, next, tostring, error, tonumber
local fmt, concat = string.format, table.concat
local mtype = math.type

local M = {}

-- name or abbreviation -> day key ("0".."6"), from the catalog's labels.
local DAY_KEY = {}
for name, key in pairs(enums.campaign.days) do
  DAY_KEY[name] = key
  DAY_KEY[name:sub(1, 3)] = key
  DAY_KEY[key] = key
end

--- Named groups of days.
M.GROUPS = {
  weekdays = { "1", "2", "3", "4", "5" },
  weekend = { "0", "6" },
  every_day = { "0", "1", "2", "3", "4", "5", "6" },
}

-- The helpers below return nil and a message; the public functions raise
-- it at their caller.
local function fail(where, msg) return nil, where .. msg end

--- The day key ("0".."6", 0 = Sunday) of a day name ("monday", "Mon"), a
-- key, or a number 0..6; nil for anything else.
-- @param day
-- @treturn string|nil
function M.day_key(day)
  if mtype(day) == "integer" then day = tostring(day) end
  if type(day) ~= "string" then return nil end
  return DAY_KEY[day:lower():gsub("^%s+", ""):gsub("%s+$", "")]
end

local function days_table(days, where)
  if type(days) == "string" then
    local g = M.GROUPS[days:lower():gsub("[%s%-]+", "_")]
    days = g or { days }
  end
  if type(days) ~= "table" or #days == 0 then
    return fail(where, "days must be a day name, \"weekdays\", \"weekend\", \"every day\" or a list of days")
  end
  local out = {}
  for k = 0, 6 do out[tostring(k)] = false end
  for i, d in ipairs(days) do
    local key = M.day_key(d)
    if not key then
      return fail(where, fmt("days[%d]: unknown day %q (monday..sunday, mon..sun, or 0..6 with 0 = Sunday)", i,
        tostring(d)))
    end
    out[key] = true
  end
  return out
end

--- A time as "HH:MM" (24-hour), from "9:00" or "09:00"; nil when it is not one.
-- @tparam string s
-- @treturn string|nil
function M.time(s)
  if type(s) ~= "string" then return nil end
  local h, m = s:match("^%s*(%d%d?):(%d%d)%s*$")
  h, m = tonumber(h), tonumber(m)
  if not h or h > 23 or m > 59 then return nil end
  return fmt("%02d:%02d", h, m)
end

local function zones_like(tz)
  local region = type(tz) == "string" and tz:match("^([^/]+)/") or nil
  local out = {}
  for _, z in ipairs(enums.values("campaign.timezone")) do
    if region and z:sub(1, #region + 1) == region .. "/" then out[#out + 1] = z end
  end
  return out
end

--- Is `tz` one of the API's timezones?
-- @tparam string tz
-- @treturn boolean
function M.is_timezone(tz)
  return enums.is("campaign.timezone", tz)
end

local function check_timezone(tz, where)
  if tz == nil then return fail(where, "timezone is required") end
  if M.is_timezone(tz) then return tz end
  local like = zones_like(tz)
  local shown = type(tz) == "string" and fmt("%q", tz) or tostring(tz)
  return fail(where, fmt("timezone %s is not in the API's list%s", shown,
    #like > 0 and (" (in that region: " .. concat(like, ", ") .. ")")
      or " (see instantly.enums.values(\"campaign.timezone\"))"))
end

local ENTRY_OPTS = { name = true, days = true, from = true, to = true, timezone = true }

local function entry(o, where)
  if type(o) ~= "table" then return fail(where, "expects a table, got " .. type(o)) end
  for k in pairs(o) do
    if not ENTRY_OPTS[k] then return fail(where, "unknown option '" .. tostring(k) .. "'") end
  end
  local from, to = M.time(o.from), M.time(o.to)
  if not from then return fail(where, fmt("from must be a time like \"09:00\", got %s", tostring(o.from))) end
  if not to then return fail(where, fmt("to must be a time like \"17:00\", got %s", tostring(o.to))) end
  if from >= to then return fail(where, fmt("from (%s) must be before to (%s)", from, to)) end
  local days, derr = days_table(o.days or "weekdays", where)
  if not days then return nil, derr end
  local tz, terr = check_timezone(o.timezone, where)
  if not tz then return nil, terr end
  return { name = o.name or "Schedule", timing = { from = from, to = to }, days = days, timezone = tz }
end

local function raise(msg) error("instantly.schedule: " .. msg, 3) end

--- One sending window: `{name, timing = {from, to}, days = {"0".."6" =
-- boolean}, timezone}` as the API wants it.
-- @tparam table o `days` (default "weekdays"), `from`, `to`, `timezone`, `name`
-- @treturn table
function M.entry(o)
  local e, msg = entry(o, "")
  if not e then raise(msg) end
  return e
end

local function is_date(s)
  return type(s) == "string" and s:match("^%d%d%d%d%-%d%d%-%d%d$") ~= nil
end

--- A `campaign_schedule`: one window from `days`/`from`/`to`/`timezone`,
-- or several as `schedules = {schedule.entry{...}, ...}`; optional
-- `start_date` / `end_date` ("YYYY-MM-DD").
-- @tparam table o
-- @treturn table
function M.new(o)
  if type(o) ~= "table" then raise("expects a table, got " .. type(o)) end
  local out, one = {}, {}
  for k, v in pairs(o) do
    if k == "start_date" or k == "end_date" then
      if not is_date(v) then raise(fmt("%s must be a date like \"2026-12-01\", got %s", k, tostring(v))) end
      out[k] = v
    elseif k ~= "schedules" then
      one[k] = v
    end
  end
  local list = o.schedules
  if list and next(one) then raise("give schedules or one window (days, from, to, timezone), not both") end
  out.schedules = {}
  for i, e in ipairs(list or { one }) do
    local made, msg = e, nil
    -- an entry made by M.entry is already checked
    if not (list and type(e) == "table" and e.timing) then
      made, msg = entry(e, list and fmt("schedules[%d]: ", i) or "")
    end
    if not made then raise(msg) end
    out.schedules[i] = made
  end
  return out
end

return M
