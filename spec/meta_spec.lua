-- Generated files stay in step with their sources.
describe("generated files", function()
  local function run(cmd)
    local ok, _, code = os.execute(cmd .. " 2>/tmp/instantly-meta-spec.err")
    return ok, code
  end

  it("the rockspec lists every module and script", function()
    assert.is_true(run("lua5.4 tools/gen-rockspec.lua --check"), "run: lua5.4 tools/gen-rockspec.lua")
  end)

  it("the enum constants match the catalog", function()
    assert.is_true(run("lua5.4 tools/gen-enums.lua --check"), "run: lua5.4 tools/gen-enums.lua")
  end)

  it("the entity files match the catalog", function()
    assert.is_true(run("lua5.4 tools/gen-entities.lua --check"), "run: lua5.4 tools/gen-entities.lua")
  end)
end)
