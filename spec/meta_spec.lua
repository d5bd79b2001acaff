-- Generated files stay in step with their sources.
describe("generated files", function()
  -- stderr to a private temp file, so two checkouts can run at once
  local function run(cmd)
    local err = os.tmpname()
    local ok, _, code = os.execute(cmd .. " 2>'" .. err .. "'")
    local f = io.open(err)
    local msg = f and f:read("a") or ""
    if f then f:close() end
    os.remove(err)
    return ok, code, msg
  end

  it("the rockspec lists every module and script", function()
    local ok, _, msg = run("lua5.4 tools/gen-rockspec.lua --check")
    assert.is_true(ok, "run: lua5.4 tools/gen-rockspec.lua\n" .. msg)
  end)

  it("the enum constants match the catalog", function()
    assert.is_true(run("lua5.4 tools/gen-enums.lua --check"), "run: lua5.4 tools/gen-enums.lua")
  end)

  it("the entity files match the catalog", function()
    local ok, _, msg = run("lua5.4 tools/gen-entities.lua --check")
    assert.is_true(ok, "run: lua5.4 tools/gen-entities.lua\n" .. msg)
  end)
end)
