--- The one error type of the SDK.
--
-- Every expected failure (network, timeout, HTTP 4xx/5xx, rate limiting,
-- undecodable bodies, an error reported inside a 200 body) comes back as
-- `nil, err` where `err` is an `instantly.Error`: a plain table with a
-- readable `__tostring`, so `assert(client.campaigns:get(id))` prints
-- something a person can act on. Programmer misuse raises instead.
--
-- Fields: `kind` (one of `instantly.request.error.KINDS`), `status` (HTTP status,
-- absent when no response was involved), `code` (the vendor's `error`
-- string), `message`, `method`, `path` (the path as sent, with its
-- arguments percent-encoded), `body` (decoded response body, or the raw
-- text when it was not JSON), `headers` (response headers), `retry_after`
-- (seconds), `request_id`, `attempts`, and for transport failures
-- `transport_kind` (`connect`, `dns`, `timeout`, `tls`, ...) and
-- `curl_code`. Everything an error built by the request pipeline carries
-- has had the API key removed (see `instantly.request.redact`).
-- @module instantly.request.error

local setmetatable, getmetatable, tostring, type = setmetatable, getmetatable, tostring, type
local error, pairs = error, pairs
local concat, sort = table.concat, table.sort

local M = {}

local Error = {}
Error.__index = Error
Error.__name = "instantly.Error"

--- Every error kind, the one list (`Error.new` refuses any other):
--
-- * `http`: the server answered 4xx/5xx (429 is `rate_limited`);
-- * `rate_limited`: HTTP 429, or the client-side limiter would wait too long;
-- * `api`: a 2xx body that reports an error, or a server that broke the
--   paging rules (a cursor that cycles, a page without items);
-- * `decode`: a body that is not the JSON promised, or too big to decode
--   in the memory available;
-- * `transport`: no usable response (connect, dns, tls, protocol, too_large, ...);
-- * `timeout`: a request or a wait ran out of time;
-- * `task`: a task given to `client:gather` raised;
-- * `failed`: a waited-on job, verification or session ended badly;
-- * `preflight`: a launch was refused by its preflight;
-- * `checkpoint`: an import checkpoint file could not be read or written;
-- * `export`: a lead export could not write its file;
-- * `csv`: a CSV file could not be read;
-- * `limit`: a collecting call (`all`) found more items than its `max`;
-- * `webhook`: `instantly.webhook` refused a delivery (`reason`, `status`).
M.KINDS = {
  http = true, rate_limited = true, api = true, decode = true, transport = true, timeout = true,
  limit = true, task = true, failed = true, preflight = true, checkpoint = true, export = true, csv = true,
  webhook = true,
}
local KINDS = M.KINDS

local function kind_list()
  local names = {}
  for k in pairs(KINDS) do names[#names + 1] = k end
  sort(names)
  return concat(names, ", ")
end

--- Build an error. Two forms, both stable: `Error.new(kind, fields)`
-- and `Error.new(fields)` with `fields.kind` set. `fields` becomes the
-- error (it is not copied). An unknown kind raises (misuse).
-- @tparam string|table kind the kind, or the fields with a `kind`
-- @tparam[opt] table fields at least `message`
-- @treturn instantly.Error
-- @usage return nil, Error.new("export", {message = "cannot write " .. path})
function M.new(kind, fields)
  if type(kind) == "table" and fields == nil then
    fields = kind
    kind = fields.kind
  elseif fields == nil then
    fields = {}
  elseif type(fields) ~= "table" then
    error("instantly.error.new: fields must be a table, got " .. type(fields), 2)
  end
  if not KINDS[kind] then
    error("instantly.error.new: unknown kind " .. (type(kind) == "string" and ("'" .. kind .. "'") or type(kind)) ..
      " (known: " .. kind_list() .. ")", 2)
  end
  fields.kind = kind
  return setmetatable(fields, Error)
end

--- Is `v` an `instantly.Error`?
-- @param v any value
-- @treturn boolean
function M.is(v)
  return type(v) == "table" and getmetatable(v) == Error
end

local STATUS_KINDS = { http = true, rate_limited = true, api = true }

--- A one-line description: what failed, where, and what to do with it.
-- @treturn string
function Error:__tostring()
  local parts = { "instantly: " }
  if self.method then
    parts[#parts + 1] = self.method .. " " .. tostring(self.path) .. ": "
  end
  local kind = self.kind
  local code = self.code ~= "" and self.code or nil
  if STATUS_KINDS[kind] and self.status then
    parts[#parts + 1] = (kind == "api" and "API error in HTTP " or "HTTP ") .. tostring(self.status)
    if code then parts[#parts + 1] = " " .. tostring(code) end
  else
    -- No response was involved (a client-side limit, a broken paging
    -- rule): the kind says what happened.
    parts[#parts + 1] = kind
    if self.transport_kind and self.transport_kind ~= kind then
      parts[#parts + 1] = " (" .. self.transport_kind .. ")"
    end
    if code then parts[#parts + 1] = " " .. tostring(code) end
  end
  local message = self.message
  if message ~= nil and message ~= "" and message ~= code then parts[#parts + 1] = ": " .. tostring(message) end
  local extra = {}
  if self.retry_after then extra[#extra + 1] = "retry after " .. tostring(self.retry_after) .. "s" end
  if self.request_id then extra[#extra + 1] = "request id " .. tostring(self.request_id) end
  if type(self.attempts) == "number" and self.attempts > 1 then
    extra[#extra + 1] = tostring(self.attempts) .. " attempts"
  end
  if #extra > 0 then parts[#parts + 1] = " [" .. concat(extra, ", ") .. "]" end
  return concat(parts)
end

M.Error = Error

return M
