-- Every operation of the catalog, called through its generated method
-- against the mock, with valid arguments generated from the parameter
-- types; the mock's request log must show the method, the path (path
-- arguments intact), the query and the body the catalog prescribes.
local H = require "support.client_helper"
local catalog = require "instantly.entities"
local instantly = require "instantly"

local UUID = "0b6f4a8e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"

-- A valid value for a parameter description (nested objects, array
-- elements and map keys follow their catalog schema).
local function gen(p, depth)
  depth = depth or 0
  if p.enum then
    if p.type == "array" then return instantly.array { p.enum[#p.enum] } end
    return p.enum[#p.enum]
  end
  local t = p.type
  if t == "string" then
    if p.format == "uuid" then return UUID end
    if p.format == "email" then return "jane+1@acme.io" end
    if p.format == "date" then return "2026-01-02" end
    if p.format == "date-time" then return "2026-01-02T03:04:05.000Z" end
    if p.format == "uri" then return "https://example.com/hook" end
    if p.format == "hh:mm" then return "09:30" end
    return "v-" .. p.name
  elseif t == "integer" then
    return p.min or 3
  elseif t == "number" then
    return 1.5
  elseif t == "boolean" then
    return true
  elseif t == "array" then
    if p.item_fields then
      return { gen({ name = p.name, type = "object", fields = p.item_fields }, depth + 1) }
    end
    local item = p.items or "string"
    if item == "object" then return { { k = "v" } } end
    local a = gen({ name = p.name, type = item }, depth + 1)
    local b = gen({ name = p.name .. "2", type = item }, depth + 1)
    return { a, b }
  elseif t == "object" then
    local o = {}
    if p.keys and p.keys.enum then
      for _, k in ipairs(p.keys.enum) do o[k] = gen(p.values or { name = k, type = "string" }, depth + 1) end
      return o
    end
    o.extra_key = "x"
    for _, f in ipairs(p.fields or {}) do
      if depth < 6 then o[f.name] = gen(f, depth + 1) end
    end
    return o
  end
  error("no generator for type " .. tostring(t))
end

local function query_text(v)
  if v == true then return "true" elseif v == false then return "false" end
  if math.type(v) == "float" then return string.format("%.17g", v) end
  return tostring(v)
end

local srv, client

setup(function()
  srv = H.mock { rate_limits = false }
  client = H.mock_client(srv, { max_retries = 0 })
end)

teardown(function()
  if srv then srv:stop() end
end)

describe("every catalog operation", function()
  for _, lua_name in ipairs(catalog.entities) do
    local def = require("instantly.entities." .. lua_name)
    for _, op in ipairs(def.operations) do
      it(lua_name .. ":" .. op.lua_method .. " -> " .. op.method .. " " .. op.path, function()
        local args, raw = {}, {}
        for _, p in ipairs(op.path_params) do
          local v = p.format == "email" and "jane/x+1@acme.io" or (p.format == "uuid" and UUID or "id/1 +x")
          args[#args + 1] = v
          raw[p.name] = v
        end
        local params, sent_query, sent_body = {}, {}, {}
        for _, p in ipairs(op.query or {}) do
          local v = gen(p)
          params[p.name] = v
          sent_query[p.name] = v
        end
        for _, p in ipairs(op.body and op.body.fields or {}) do
          local v = gen(p)
          params[p.name] = v
          sent_body[p.name] = v
        end
        args[#args + 1] = params
        srv:clear_requests()
        local method = client[lua_name][op.lua_method]
        assert.is_function(method)
        local v, err = method(client[lua_name], table.unpack(args, 1, #op.path_params + 1))
        if v == nil then
          assert.is_true(instantly.is_error(err), tostring(err))
          assert.is_truthy(err.kind == "http" or err.kind == "api" or err.kind == "rate_limited",
            "expected an answer from the mock, got " .. tostring(err))
        end
        local log = srv:requests()
        assert.equal(1, #log, "exactly one request")
        local r = log[1]
        assert.equal(op.method, r.method)
        local want = catalog.path_prefix .. op.path:gsub("{([^}]+)}", function(n) return raw[n] end)
        assert.equal(want, r.decoded_path)
        -- The query: each parameter once, arrays repeated, nothing else.
        local q = r.query or {}
        for name, val in pairs(sent_query) do
          if type(val) == "table" then
            local want_list = {}
            for i, e in ipairs(val) do want_list[i] = query_text(e) end
            local got = q[name]
            if type(got) == "string" then got = { got } end
            assert.same(want_list, got, "query " .. name)
          else
            assert.equal(query_text(val), q[name], "query " .. name)
          end
        end
        for name in pairs(q) do assert.is_not_nil(sent_query[name], "unexpected query " .. name) end
        -- The body: exactly the body parameters, as JSON.
        if op.body then
          assert.is_table(r.body, "a JSON body")
          for name, val in pairs(sent_body) do
            assert.is_true(H.same(val, r.body[name]), "body " .. name)
          end
          for name in pairs(r.body) do assert.is_not_nil(sent_body[name], "unexpected body " .. name) end
          assert.equal("application/json", (r.headers["content-type"] or ""):match("^[^;]+"))
        else
          assert.is_true(r.body == nil or r.body == "", "no body")
        end
        assert.is_truthy((r.headers.authorization or ""):match("^Bearer "))
      end)
    end
  end
end)
