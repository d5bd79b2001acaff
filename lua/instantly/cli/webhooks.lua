--- `instantly webhooks listen`: receive deliveries, print each as a JSON line.
--
--    instantly webhooks listen [--port 8090] [--host 127.0.0.1] [--path /]
--                              [--secret S | --secret-file F] [--secret-header NAME]
--                              [--forward URL] [--max-body BYTES] [--count N]
--
-- Each accepted delivery is printed to stdout as one line of JSON (the
-- payload as received); diagnostics go to stderr and never contain the
-- secret. With --forward, each delivery is POSTed on to URL and the sender
-- gets 2xx only when that succeeded (else 500, so it retries). The secret
-- may also come from INSTANTLY_WEBHOOK_SECRET (kept off the command line).
-- @module instantly.cli.webhooks

local core = require "instantly.core"
local webhook = require "instantly.webhook"

local M = {}

M.USAGE = [[
usage: instantly webhooks listen [--port 8090] [--host 127.0.0.1] [--path /]
                                 [--secret S | --secret-file FILE] [--secret-header NAME]
                                 [--forward URL] [--max-body BYTES] [--count N]

Receive Instantly webhook deliveries and print each as one JSON line.
Instantly does not sign deliveries: set a secret in the webhook's headers
(client.webhooks:create{headers = {["]] .. webhook.SECRET_HEADER .. [["] = S}}) and pass it here;
deliveries without it get 401. INSTANTLY_WEBHOOK_SECRET is read when no
--secret is given. --forward POSTs each delivery on to URL (the sender gets
2xx only if that succeeded); --count stops after N events.
]]

local VALUE = { ["--port"] = true, ["--host"] = true, ["--path"] = true, ["--secret"] = true,
  ["--secret-file"] = true, ["--secret-header"] = true, ["--forward"] = true, ["--max-body"] = true,
  ["--count"] = true }

-- Flags after the `listen` word; returns a table or nil, message.
function M.parse(argv, from)
  local o = {}
  local i = from
  while i <= #argv do
    local a = argv[i]
    local name, inline = a:match("^(%-%-[%w-]+)=(.*)$")
    name = name or a
    if name == "-h" or name == "--help" then
      o.help = true
    elseif VALUE[name] then
      local v = inline
      if v == nil then
        i = i + 1
        v = argv[i]
      end
      if v == nil then return nil, name .. " needs a value" end
      o[name:sub(3):gsub("-", "_")] = v
    else
      return nil, "unknown option " .. a .. " for webhooks listen"
    end
    i = i + 1
  end
  for _, k in ipairs{ "port", "max_body", "count" } do
    if o[k] then
      local n = math.tointeger(tonumber(o[k]))
      if not n or n < 0 or (k == "port" and n > 65535) then
        return nil, "--" .. k:gsub("_", "-") .. " must be a number"
      end
      o[k] = n
    end
  end
  return o
end

local function forwarder(url)
  local session = core.session{}
  return function(body)
    local status, text = session:request{ url = url, method = "POST", body = body, timeout = 10,
      headers = { ["content-type"] = "application/json" } }
    if not status then error("forward to " .. url .. " failed: " .. tostring(text), 0) end
    if status < 200 or status > 299 then error("forward to " .. url .. " answered " .. status, 0) end
  end
end

--- Run the command. `argv` is the whole command line, `from` the index
-- after `listen`. Returns the exit code (0 after --count events).
function M.listen(argv, from, io_, getenv)
  local o, err = M.parse(argv, from)
  if not o then
    io_.stderr:write("instantly: ", err, "\n", M.USAGE)
    return 2
  end
  if o.help then
    io_.stdout:write(M.USAGE)
    return 0
  end
  local secret = o.secret
  if o.secret_file then
    local f, ferr = io.open(o.secret_file, "rb")
    if not f then
      io_.stderr:write("instantly: --secret-file: ", tostring(ferr), "\n")
      return 2
    end
    secret = (f:read("a") or ""):gsub("%s+$", "")
    f:close()
  end
  secret = secret or getenv("INSTANTLY_WEBHOOK_SECRET")
  if secret == "" then secret = nil end
  local forward = o.forward and forwarder(o.forward)
  local seen = 0
  local r, berr = webhook.receiver{
    host = o.host, port = o.port or 8090, path = o.path, secret = secret, secret_header = o.secret_header,
    max_body = o.max_body,
    log = function(line) io_.stderr:write("instantly webhooks: ", line, "\n") end,
    on_event = function(ev, rcv)
      if forward then forward(assert(core.json_encode(ev.payload))) end
      io_.stdout:write(assert(core.json_encode(ev.payload, { sort_keys = true })), "\n")
      if io_.stdout.flush then io_.stdout:flush() end
      seen = seen + 1
      if o.count and seen >= o.count then rcv:stop() end
    end,
  }
  if not r then
    io_.stderr:write("instantly: ", berr, "\n")
    return 1
  end
  io_.stderr:write("instantly webhooks: listening on ", r.url, secret and " (secret required)" or
    " (no secret: any POST is accepted)", "\n")
  if io_.stderr.flush then io_.stderr:flush() end
  if o.count == 0 then
    r:close()
    return 0
  end
  r:run()
  return 0
end

return M
