-- Error kinds, faults and the retry rule against the mock server (through
-- the real core transport).
local H = require "support.client_helper"
local instantly = require "instantly"

local srv, client, campaign_id

local function count(method, path) return H.count(srv, method, path) end

H.mock_fixture({ rate_limits = false }, function(s)
  srv = s
  client = H.mock_client(srv)
  local page = assert(client.campaigns:list { limit = 1 })
  campaign_id = assert(page.items[1].id)
end)

describe("against the mock", function()
  it("a GET is retried through 503s and succeeds", function()
    srv:fault { method = "GET", path = "/campaigns/{id}", status = 503, count = 2 }
    local c = assert(client.campaigns:get(campaign_id))
    assert.equal(campaign_id, c.id)
    assert.equal(3, count("GET", "/api/v2/campaigns/" .. campaign_id))
  end)

  it("a POST that reached the server is not repeated after a 503", function()
    srv:fault { method = "POST", path = "/campaigns/{id}/pause", status = 503, count = 1 }
    local v, err = client.campaigns:pause(campaign_id)
    assert.is_nil(v)
    assert.equal("http", err.kind)
    assert.equal(503, err.status)
    assert.equal(1, err.attempts)
    assert.equal(1, count("POST", "/api/v2/campaigns/" .. campaign_id .. "/pause"))
  end)

  -- On a reused keep-alive connection libcurl would by itself send a request
  -- again when the connection dies before any answer; the core refuses to
  -- rewind POST/PATCH bodies, so the write reaches the server once.
  it("a POST whose reused connection closed before the answer is not repeated", function()
    assert(client.campaigns:get(campaign_id)) -- the connection is now warm
    srv:fault { method = "POST", path = "/campaigns/{id}/pause", close = "before_headers", count = 1 }
    local v, err = client.campaigns:pause(campaign_id)
    assert.is_nil(v)
    assert.equal("transport", err.kind)
    assert.equal(1, err.attempts)
    assert.equal(1, count("POST", "/api/v2/campaigns/" .. campaign_id .. "/pause"))
  end)

  it("a PATCH whose reused connection closed before the answer is not repeated", function()
    assert(client.campaigns:get(campaign_id))
    srv:fault { method = "PATCH", path = "/campaigns/{id}", close = "before_headers", count = 1 }
    local v, err = client.campaigns:update(campaign_id, { name = "renamed once" })
    assert.is_nil(v)
    assert.equal("transport", err.kind)
    assert.equal(1, count("PATCH", "/api/v2/campaigns/" .. campaign_id))
  end)

  it("a POST on a reused connection still works normally", function()
    assert(client.campaigns:get(campaign_id))
    assert(client.campaigns:pause(campaign_id))
    assert(client.campaigns:pause(campaign_id))
    assert.equal(2, count("POST", "/api/v2/campaigns/" .. campaign_id .. "/pause"))
  end)

  it("a GET whose connection closed is retried", function()
    srv:fault { method = "GET", path = "/campaigns/{id}", close = "before_headers", count = 1 }
    assert(client.campaigns:get(campaign_id))
    assert.equal(2, count("GET", "/api/v2/campaigns/" .. campaign_id))
  end)

  it("a POST rejected with 429 is repeated after Retry-After", function()
    local waits = {}
    local c = H.mock_client(srv, { on_wait = function(w) waits[#waits + 1] = w end })
    srv:fault { method = "POST", path = "/campaigns/{id}/activate", status = 429, retry_after = 1, count = 1 }
    assert(c.campaigns:activate(campaign_id))
    assert.equal(2, count("POST", "/api/v2/campaigns/" .. campaign_id .. "/activate"))
    assert.equal(1, #waits)
    assert.equal("retry", waits[1].reason)
    assert.equal(1, waits[1].seconds)
  end)

  it("429 beyond the retries is kind rate_limited with retry_after", function()
    srv:fault { method = "GET", path = "/workspaces/current", status = 429, retry_after = 1, count = 1 }
    local v, err = client.workspaces:get(nil, { max_retries = 0 })
    assert.is_nil(v)
    assert.equal("rate_limited", err.kind)
    assert.equal(429, err.status)
    assert.equal(1, err.retry_after)
  end)

  it("a slow answer is a timeout", function()
    srv:fault { method = "GET", path = "/workspaces/current", delay = 1.5, count = 1 }
    local v, err = client.workspaces:get(nil, { timeout = 0.3, max_retries = 0 })
    assert.is_nil(v)
    assert.equal("timeout", err.kind)
  end)

  it("invalid JSON is kind decode", function()
    srv:fault { method = "GET", path = "/campaigns/{id}", invalid_json = true, count = 1 }
    local v, err = client.campaigns:get(campaign_id)
    assert.is_nil(v)
    assert.equal("decode", err.kind)
    assert.equal(200, err.status)
  end)

  it("a truncated body is a failure, never a partial value", function()
    srv:fault { method = "GET", path = "/workspaces/current", truncate = true, count = 3 }
    local v, err = client.workspaces:get()
    assert.is_nil(v)
    assert.is_truthy(err.kind == "transport" or err.kind == "decode", tostring(err))
  end)

  it("an oversized answer is kind transport (too_large), not retried", function()
    local c = H.mock_client(srv, { max_response_bytes = 4096 })
    srv:fault { method = "GET", path = "/workspaces/current", oversize = 100000, count = 1 }
    local v, err = c.workspaces:get()
    assert.is_nil(v)
    assert.equal("transport", err.kind)
    assert.equal("too_large", err.transport_kind)
    assert.equal(1, count("GET", "/api/v2/workspaces/current"))
  end)

  it("reads the key and base URL from the environment", function()
    local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
    -- the child finds the modules and the core this process uses
    local cmd = "INSTANTLY_API_KEY=" .. q(srv.api_key) .. " INSTANTLY_BASE_URL=" .. q(srv.url) ..
      " LUA_PATH=" .. q(package.path) .. " LUA_CPATH=" .. q(package.cpath) ..
      " lua5.4 -e " .. q("local c = require('instantly').new(); local w = assert(c.workspaces:get());" ..
      " io.write(tostring(c), ' ', tostring(w.id ~= nil))")
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    p:close()
    assert.equal("instantly.Client(" .. srv.url .. ", key " .. require("instantly.request.redact").key(srv.api_key) ..
      ") true", out)
  end)

  it("the session sends the user agent with the caller's suffix", function()
    local child = srv:state().sub_workspaces[1].id -- the mock refuses ids that are not sub-workspaces
    local c = H.mock_client(srv, { user_agent = "myapp/2.1", workspace = child })
    assert(c.workspaces:get())
    local r = srv:requests()[1]
    assert.matches("^instantly%-lua/[%d%.]+ .* myapp/2%.1$", r.headers["user-agent"])
    assert.equal(child, r.headers["x-as-workspace"])
    -- no Accept line of the SDK's own (the API answers JSON; libcurl's
    -- "*/*" costs less than a caller's line), unless the caller adds one
    assert.equal("*/*", r.headers.accept)
    local c2 = H.mock_client(srv, { headers = { Accept = "application/json" } })
    srv:clear_requests()
    assert(c2.workspaces:get())
    assert.equal("application/json", srv:requests()[1].headers.accept)
    assert.equal("instantly-lua/" .. instantly.VERSION .. " libcurl/" .. require("instantly.core").curl_version,
      srv:requests()[1].headers["user-agent"])
    assert(c2.workspaces:get({ headers = { accept = "application/vnd.x+json" } }))
    assert.equal("application/vnd.x+json", srv:requests()[2].headers.accept)
  end)

  it("a refused connection is kind transport (connect), retried even for POST", function()
    local socket = require "socket"
    local s = assert(socket.bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    s:close()
    local c = instantly.new { api_key = H.KEY, base_url = "http://127.0.0.1:" .. port, max_retries = 2,
                              retry = { base = 0.001, cap = 0.002 } }
    local v, err = c.campaigns:activate(campaign_id)
    assert.is_nil(v)
    assert.equal("transport", err.kind)
    assert.equal("connect", err.transport_kind)
    assert.equal(3, err.attempts)
  end)

  it("a wrong key is an HTTP 401 error that does not show the key", function()
    local c = instantly.new { api_key = "wrong-key-0123456789abcdef", base_url = srv.url }
    local v, err = c.workspaces:get()
    assert.is_nil(v)
    assert.equal("http", err.kind)
    assert.equal(401, err.status)
    assert.is_nil(tostring(err):find("wrong-key-0123456789abcdef", 1, true))
  end)

  it("an error inside a 200 body is kind api", function()
    srv:fault { method = "POST", path = "/emails/test", status = 200,
                body = { error = "Email sending failed", message = "The account is paused" }, count = 1 }
    local v, err = client.emails:send_test { eaccount = "a@acme.io", to_address_email_list = "b@acme.io",
                                             subject = "hi", body = { html = "<p>hello</p>" } }
    assert.is_nil(v)
    assert.equal("api", err.kind)
    assert.equal("Email sending failed", err.code)
    assert.equal("The account is paused", err.message)
  end)

  it("204 gives true", function()
    local v, status = client.campaigns:share(campaign_id)
    assert.is_true(v ~= nil and v ~= false, tostring(status))
    if status == 204 then assert.is_true(v) end
    assert.equal(204, status)
  end)

  it("202 gives the accepted answer", function()
    local v, status = client.leads:update_interest_status { lead_email = "nobody@example.com", interest_value = 1 }
    assert.is_truthy(v, tostring(status))
    assert.equal(202, status)
  end)
end)
