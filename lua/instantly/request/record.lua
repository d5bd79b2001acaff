--- How records (the objects the API returns) reach Lua code.
--
-- * **JSON null is left out.** `instantly.null` is a truthy value, so a
--   field holding it would take the wrong branch of `if lead.lt_interest_status
--   then`. A record keeps only the fields that have a value: a null field
--   reads as `nil`, in the record and in the objects nested in it.
--   `instantly.nulls(record)` names the fields that were null and
--   `instantly.raw(record)` gives the record as the API sent it. Sending is
--   unchanged: `instantly.null` in the parameters is sent as null (to clear
--   a nullable field with an update).
-- * **Booleans are booleans.** A field the catalog types as boolean that
--   arrives as 0 or 1 reads as false or true. Fields the catalog types as
--   0/1 integers (the email flags `is_unread`, `is_auto_reply`,
--   `ai_assisted`, `is_focused`) stay numbers, because the API takes them
--   back as numbers: test them with `== 1`.
-- * **One name for a field written under another.** A schema field with a
--   `record_name` in the catalog is read under that name: a lead's custom
--   variables are written as `custom_variables` and read back as
--   `custom_variables` (the API calls them `payload` in responses; the old
--   name still reads).
-- @module instantly.request.record

local core = require "instantly.core"

local pairs, ipairs, type, getmetatable, setmetatable, next, tostring =
  pairs, ipairs, type, getmetatable, setmetatable, next, tostring
local sort, concat = table.sort, table.concat
local load, assert = load, assert

local null, array_mt = core.null, core.array_mt

local M = {}

-- table -> the key that held null (a string), or the array of them when
-- there were several (for `raw` and `nulls`)
local nulls_of = setmetatable({}, { __mode = "k" })
-- record -> { record name -> API name }
local renamed_of = setmetatable({}, { __mode = "k" })

--- The decoder of a response that becomes records: objects leave their
-- null members out, and the decoder names them in `nulls_of` (for `nulls`
-- and `raw`) as it builds each object, at any depth; arrays keep their
-- nulls (positions matter). One table serves every decode, a nested one
-- (a finalizer making a call) too. The options are read once
-- (`core.json_decoder`), and running out of memory is an expected
-- failure (`nil, "not enough memory", true`, see `pipeline.judge`).
M.decode = core.json_decoder { nulls = nulls_of, memory_error = "return" }

--- The function that shapes a freshly decoded object into a record of
-- entity `def`: booleans and renamed fields (its nulls are out already,
-- see `decode`), or false when the entity has neither.
-- @tparam table def entity definition
-- @treturn function|false `shape(t)`
function M.shaper(def)
  local bools, renames = {}, {}
  for _, f in ipairs(def.fields or {}) do
    if f.type == "boolean" then bools[#bools + 1] = f.name end
    if f.record_name then renames[f.name] = f.record_name end
  end
  local has_renames = next(renames) ~= nil
  if #bools == 0 and not has_renames then return false end
  -- The booleans as straight-line code, made from the catalog once per
  -- process (a page of a hundred campaigns runs it for each one, and a
  -- loop over the field names costs a third more); names are quoted
  -- with %q, so the text is only ever field lookups.
  local src = { "local t = ...\nlocal v\n" }
  for _, k in ipairs(bools) do
    src[#src + 1] = ("v = t[%q]; if v == 1 then t[%q] = true elseif v == 0 then t[%q] = false end\n")
      :format(k, k, k)
  end
  local set_bools = assert(load(concat(src), "=(record shaper " .. tostring(def.name) .. ")", "t", {}))
  if not has_renames then return set_bools end
  return function(t)
    set_bools(t)
    local done
    for from, to in pairs(renames) do
      local v = t[from]
      if v ~= nil and t[to] == nil then
        t[to], t[from] = v, nil
        done = done or {}
        done[to] = from
      end
    end
    if done then renamed_of[t] = done end
  end
end

local shapers = setmetatable({}, { __mode = "k" })

--- The shaper of entity `def` (or false), made once per process.
-- @tparam table def entity definition
-- @treturn function|false
function M.shaper_for(def)
  local s = shapers[def]
  if s == nil then
    s = M.shaper(def)
    shapers[def] = s
  end
  return s
end

--- Names the record reads a field under -> the API's name (for `__index`
-- of the record metatable: the old name still reads).
-- @tparam table def entity definition
-- @treturn table|nil API name -> record name
function M.aliases(def)
  local a
  for _, f in ipairs(def.fields or {}) do
    if f.record_name then
      a = a or {}
      a[f.name] = f.record_name
    end
  end
  return a
end

--- The names of a record's fields that were JSON null (sorted).
-- @tparam table rec a record (or any object nested in one)
-- @treturn table array of names
function M.nulls(rec)
  local names = nulls_of[rec]
  if type(names) ~= "table" then return { names } end -- one name, or none
  local out = {}
  for i, k in ipairs(names) do out[i] = k end
  sort(out, function(a, b) return tostring(a) < tostring(b) end)
  return out
end

-- As deep as the decoder goes by default (its max_depth): a record is
-- decoded data, so this only guards against a table made by hand.
local RAW_DEPTH = 1000

local function raw(v, depth)
  if type(v) ~= "table" or depth > RAW_DEPTH then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = raw(x, depth + 1) end
  local names = nulls_of[v]
  if type(names) == "table" then
    for _, k in ipairs(names) do
      if out[k] == nil then out[k] = null end
    end
  elseif names ~= nil and out[names] == nil then
    out[names] = null
  end
  local ren = renamed_of[v]
  if ren then
    for to, from in pairs(ren) do
      if out[from] == nil then out[from], out[to] = out[to], nil end
    end
  end
  if getmetatable(v) == array_mt then setmetatable(out, array_mt) end
  return out
end

--- A record as the API sent it: a plain copy (no methods) with its null
-- fields back as `instantly.null` and fields under their API names.
-- @tparam table rec a record
-- @treturn table
function M.raw(rec)
  return raw(rec, 0)
end

return M
