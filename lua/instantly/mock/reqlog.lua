--- The mock's request log: what each API request looked like, for tests
-- to read back through GET /__mock/requests.
--
-- Bounded twice: at most `limit` entries and at most `max_bytes` bytes of
-- stored paths, headers and bodies; the oldest entries go first. A request
-- that did not authenticate is logged without its body (its size is kept
-- in `body_bytes`), so an anonymous client cannot fill the log, or make a
-- reader decode what it sent. Recording keeps references to what the
-- parser built; decoding, redaction and query parsing happen on read.
-- @module instantly.mock.reqlog

local json = require "instantly.mock.json"
local util = require "instantly.mock.util"

local gettime = require("socket").gettime

local M = {}

M.LIMIT = 50000
M.MAX_BYTES = 64 * 1024 * 1024

local Log = {}
Log.__index = Log

function M.new(limit, max_bytes)
  local self = setmetatable({ limit = limit or M.LIMIT, max_bytes = max_bytes or M.MAX_BYTES }, Log)
  self:clear()
  return self
end

function Log:clear()
  local n = (self.next or 1) - (self.first or 1)
  self.entries, self.first, self.next, self.bytes = {}, 1, 1, 0
  return n
end

function Log:_drop_oldest()
  local e = self.entries[self.first]
  self.entries[self.first] = nil
  self.first = self.first + 1
  self.bytes = self.bytes - e.size
end

--- Record a request; `authed` false leaves its body out.
function Log:record(req, authed)
  local body = req.body
  if not authed and body ~= "" then body = nil end
  local size = #req.path + #(req.raw_query or "") + (req.header_bytes or 0) + (body and #body or 0)
  local n = self.next
  self.entries[n] = {
    seq = n, time = gettime(), method = req.method, path = req.path, raw_query = req.raw_query,
    headers = req.headers, body = body, body_bytes = #req.body, size = size,
  }
  self.next = n + 1
  self.bytes = self.bytes + size
  while self.next - self.first > self.limit or (self.bytes > self.max_bytes and self.first < n) do
    self:_drop_oldest()
  end
end

local function redact(headers)
  local h = {}
  for k, v in pairs(headers) do
    if k == "authorization" then
      local scheme = v:match("^(%S+)%s") or ""
      h[k] = (scheme ~= "" and (scheme .. " ") or "") .. "[REDACTED]"
    elseif k == "x-api-key" then
      h[k] = "[REDACTED]"
    else
      h[k] = v
    end
  end
  return h
end

local function public_entry(e)
  local entry = {
    seq = e.seq, time = e.time, method = e.method, path = e.path,
    decoded_path = util.unescape(e.path), raw_query = e.raw_query,
    query = util.parse_query(e.raw_query), headers = redact(e.headers),
    body_bytes = e.body_bytes,
  }
  local body = e.body
  if body == nil and e.body_bytes > 0 then
    entry.body_omitted = "unauthenticated"
  elseif body and body ~= "" then
    local v = json.decode(body)
    if v == nil then entry.body = body else entry.body = v end
  end
  return entry
end

--- Entries after log position `since`, as the control plane shows them.
function Log:since(since)
  local out = json.array({})
  for i = math.max(self.first, since + 1), self.next - 1 do
    out[#out + 1] = public_entry(self.entries[i])
  end
  return out
end

return M
