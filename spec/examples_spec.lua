-- `make demo` (tools/demo.sh): runs the launch example against a mock it
-- starts on loopback, and leaves nothing running afterwards. (Every
-- example runs in `make test` through tools/run-examples.sh.)
local socket = require("socket")

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

describe("make demo", function()
  it("launches a campaign against a mock and stops the mock", function()
    local cmd = "env -u INSTANTLY_API_KEY -u INSTANTLY_BASE_URL LUA_PATH=" .. q(package.path)
      .. " LUA_CPATH=" .. q(package.cpath) .. " sh tools/demo.sh </dev/null 2>&1; echo \"exit=$?\""
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    p:close()
    assert.truthy(out:match("exit=0\n$"), out)
    local url = out:match("against the mock at (http://127%.0%.0%.1:%d+)")
    assert.truthy(url, out)
    for _, want in ipairs({ "Created campaign", "import: 243 rows read", "preflight of campaign",
                            "Activated", "Summary", "(active)", "3 steps" }) do
      assert.truthy(out:find(want, 1, true), want .. "\n" .. out)
    end
    -- The mock is gone: its port refuses connections.
    local port = tonumber(url:match(":(%d+)$"))
    local c = socket.tcp()
    c:settimeout(2)
    local ok = c:connect("127.0.0.1", port)
    c:close()
    assert.is_nil(ok, "the mock still listens on " .. url)
  end)
end)
