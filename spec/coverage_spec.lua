-- Coverage gates (like luv's bindcov/docscov):
--  * every operation of the project's catalog copy (catalog/
--    instantly-v2.json, read directly, not through the generated entity
--    files) has a method that sends the same HTTP method to the same path;
--  * every public method is documented: generated methods through the
--    builder's doc tables (`client.<entity>.docs`, shown by `:help`),
--    hand-written functions (module, client, entity and record extension
--    methods, pages) by an LDoc `---` comment above their definition.
local core = require "instantly.core"
local instantly = require "instantly"
local H = require "support.client_helper"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local catalog = assert(core.json_decode(read("catalog/instantly-v2.json")))

local source_cache = {}
local function source_lines(src)
  if source_cache[src] then return source_cache[src] end
  local lines = {}
  local f = io.open(src, "rb")
  if f then
    for l in f:lines() do lines[#lines + 1] = l end
    f:close()
  end
  source_cache[src] = lines
  return lines
end

-- Does the function carry an LDoc comment: a `---` line in the comment
-- block right above the line that defines it?
local function has_ldoc(fn)
  local info = debug.getinfo(fn, "S")
  if info.what ~= "Lua" or info.source:sub(1, 1) ~= "@" then return false, "not a Lua file function" end
  local lines = source_lines(info.source:sub(2))
  local i = info.linedefined - 1
  while i >= 1 and lines[i]:match("^%s*%-%-") do
    if lines[i]:match("^%s*%-%-%-") then return true end
    i = i - 1
  end
  return false, info.short_src .. ":" .. info.linedefined
end

local function methods_of(obj)
  local out = {}
  local mt = getmetatable(obj)
  local idx = mt and mt.__index
  if type(idx) == "table" then
    for k, v in pairs(idx) do if type(v) == "function" then out[k] = v end end
  end
  for k, v in pairs(obj) do if type(v) == "function" then out[k] = v end end
  return out
end

describe("catalog coverage", function()
  local c, t = H.fake_client(H.const(200, "{}"))
  local total = 0
  for _, ent in ipairs(catalog.entities) do
    for _, op in ipairs(ent.operations) do
      total = total + 1
      it(op.id .. " = " .. op.method .. " " .. op.path, function()
        local obj = c[ent.lua_name]
        assert.is_table(obj, "no client." .. ent.lua_name)
        local fn = obj[op.lua_method]
        assert.is_function(fn, "no client." .. ent.lua_name .. ":" .. op.lua_method)
        local args, want = {}, op.path
        for i, p in ipairs(op.path_params) do
          -- a value of the parameter's format (path arguments are checked)
          local by_format = { uuid = "00000000-0000-4000-8000-00000000000" .. i, email = "p" .. i .. "@example.com" }
          args[i] = by_format[p.format] or ("p" .. i)
          want = want:gsub("{" .. p.name .. "}", (args[i]:gsub("@", "%%%%40")))
        end
        -- the required parameters, with values of the right type
        local params = {}
        local FORMAT = { uuid = "0b6f4a8e-1c2d-4e5f-8a9b-0c1d2e3f4a5b", email = "a@b.co", date = "2026-01-02",
                         ["date-time"] = "2026-01-02T03:04:05Z", uri = "https://h.example/x", ["hh:mm"] = "09:00" }
        local function val(p)
          if p.enum then return p.type == "array" and { p.enum[1] } or p.enum[1] end
          if p.type == "string" then return FORMAT[p.format] or "s" end
          if p.type == "object" then
            local o = { k = 1 }
            if p.keys and p.keys.enum then return { [p.keys.enum[1]] = val(p.values) } end
            for _, f in ipairs(p.fields or {}) do if f.required then o[f.name] = val(f) end end
            return o
          end
          if p.type == "array" then
            if p.fields then return { val { type = "object", fields = p.fields } } end
            return p.items == "object" and { { k = 1 } } or { p.items == "integer" and 1 or "s" }
          end
          return ({ integer = 1, number = 1, boolean = true })[p.type]
        end
        for _, p in ipairs(op.query or {}) do if p.required then params[p.name] = val(p) end end
        for _, p in ipairs(op.body ~= core.null and op.body and op.body.fields or {}) do
          if p.required then params[p.name] = val(p) end
        end
        args[#args + 1] = params
        local before = #t.log
        fn(obj, table.unpack(args, 1, #op.path_params + 1))
        assert.equal(before + 1, #t.log)
        local sent = t.log[#t.log]
        assert.equal(op.method, sent.method)
        local path = sent.url:match("^https://api%.instantly%.ai(/[^?]*)")
        assert.equal(catalog.path_prefix .. want, path)
        if op.paginated then
          local it_name = op.lua_method == "list" and "each" or ("each" .. op.lua_method:sub(5))
          assert.is_function(obj[it_name], "no iterator " .. it_name)
        end
      end)
    end
  end

  it("covers all 187 operations", function()
    assert.equal(187, total)
  end)
end)

describe("documentation coverage", function()
  local c = H.fake_client(H.const(200, "{}"))

  it("every generated entity method has docs; every other one an LDoc comment", function()
    for _, name in ipairs(require("instantly.entities").entities) do
      local obj = c[name]
      for mname, fn in pairs(methods_of(obj)) do
        local d = obj.docs[mname]
        if d then
          assert.is_string(d.summary, name .. ":" .. mname)
          assert.is_true(#d.summary > 0, name .. ":" .. mname)
          assert.is_string(d.signature)
          assert.is_string(obj:help(mname))
        else
          local ok, where = has_ldoc(fn)
          assert.is_true(ok, "client." .. name .. ":" .. mname .. " has no LDoc comment (" .. tostring(where) .. ")")
        end
      end
    end
  end)

  it("every record method is an operation, a relation or documented", function()
    for _, name in ipairs(require("instantly.entities").entities) do
      local mt = c[name].record_mt
      for mname, fn in pairs(mt.__methods) do
        local ok = c[name].docs[mname] ~= nil or (c[mname] ~= nil and c[mname].docs.each ~= nil)
        if not ok then
          local doc, where = has_ldoc(fn)
          assert.is_true(doc, name .. " record:" .. mname .. " has no LDoc comment (" .. tostring(where) .. ")")
        end
      end
    end
  end)

  it("client methods, module functions and page methods carry LDoc comments", function()
    for mname, fn in pairs(methods_of(c)) do
      local ok, where = has_ldoc(fn)
      assert.is_true(ok, "client:" .. mname .. " has no LDoc comment (" .. tostring(where) .. ")")
    end
    for fname, fn in pairs(instantly) do
      if type(fn) == "function" and debug.getinfo(fn, "S").what == "Lua" then
        local ok, where = has_ldoc(fn)
        assert.is_true(ok, "instantly." .. fname .. " has no LDoc comment (" .. tostring(where) .. ")")
      end
    end
    local c2 = H.fake_client(H.const(200, '{"items":[],"next_starting_after":null}'))
    local page = assert(c2.campaigns:list())
    for mname, fn in pairs(getmetatable(page).__index) do
      local ok, where = has_ldoc(fn)
      assert.is_true(ok, "page:" .. mname .. " has no LDoc comment (" .. tostring(where) .. ")")
    end
  end)

  it("the check itself notices an undocumented function", function()
    local undocumented = load("return function() end", "@spec/coverage_spec.lua")()
    assert.is_false((has_ldoc(undocumented)))
    assert.is_true((has_ldoc(instantly.client_of)))
  end)
end)
