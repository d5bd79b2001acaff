--- The one error type of the SDK.
--
-- Every expected failure (network, timeout, HTTP 4xx/5xx, rate limiting,
-- undecodable bodies, an error reported inside a 200 body) comes back as
-- `nil, err` where `err` is an `instantly.Error`: a plain table with a
-- readable `__tostring`, so `assert(client.campaigns:get(id))` prints
-- something a person can act on. Programmer misuse raises instead.
--
-- Fields: `kind` (`"http"`, `"transport"`, `"timeout"`, `"rate_limited"`,
-- `"decode"`, `"api"`), `status` (HTTP status or nil), `code` (the
-- vendor's `error` string), `message`, `method`, `path`, `body` (decoded
-- response body, or the raw text when it was not JSON), `retry_after`
-- (seconds), `request_id`, `attempts`, and for transport failures
-- `transport_kind` (`connect`, `dns`, `timeout`, `tls`, ...) and `curl_code`.
--
-- The workflow helpers add kinds of their own, with their own fields:
-- `"task"` (a task given to `client:gather` raised), `"failed"` (a waited-on
-- job, verification or session ended badly), `"preflight"` (launch refused),
-- `"checkpoint"` (an import checkpoint file could not be read or written)
-- and `"export"` (a lead export could not write its file), and
-- `instantly.webhook` uses `"webhook"` (a delivery it refuses: `reason`,
-- `status`). A wait that runs
-- out of time is `"timeout"`. CSV errors are their own type (`kind = "csv"`).
-- @module instantly.error

local setmetatable, getmetatable, tostring, type = setmetatable, getmetatable, tostring, type
local concat = table.concat

local M = {}

local Error = {}
Error.__index = Error
Error.__name = "instantly.Error"

--- Every error kind, for `err.kind` comparisons.
M.KINDS = {
  http = true, transport = true, timeout = true, rate_limited = true, decode = true, api = true,
  task = true, failed = true, preflight = true, checkpoint = true, export = true,
  webhook = true,
}

--- Build an error from its fields.
-- @tparam table fields at least `kind` and `message`
-- @treturn instantly.Error
function M.new(fields)
  return setmetatable(fields, Error)
end

--- Is `v` an `instantly.Error`?
-- @param v any value
-- @treturn boolean
function M.is(v)
  return type(v) == "table" and getmetatable(v) == Error
end

--- A one-line description: what failed, where, and what to do with it.
-- @treturn string
function Error:__tostring()
  local parts = { "instantly: " }
  if self.method then
    parts[#parts + 1] = self.method .. " " .. tostring(self.path) .. ": "
  end
  local kind = self.kind
  if kind == "http" or kind == "rate_limited" or kind == "api" then
    parts[#parts + 1] = (kind == "api" and "API error in HTTP " or "HTTP ") .. tostring(self.status)
    if self.code and self.code ~= "" then parts[#parts + 1] = " " .. tostring(self.code) end
  else
    parts[#parts + 1] = kind
    if self.transport_kind and self.transport_kind ~= kind then
      parts[#parts + 1] = " (" .. self.transport_kind .. ")"
    end
  end
  if self.message and self.message ~= "" then parts[#parts + 1] = ": " .. tostring(self.message) end
  local extra = {}
  if self.retry_after then extra[#extra + 1] = "retry after " .. tostring(self.retry_after) .. "s" end
  if self.request_id then extra[#extra + 1] = "request id " .. tostring(self.request_id) end
  if self.attempts and self.attempts > 1 then extra[#extra + 1] = tostring(self.attempts) .. " attempts" end
  if #extra > 0 then parts[#parts + 1] = " [" .. concat(extra, ", ") .. "]" end
  return concat(parts)
end

M.Error = Error

return M
