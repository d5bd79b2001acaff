-- The HTML API reference: LDoc builds it, and the gate that checks every
-- entity method is in it really fails when one is missing.
local gen = dofile("tools/gen-types.lua")

describe("API reference (make docs)", function()
  local out = os.tmpname()
  os.remove(out)

  teardown(function()
    os.execute("rm -rf '" .. out .. "'")
  end)

  it("builds with LDoc and documents every entity method", function()
    local ok = os.execute("sh tools/docs.sh '" .. out .. "' >/tmp/instantly-docs-spec.log 2>&1")
    local f = io.open("/tmp/instantly-docs-spec.log")
    local log = f and f:read("a") or ""
    if f then f:close() end
    assert.is_true(ok == true, log)
    assert.are.equal("", log, "quiet on success")
    assert.are.same({}, gen.ldoc_missing(out))
    local f2 = assert(io.open(out .. "/modules/client.leads.html"))
    local html = f2:read("a")
    f2:close()
    assert.truthy(html:find("Add up to 1000 leads to a campaign or a list", 1, true))
    assert.truthy(html:find('class="parameter">skip_if_in_workspace</span>', 1, true))
    assert.truthy(html:find("remaining_in_plan", 1, true), "underscores are not emphasis")
  end)

  it("the coverage gate reports a missing method", function()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p '" .. dir .. "/modules' && cp -r '" .. out .. "/.' '" .. dir .. "/'")
    local page = dir .. "/modules/client.webhooks.html"
    local f = assert(io.open(page))
    local html = f:read("a")
    f:close()
    f = assert(io.open(page, "w"))
    f:write((html:gsub('name = "client%.webhooks:test"', "")))
    f:close()
    local missing = gen.ldoc_missing(dir)
    os.execute("rm -rf '" .. dir .. "'")
    assert.are.same({ "client.webhooks:test" }, missing)
  end)
end)
