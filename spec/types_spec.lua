-- Editor support: the lua-language-server stubs in types/ are generated
-- from the entity definitions and must not go stale.
local gen = dofile("tools/gen-types.lua")
local index = require("instantly.entities")

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

describe("type stubs", function()
  it("are up to date with the entity definitions", function()
    local err = os.tmpname() -- private, so two checkouts can run at once
    local ok = os.execute("lua5.4 tools/gen-types.lua --check 2>'" .. err .. "'")
    local msg = slurp(err)
    os.remove(err)
    assert.is_true(ok == true, "run: lua5.4 tools/gen-types.lua\n" .. msg)
  end)

  it("are valid Lua and declared as ---@meta", function()
    for path, text in pairs(gen.render_types()) do
      assert(load(text, "@" .. path))
      assert.truthy(text:match("^%-%-%-@meta"), path)
    end
  end)

  it("give the client a field per entity and every method its parameters and returns", function()
    local client = slurp("types/instantly.lua")
    for _, name in ipairs(index.entities) do
      local e = require("instantly.entities." .. name)
      assert.truthy(client:find("---@field " .. name .. " " .. gen.collection_class(e), 1, true), name)
      local stub = slurp("types/entities/" .. name .. ".lua")
      assert.truthy(stub:find("---@class " .. gen.class_name(e.name) .. "\n", 1, true), e.name)
      for _, op in ipairs(e.operations) do
        local args = {}
        for _, p in ipairs(op.path_params) do args[#args + 1] = p.name end
        if #gen.flags_of(op) > 0 then args[#args + 1] = "params" end
        args[#args + 1] = "opts"
        local sig = ":" .. op.lua_method .. "(" .. table.concat(args, ", ") .. ") end"
        assert.truthy(stub:find(sig, 1, true), name .. sig)
        -- every parameter is a typed field of the method's params class
        for _, p in ipairs(gen.flags_of(op)) do
          local line = "---@field " .. p.name .. (p.required and " " or "? ") .. gen.lua_type(p, nil)
          -- objects (and arrays of objects the catalog describes) get a class of their own
          assert.truthy(stub:find(line, 1, true) or p.type == "object" or p.fields,
            name .. ":" .. op.lua_method .. " " .. line)
        end
      end
    end
  end)

  it("declare exactly the methods a real client has", function()
    local instantly = require("instantly")
    local transport = { request = function() return 200, "{}", {} end }
    local client = instantly.new { api_key = "types-spec-key-0123456789", transport = transport }
    local function declared(path, var)
      local set = {}
      for name in slurp(path):gmatch("\nfunction " .. var .. ":([%w_]+)%(") do set[name] = true end
      return set
    end
    local function runtime(t)
      local set = {}
      for k, v in pairs(t) do
        if type(v) == "function" and not tostring(k):match("^_") then set[k] = true end
      end
      return set
    end
    local function same(want, have, what)
      for k in pairs(want) do assert.is_true(have[k] == true, what .. ":" .. k .. " is missing from the stubs") end
      for k in pairs(have) do assert.is_true(want[k] == true, what .. ":" .. k .. " is not in the SDK") end
    end
    for _, name in ipairs(index.entities) do
      local path = "types/entities/" .. name .. ".lua"
      local camel = name:gsub("_(%w)", string.upper):gsub("^%l", string.upper)
      same(runtime(getmetatable(client[name]).__index), declared(path, camel), "client." .. name)
      same(runtime(client[name].record_mt.__methods), declared(path, camel .. "Record"), name .. " record")
    end
    same(runtime(require("instantly.request.client").methods()), declared("types/instantly.lua", "Client"), "client")
    local page = client.campaigns:list()
    same(runtime(getmetatable(page).__index), declared("types/instantly.lua", "Page"), "page")
    local module = {}
    for name in slurp("types/instantly.lua"):gmatch("\nfunction instantly%.([%w_]+)%(") do module[name] = true end
    same(runtime(instantly), module, "instantly")
  end)

  it("map catalog types to Lua types", function()
    assert.are.equal("integer", gen.lua_type({ type = "integer" }))
    assert.are.equal("string[]", gen.lua_type({ type = "array", items = "string" }))
    assert.are.equal('"a"|"b"', gen.lua_type({ type = "string", enum = { "a", "b" } }))
    assert.are.equal("0|1|-1|instantly.Null", gen.lua_type({ type = "integer", enum = { 0, 1, -1 }, nullable = true }))
    assert.are.equal("instantly.Page<instantly.Lead>",
      gen.return_type({ response = { kind = "list", item = "Lead" } }))
    assert.are.equal("instantly.LeadList", gen.class_name("Lead List"))
  end)

  it("ship in the rock", function()
    local spec = slurp("rockspec/instantly-scm-1.rockspec")
    assert.truthy(spec:find('copy_directories = { "types" }', 1, true))
  end)
end)
