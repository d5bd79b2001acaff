-- README.md is a front page: at most 12 KB, its apt-get line is exactly
-- what `make demo` and `make test` install, and the docs index lists every
-- page present in docs/.

local function slurp(path)
  local f = assert(io.open(path))
  local s = f:read("a")
  f:close()
  return s
end

local function lines(cmd)
  local p = assert(io.popen(cmd))
  local t = {}
  for l in p:lines() do t[#t + 1] = l end
  assert(p:close(), cmd)
  return t
end

local function words(s)
  local t = {}
  for w in s:gmatch("%S+") do t[#t + 1] = w end
  table.sort(t)
  return t
end

describe("README.md", function()
  local readme = slurp("README.md")

  it("is at most 12 KB", function()
    assert(#readme <= 12 * 1024, ("README.md is %d bytes; the limit is %d"):format(#readme, 12 * 1024))
  end)

  it("names the prerequisites before the two commands", function()
    local two = readme:find("## Two commands", 1, true)
    assert.truthy(two)
    local section = readme:sub(two, readme:find("\n## ", two + 1, true))
    for _, need in ipairs({ "`git`", "`make`", "root" }) do
      assert.truthy(section:find(need, 1, true), need)
    end
  end)

  it("gives one apt-get line with exactly the packages of make demo and make test", function()
    local line = assert(readme:match("sudo apt%-get install %-%-no%-install%-recommends ([^\n]+)"))
    local want = table.concat(lines("sh tools/deps.sh --list demo test"), " ")
    assert.are.same(words(want), words(line))
  end)

  it("shows the quickstart as commands for a file that exists", function()
    assert.truthy(readme:find("lua5.4 examples/quickstart.lua", 1, true))
    assert.truthy(io.open("examples/quickstart.lua"))
    assert.truthy(readme:find("examples/data/leads.csv", 1, true))
    assert.truthy(io.open("examples/data/leads.csv"))
  end)
end)

describe("tools/deps.sh", function()
  it("puts ca-certificates in the run group and keeps test tools out of the demo", function()
    local run = words(lines("sh tools/deps.sh --list run")[1])
    local demo = " " .. lines("sh tools/deps.sh --list demo")[1] .. " "
    local found = false
    for _, w in ipairs(run) do found = found or w == "ca-certificates" end
    assert.is_true(found)
    for _, tool in ipairs({ "nginx-light", "lua-busted", "lua5.1", "luarocks", "lua-ldoc" }) do
      assert.falsy(demo:find(" " .. tool .. " ", 1, true), tool)
    end
    for _, w in ipairs(run) do assert.truthy(demo:find(" " .. w .. " ", 1, true), w) end
  end)

  it("refuses an unknown group", function()
    local p = io.popen("sh tools/deps.sh nosuchgroup 2>&1")
    local out = p:read("a")
    local ok = p:close()
    assert.is_falsy(ok)
    assert.truthy(out:find("unknown group 'nosuchgroup'", 1, true), out)
  end)
end)

describe("docs/README.md", function()
  it("links every page in docs/", function()
    local index = slurp("docs/README.md")
    for _, path in ipairs(lines("ls docs/*.md")) do
      local name = path:match("([^/]+)$")
      if name ~= "README.md" then
        assert.truthy(index:find("(" .. name .. ")", 1, true), name .. " is not linked from docs/README.md")
      end
    end
  end)

  it("every page it links exists, and so does every page README.md links", function()
    for _, doc in ipairs({ "docs/README.md", "README.md" }) do
      local text = slurp(doc)
      local dir = doc == "README.md" and "" or "docs/"
      for name in text:gmatch("%(([%w_%-/]+%.md)[#)]") do
        local f = io.open(dir .. name)
        assert(f, doc .. " links a missing page: " .. name)
        f:close()
      end
    end
  end)
end)
