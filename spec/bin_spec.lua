-- bin/ scripts find their tree from any working directory and any form of
-- invocation, in a clean environment (no LUA_PATH, no LUA_CPATH, no HOME):
-- bin/x, ./bin/x, an absolute path, ../bin/x from a subdirectory, and a
-- symlink elsewhere. An unbuilt checkout says "run make first".

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function capture(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local _, _, code = p:close()
  return code, out
end

local root = select(2, capture("pwd")):gsub("\n$", "")
local CLEAN = "env -i PATH=/usr/bin:/bin "

-- Start `form --port 0` from dir in a clean environment, read the URL it
-- prints, stop it.
local function mock_url(dir, form)
  local p = assert(io.popen("cd " .. q(dir) .. " && exec sh -c 'echo $$; exec "
    .. CLEAN:gsub("'", "") .. form .. " --port 0 --quiet --seed 1' 2>&1"))
  local pid = p:read("l")
  local line = p:read("l")
  os.execute("kill " .. pid .. " 2>/dev/null")
  p:close()
  return line
end

describe("bin/ scripts", function()
  local tmp = os.tmpname()
  os.remove(tmp)
  assert(os.execute("mkdir -p " .. q(tmp .. "/link")))
  teardown(function() os.execute("rm -rf " .. q(tmp)) end)

  assert(os.execute("ln -s " .. q(root .. "/bin/instantly") .. " " .. q(tmp .. "/link/instantly")))
  assert(os.execute("ln -s " .. q(root .. "/bin/instantly-mock") .. " " .. q(tmp .. "/link/im")))

  local forms = {
    { "bin/x from the root", root, "bin/%s" },
    { "./bin/x from the root", root, "./bin/%s" },
    { "an absolute path from /", "/", root .. "/bin/%s" },
    { "../bin/x from spec/", root .. "/spec", "../bin/%s" },
    { "lua5.4 bin/x", root, "lua5.4 bin/%s" },
  }

  for _, f in ipairs(forms) do
    it("instantly-mock as " .. f[1] .. " prints its URL", function()
      local line = mock_url(f[2], f[3]:format("instantly-mock"))
      assert.matches("^listening on http://127%.0%.0%.1:%d+$", line)
    end)
    it("instantly as " .. f[1] .. " runs", function()
      local code, out = capture("cd " .. q(f[2]) .. " && " .. CLEAN .. f[3]:format("instantly") .. " --help")
      assert.are.equal(0, code, out)
      assert.truthy(out:find("Usage: instantly", 1, true), out)
    end)
  end

  it("instantly-mock through a symlink in another directory prints its URL", function()
    assert.matches("^listening on http://127%.0%.0%.1:%d+$", mock_url(tmp, "./link/im"))
  end)

  it("instantly through a symlink runs against its mock", function()
    local code, out = capture("cd " .. q(tmp) .. " && " .. CLEAN .. "link/instantly --mock workspaces get --json")
    assert.are.equal(0, code, out)
    assert.truthy(out:find('"id"', 1, true), out)
  end)

  it("an unbuilt checkout says run make first, without a stack trace", function()
    local co = tmp .. "/unbuilt"
    assert(os.execute("mkdir -p " .. q(co) .. " && cp -r " .. q(root .. "/bin") .. " "
      .. q(root .. "/lua") .. " " .. q(co)))
    for _, name in ipairs({ "instantly", "instantly-mock" }) do
      local code, out = capture("cd " .. q(co) .. " && " .. CLEAN .. "bin/" .. name .. " --help")
      assert.are.equal(1, code, out)
      assert.truthy(out:find(name .. ": the C core is not built", 1, true), out)
      assert.truthy(out:find("run make first", 1, true), out)
      assert.falsy(out:find("traceback", 1, true), out)
    end
  end)

  it("every bin/ script opens with the same tree rule", function()
    local blocks = {}
    for _, name in ipairs({ "instantly", "instantly-mock" }) do
      local f = assert(io.open("bin/" .. name))
      local src = f:read("a")
      f:close()
      blocks[#blocks + 1] = assert(src:match("%-%- >>> tree rule.-%-%- <<< tree rule"), name)
    end
    assert.are.equal(blocks[1], blocks[2])
  end)
end)
