-- The HTML API reference: LDoc builds it once here (make test does not run
-- it again), renders Markdown, lists only the public modules, fails on any
-- warning, and the gate that checks every entity method is in it really
-- fails when one is missing.
local gen = dofile("tools/gen-types.lua")

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  return ok, out
end

local function slurp(path)
  local f = assert(io.open(path))
  local s = f:read("a")
  f:close()
  return s
end

describe("API reference (make docs)", function()
  local out = os.tmpname()
  os.remove(out)

  teardown(function()
    os.execute("rm -rf " .. q(out))
  end)

  it("builds with LDoc and documents every entity method", function()
    local ok, log = sh("sh tools/docs.sh " .. q(out))
    assert.is_true(ok == true, log)
    assert.are.equal("", log, "quiet on success")
    assert.are.same({}, gen.ldoc_missing(out))
    local html = slurp(out .. "/modules/client.leads.html")
    assert.truthy(html:find("Add up to 1000 leads to a campaign or a list", 1, true))
    assert.truthy(html:find('class="parameter">skip_if_in_workspace</span>', 1, true))
    assert.truthy(html:find("remaining_in_plan", 1, true), "underscores are not emphasis")
  end)

  it("renders Markdown: code spans, not raw backticks", function()
    local html = slurp(out .. "/modules/instantly.html")
    assert.truthy(html:find("<code>", 1, true))
    -- outside <pre> examples, no backtick survives
    local text = html:gsub("<pre.-</pre>", "")
    assert.falsy(text:find("`", 1, true))
  end)

  it("lists only the public modules in its navigation", function()
    local index = slurp(out .. "/index.html")
    local names = {}
    for name in index:gmatch('href="modules/([^"]+)%.html"') do names[name] = true end
    for _, want in ipairs({ "instantly", "instantly.request.client", "instantly.request.error", "instantly.mock",
      "instantly.csv", "instantly.schedule", "instantly.stats", "instantly.enums", "instantly.webhook",
      "client.campaigns", "client.leads" }) do
      assert.truthy(names[want], want)
    end
    for name in pairs(names) do
      assert.falsy(name:find("^instantly%.mock%.") or name == "instantly.cli" or name:find("^instantly%.cli%.")
        or name:find("^instantly%.request%.pipeline") or name:find("^instantly%.request%.builder"), name)
    end
  end)

  it("fails on an LDoc warning", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. q(dir)))
    local f = assert(io.open(dir .. "/bad.lua", "w"))
    f:write("--- A module.\n-- @module bad\nlocal M = {}\n"
      .. "--- Add.\n-- @param x first\nfunction M.add(a, b) return a + b end\nreturn M\n")
    f:close()
    f = assert(io.open(dir .. "/config.ld", "w"))
    f:write((slurp("config.ld"):gsub("file = %b{}", "file = { " .. string.format("%q", dir .. "/bad.lua") .. " }")))
    f:close()
    local ok, log = sh("sh tools/docs.sh " .. q(dir .. "/html") .. " " .. q(dir .. "/config.ld"))
    os.execute("rm -rf " .. q(dir))
    assert.is_falsy(ok, log)
    assert.truthy(log:find("undocumented formal argument", 1, true), log)
    assert.truthy(log:find("docs: ldoc warnings", 1, true), log)
  end)

  it("the coverage gate reports a missing method", function()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. q(dir .. "/modules") .. " && cp -r " .. q(out .. "/.") .. " " .. q(dir .. "/"))
    local page = dir .. "/modules/client.webhooks.html"
    local html = slurp(page)
    local f = assert(io.open(page, "w"))
    f:write((html:gsub('name = "client%.webhooks:test"', "")))
    f:close()
    local missing = gen.ldoc_missing(dir)
    os.execute("rm -rf " .. q(dir))
    assert.are.same({ "client.webhooks:test" }, missing)
  end)
end)
