-- Doc-tests: every ```lua and ```sh block of README.md and docs/*.md runs
-- from the repository root against a fresh mock (one per page, reset to
-- its seed before each block), so the docs cannot drift from the code.
-- `no-run` in the info string skips a block that cannot run offline.

local doctest = require "support.doctest"
local mock = require "instantly.mock"

local function slurp(path)
  local f = assert(io.open(path))
  local s = f:read("a")
  f:close()
  return s
end

local root = assert(io.popen("pwd")):read("l")
local pages = { "README.md" }
do
  local p = assert(io.popen("ls docs/*.md 2>/dev/null"))
  for path in p:lines() do pages[#pages + 1] = path end
  p:close()
end

-- The core this run uses (build/, or build-asan/ under `make asan`).
local core_dir = assert(package.searchpath("instantly.core", package.cpath)):match("^(.*)/instantly/[^/]*$")
if core_dir:sub(1, 1) ~= "/" then core_dir = root .. "/" .. core_dir:gsub("^%./", "") end

local function env_for(srv)
  local env = {
    PATH = root .. "/bin:" .. (os.getenv("PATH") or "/usr/bin:/bin"),
    HOME = os.getenv("HOME") or "/tmp",
    LUA_PATH = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;;",
    LUA_CPATH = core_dir .. "/?.so;;",
    INSTANTLY_BASE_URL = srv.url,
    INSTANTLY_API_KEY = srv.api_key,
  }
  -- a sanitizer run's runtime and settings reach the blocks too
  for _, k in ipairs({ "LD_PRELOAD", "ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS" }) do
    env[k] = os.getenv(k)
  end
  return env
end

describe("doc-test harness", function()
  it("finds lua and sh blocks, skips no-run, leaves text alone", function()
    local text = "# t\n```lua\nprint(1)\n```\n\n```sh no-run\nexit 1\n```\n"
      .. "```text\nout\n```\n````sh\necho '```'\n````\n"
    local bs = doctest.blocks(text)
    assert.are.equal(4, #bs)
    assert.are.same({ "lua", "sh", "text", "sh" }, { bs[1].lang, bs[2].lang, bs[3].lang, bs[4].lang })
    assert.are.same({ true, false, false, true },
      { doctest.runnable(bs[1]), doctest.runnable(bs[2]), doctest.runnable(bs[3]), doctest.runnable(bs[4]) })
    assert.are.equal(2, bs[1].line)
    assert.are.equal("echo '```'\n", bs[4].code)
  end)

  it("refuses an unclosed fence", function()
    assert.has.error(function() doctest.blocks("```lua\nprint(1)\n", "x.md") end, "x.md:1: unclosed code fence")
  end)

  it("reports a failing block with its output, from both languages", function()
    local ok, out = doctest.run({ lang = "lua", code = "error('boom')\n" }, root, { PATH = "/usr/bin:/bin" })
    assert.is_false(ok)
    assert.truthy(out:find("boom", 1, true))
    ok, out = doctest.run({ lang = "sh", code = "false\necho after\n" }, root, { PATH = "/usr/bin:/bin" })
    assert.is_false(ok, "sh blocks stop at the first failing command")
    assert.falsy(out:find("after", 1, true))
  end)

  it("stops and fails a block that leaves a process running", function()
    local ok, out = doctest.run({ lang = "sh", code = "sleep 30 &\necho started\n" }, root, { PATH = "/usr/bin:/bin" })
    assert.is_false(ok)
    assert.truthy(out:find("left processes running", 1, true), out)
  end)
end)

for _, page in ipairs(pages) do
  describe("doc-test " .. page, function()
    local blocks = doctest.blocks(slurp(page), page)
    local srv
    setup(function() srv = assert(mock.start{ seed = 1 }) end)
    teardown(function() if srv then srv:stop() end end)
    for _, b in ipairs(blocks) do
      if doctest.runnable(b) then
        it(("%s:%d (%s) runs"):format(page, b.line, b.lang), function()
          srv:reset()
          local ok, out = doctest.run(b, root, env_for(srv))
          assert(ok, ("%s:%d: the %s block failed:\n%s"):format(page, b.line, b.lang, out))
        end)
      end
    end
  end)
end
