--- A minimal HTTP/1.1 keep-alive client on LuaSocket, for the mock's own
-- specs and benchmark (and any test that wants to poke the mock without
-- going through the SDK's transport). Blocking, one request at a time per
-- connection; reconnects once when a kept-alive connection was closed.
-- @module instantly.mock.client

local socket = require "socket"
local json = require "instantly.mock.json"

local M = {}

local Client = {}
Client.__index = Client

local function escape(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end
M.escape = escape

--- Encode a query table (array values repeat the key), keys sorted.
function M.query_string(q)
  if not q then return "" end
  local keys = {}
  for k in pairs(q) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = q[k]
    if type(v) == "table" then
      for _, x in ipairs(v) do parts[#parts + 1] = escape(k) .. "=" .. escape(x) end
    else
      parts[#parts + 1] = escape(k) .. "=" .. escape(v)
    end
  end
  return #parts > 0 and ("?" .. table.concat(parts, "&")) or ""
end

--- A client for `url` ("http://127.0.0.1:PORT"); opts: api_key, prefix
-- (default "/api/v2"), timeout (seconds, default 10).
function M.new(url, opts)
  opts = opts or {}
  local host, port = url:match("^http://([^/:]+):(%d+)")
  if not host then error("client: url must look like http://host:port", 2) end
  return setmetatable({ host = host, port = tonumber(port), api_key = opts.api_key,
    prefix = opts.prefix or "/api/v2", timeout = opts.timeout or 10, connects = 0 }, Client)
end

function Client:connect()
  if self.sock then return true end
  local s = socket.tcp()
  s:settimeout(self.timeout)
  local ok, err = s:connect(self.host, self.port)
  if not ok then s:close() return nil, err end
  s:setoption("tcp-nodelay", true)
  self.sock = s
  self.connects = self.connects + 1
  return true
end

function Client:close()
  if self.sock then self.sock:close() self.sock = nil end
end

--- Read one response from the socket: status, headers, body or nil, err.
function M.read_response(s)
  local line, err = s:receive("*l")
  if not line then return nil, err end
  local status = tonumber(line:match("^HTTP/1%.%d (%d%d%d)"))
  if not status then return nil, "bad status line: " .. line end
  local headers = {}
  while true do
    local l
    l, err = s:receive("*l")
    if not l then return nil, err end
    if l == "" then break end
    local k, v = l:match("^([^:]+):%s*(.-)%s*$")
    if k then headers[k:lower()] = v end
  end
  if status == 100 then return M.read_response(s) end
  local body = ""
  local len = tonumber(headers["content-length"])
  if len and len > 0 then
    local part
    body, err, part = s:receive(len)
    if not body then return nil, err, status, headers, part end
  elseif not len and status ~= 204 and (headers["connection"] or ""):lower() == "close" then
    body = s:receive("*a") or ""
  end
  return status, headers, body
end

--- Build the raw bytes of a request.
function Client:build(method, path, opts)
  opts = opts or {}
  local full = (path:sub(1, 2) == "/_" and "" or self.prefix) .. path .. M.query_string(opts.query)
  local body = opts.raw_body
  if body == nil and opts.body ~= nil then body = json.encode(opts.body) end
  local h = { method .. " " .. full .. " HTTP/1.1", "Host: " .. self.host .. ":" .. self.port }
  if self.api_key and not (opts.headers and opts.headers.authorization == false) then
    h[#h + 1] = "Authorization: Bearer " .. self.api_key
  end
  for k, v in pairs(opts.headers or {}) do
    if v ~= false then h[#h + 1] = k .. ": " .. v end
  end
  if body then
    h[#h + 1] = "Content-Type: application/json"
    h[#h + 1] = "Content-Length: " .. #body
  end
  return table.concat(h, "\r\n") .. "\r\n\r\n" .. (body or "")
end

--- One request: status, decoded body (or raw text), headers, raw body.
-- On a transport failure: nil, err.
function Client:request(method, path, opts)
  local data = self:build(method, path, opts)
  for attempt = 1, 2 do
    local ok, err = self:connect()
    if not ok then return nil, err end
    local sent
    sent, err = self.sock:send(data)
    local status, headers, body
    if sent then status, headers, body = M.read_response(self.sock) end
    if status then
      if (headers["connection"] or ""):lower() == "close" then self:close() end
      local decoded = body
      if body ~= "" and (headers["content-type"] or ""):find("json", 1, true) then
        local v = json.decode(body)
        if v ~= nil then decoded = v end
      end
      return status, decoded, headers, body
    end
    self:close()
    -- a kept-alive connection the server closed: retry once on a new one
    local e = headers or err
    if attempt == 2 or e ~= "closed" then return nil, e end
  end
end

return M
