-- tools/rockcheck.sh catches what it exists to catch: a rock whose modules
-- need a dependency it does not declare. (`make test` runs it on the real
-- rockspec; here it must fail on a rockspec without luasocket, and leave
-- the checkout without build products either way.)

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function products()
  local p = assert(io.popen("ls instantly/core.so csrc/*.o 2>/dev/null"))
  local out = p:read("a")
  p:close()
  return out
end

describe("tools/rockcheck.sh", function()
  it("fails on a rockspec that omits luasocket, naming the module, and leaves the tree clean", function()
    local before = products()
    local f = assert(io.open("rockspec/instantly-scm-1.rockspec"))
    local text = f:read("a")
    f:close()
    local stripped, n = text:gsub('"luasocket >= [%d.]+", ', "")
    assert.are.equal(1, n, "the rockspec declares luasocket")
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. q(dir)))
    local path = dir .. "/instantly-scm-1.rockspec"
    f = assert(io.open(path, "w"))
    f:write(stripped)
    f:close()
    local p = assert(io.popen("sh tools/rockcheck.sh " .. q(path) .. " 2>&1"))
    local out = p:read("a")
    local ok = p:close()
    os.execute("rm -rf " .. q(dir))
    assert.is_falsy(ok, out)
    assert.truthy(out:find("instantly.mock does not load", 1, true), out)
    assert.truthy(out:find("module 'socket' not found", 1, true), out)
    assert.are.equal(before, products())
    assert.are.equal("", products())
  end)
end)
