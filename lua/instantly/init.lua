--- instantly: a Lua 5.4 SDK for the Instantly.ai API V2.
--
--     local instantly = require "instantly"
--     local client = instantly.new{api_key = "..."}      -- or INSTANTLY_API_KEY
--     local campaign = assert(client.campaigns:get(id))
--     assert(campaign:activate())
--     for lead in client.leads:each{campaign = id} do print(lead.email) end
--
-- Every operation of the catalog is a method `client.<entity>:<method>`;
-- see `instantly.request.builder` for the calling convention and the README
-- ("Using the client") for options, errors, retries and rate limiting.
-- @module instantly

local core = require "instantly.core"
local Err = require "instantly.request.error"
local client = require "instantly.request.client"
local pipeline = require "instantly.request.pipeline"
local records = require "instantly.request.record"

local getmetatable, setmetatable, rawset, type = getmetatable, setmetatable, rawset, type
local pcall, tostring, error = pcall, tostring, error

local M = {}

--- Version of the SDK (the C core and the Lua layer ship together).
M.VERSION = core.VERSION

--- JSON null: send it to clear a nullable field; decoded nulls compare equal.
M.null = core.null

--- Mark a table as a JSON array (an empty one then encodes as `[]`).
-- @function array
-- @tparam table t
-- @treturn table t
M.array = core.array

--- JSON as the SDK reads and writes it: the C codec (exact 64-bit
-- integers, round-trip floats, `instantly.null`, `instantly.array`).
-- Both functions return `nil, err` instead of raising on bad input, and
-- `decode` also when memory runs out.
-- @table json
M.json = {}

--- Encode a value as JSON text.
-- @function json.encode
-- @param v a table, string, number, boolean or `instantly.null`
-- @treturn string|nil text
-- @treturn string|nil err
function M.json.encode(v)
  local ok, text, err = pcall(core.json_encode, v)
  if ok then return text, err end
  return nil, tostring(text)
end

--- Decode JSON text.
-- @function json.decode
-- @tparam string text
-- @return the value (`instantly.null` for null, arrays marked as arrays), or nil
-- @treturn string|nil err
function M.json.decode(text)
  if type(text) ~= "string" then error("instantly.json.decode: text must be a string, got " .. type(text), 2) end
  local ok, v, err = pcall(core.json_decode, text)
  if ok then return v, err end
  return nil, "cannot decode " .. #text .. " bytes: " .. tostring(v)
end

--- Sleep for `seconds`. Inside a `client:gather` task the other tasks
-- run meanwhile (the scheduler is found by coroutine); elsewhere the
-- process sleeps.
-- @function sleep
-- @tparam number seconds
function M.sleep(seconds)
  if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 then
    error("instantly.sleep: seconds must be a number >= 0", 2)
  end
  local sched = pipeline.scheduler()
  if sched then sched:sleep(seconds) else core.sleep(seconds) end
end

--- The names of a record's fields that were JSON null (records leave
-- them out, so a null field reads as nil; see `instantly.request.record`).
-- @function nulls
-- @tparam table rec a record
-- @treturn table sorted array of field names
M.nulls = records.nulls

--- A record as the API sent it: a plain copy with null fields back as
-- `instantly.null` and fields under their API names (`payload`).
-- @function raw
-- @tparam table rec a record
-- @treturn table
M.raw = records.raw

--- The error type: `nil, err` results carry one (see `instantly.request.error`).
M.Error = Err.Error

--- Is `v` an `instantly.Error`?
-- @function is_error
-- @param v
-- @treturn boolean
M.is_error = Err.is

--- Create a client.
-- @function new
-- @tparam[opt] table options api_key, base_url, timeout, connect_timeout,
-- max_retries, retry, rate_limit, workspace, headers, user_agent,
-- on_request, on_response, on_wait, transport, proxy, ca_file, ca_path,
-- max_response_bytes, extensions (a table mapping an entity's lua name, or
-- "client", to `{entity =, record =, wrap =}` / `{client =}` tables of
-- functions that become methods of that client only; see instantly.request.builder)
-- @treturn table client
M.new = client.new

--- The client a record (or page, or entity object) belongs to; nil for
-- anything else. This is how record extension methods reach the API.
-- @tparam table v a record returned by the client
-- @treturn table|nil client
function M.client_of(v)
  if type(v) ~= "table" then return nil end
  if type(v.client) == "table" and getmetatable(v) and getmetatable(v).__name
     and getmetatable(v).__name:find("^instantly%.entity%.") then
    return v.client
  end
  local mt = getmetatable(v)
  if type(mt) ~= "table" then return nil end
  if mt.__client then return mt.__client end
  if mt.__state then return mt.__state.client end
  return nil
end

--- The entity object (e.g. `client.campaigns`) a record belongs to.
-- @tparam table record
-- @treturn table|nil entity object
function M.entity_of(record)
  local mt = type(record) == "table" and getmetatable(record)
  return type(mt) == "table" and mt.__entity or nil
end

--- Modules reached through this one, each loaded on first use:
-- `instantly.enums` (the catalog's enum constants and labels:
-- `enums.campaign.status.active`, `enums.label("campaign.status", 2)`),
-- `instantly.csv` (RFC 4180 reader and writer), `instantly.schedule`
-- (campaign schedules from day names and times) and `instantly.stats`
-- (analytics as rows with rates).
-- @field enums
-- @field csv
-- @field schedule
-- @field stats
local LAZY = {
  enums = "instantly.enums",
  csv = "instantly.workflows.csv",
  schedule = "instantly.workflows.schedule",
  stats = "instantly.workflows.stats",
}

return setmetatable(M, {
  __index = function(t, k)
    local name = LAZY[k]
    if name then
      local mod = require(name)
      rawset(t, k, mod)
      return mod
    end
  end,
})
