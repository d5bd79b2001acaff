--- instantly: a Lua 5.4 SDK for the Instantly.ai API V2.
--
--     local instantly = require "instantly"
--     local client = instantly.new{api_key = "..."}      -- or INSTANTLY_API_KEY
--     local campaign = assert(client.campaigns:get(id))
--     assert(campaign:activate())
--     for lead in client.leads:each{campaign = id} do print(lead.email) end
--
-- Every operation of the catalog is a method `client.<entity>:<method>`;
-- see `instantly.builder` for the calling convention and the README
-- ("Using the client") for options, errors, retries and rate limiting.
-- @module instantly

local core = require "instantly.core"
local Err = require "instantly.error"
local client = require "instantly.client"

local getmetatable, type = getmetatable, type

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

--- The error type: `nil, err` results carry one (see `instantly.error`).
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
-- functions that become methods of that client only; see instantly.builder)
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

return M
