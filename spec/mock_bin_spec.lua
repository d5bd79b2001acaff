-- bin/instantly-mock as a program: options, errors, determinism of --seed.

local mock = require "instantly.mock"
local client = require "instantly.mock.client"

local BIN = "./bin/instantly-mock"

local function run(args)
  local cmd = string.format("LUA_PATH='%s' LUA_CPATH='%s' lua5.4 %s %s 2>&1",
    package.path, package.cpath, BIN, args)
  local p = io.popen(cmd, "r")
  local out = p:read("a")
  local _, _, code = p:close()
  return code, out
end

describe("bin/instantly-mock", function()
  it("prints its usage with --help", function()
    local code, out = run("--help")
    assert.are.equal(0, code)
    assert.truthy(out:find("usage: instantly-mock", 1, true))
    assert.truthy(out:find(mock.DEFAULT_API_KEY, 1, true))
  end)

  local bad = {
    { "--bogus", "unknown option --bogus" },
    { "--port", "--port needs a value" },
    { "--port 70000", "--port must be 0-65535" },
    { "--seed abc", "--seed must be an integer" },
    { "--rate-limits maybe", "--rate-limits must be on or off" },
    { "--rate-limits=maybe", "--rate-limits must be on or off" },
    { "--max-body=0", "--max-body must be a positive integer" },
  }
  for _, case in ipairs(bad) do
    it("exits 2 on " .. case[1], function()
      local code, out = run(case[1])
      assert.are.equal(2, code)
      assert.truthy(out:find(case[2], 1, true), out)
    end)
  end

  it("exits 1 when the port is taken", function()
    local srv <close> = assert(mock.start{ rate_limits = false })
    local code, out = run("--port " .. srv.port)
    assert.are.equal(1, code)
    assert.truthy(out:find("cannot listen", 1, true), out)
  end)

  it("builds the same workspace for the same seed, a different one for another", function()
    local function snapshot(seed)
      local srv <close> = assert(mock.start{ seed = seed, rate_limits = false })
      local c = client.new(srv.url, { api_key = srv.api_key })
      local _, ws = c:request("GET", "/workspaces/current")
      local _, leads = c:request("POST", "/leads/list", { body = { limit = 5 } })
      local _, camps = c:request("GET", "/campaigns")
      c:close()
      local ids = { ws.id }
      for _, l in ipairs(leads.items) do ids[#ids + 1] = l.id .. " " .. l.email end
      for _, k in ipairs(camps.items) do ids[#ids + 1] = k.id .. " " .. k.status end
      return ids
    end
    local a, b, c = snapshot(11), snapshot(11), snapshot(12)
    assert.are.same(a, b)
    assert.are_not.same(a, c)
  end)
end)
