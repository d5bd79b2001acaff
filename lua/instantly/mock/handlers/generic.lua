--- The generic handlers: one per kind of behaviour an operation declares in
-- instantly.mock.behaviour (list, get, create, update, delete, action,
-- copy, bulk, set_where, delete_where, count, tally, all, static,
-- job_status, view), the checks a row declares, and the machinery the
-- hand-written handlers share with them (filters, background jobs, polled
-- state). Each kind takes the request context and the operation's row.
-- @module instantly.mock.handlers.generic

local common = require "instantly.mock.handlers.common"
local views = require "instantly.mock.handlers.views"
local json = require "instantly.mock.json"
local util = require "instantly.mock.util"

local err, null = common.err, json.null

local M = {}

-- Filters ----------------------------------------------------------------------
-- A filter row reads one request value (`param`, from the query or, with
-- src = "body", the body) and tests one field of each object:
--   { param, field = param }            equal (an array value: any of)
--   { param, csv = field }              any of a comma-separated list
--   { param, search = { fields } }      case-insensitive substring
--   { param, present = field }          true: field set; false: unset
--   { param, after = field } / before   a date or date-time bound; field
--                                        "*" is the creation time
--   { param, tag = key }                has a custom tag (resource = obj[key]);
--                                        all = true: every tag named
--   { param, flag = field }             true: field is true; false: no test
--   { param, via = { coll, from, to } } some object of coll with its `from`
--                                        in the value names this one's id
--                                        in its `to` (a join)
--   negate = true                       keeps what the test would drop
--   { field = f, ne = v } / value = v   a constant test, no request value

local function set_of(v)
  local s = {}
  for _, x in ipairs(type(v) == "table" and v or { v }) do
    for part in tostring(x):gmatch("[^,]+") do s[part] = true end
  end
  return s
end

local function present(v) return v ~= nil and v ~= null end

local function time_of(coll, obj, field)
  if field == "*" then return coll.time_of[obj] end
  return util.parse_time(obj[field])
end

local function time_filter(f, v, coll)
  local t = util.parse_time(v)
  if not t then return nil, f[1] .. " must be a date" end
  if f.before and #v == 10 then t = t + 86400000 - 1 end
  if f.after then
    return function(o) local x = time_of(coll, o, f.after) return x ~= nil and x >= t end
  end
  return function(o) local x = time_of(coll, o, f.before) return x ~= nil and x <= t end
end

-- Any of the tags, or (all = true) every one of them.
local function tag_filter(ctx, v, key, all)
  local want, tags = set_of(v), {}
  for _, m in ctx.store:coll("custom_tag_mappings"):each() do
    if want[m.tag_id] then
      tags[m.resource_id] = tags[m.resource_id] or {}
      tags[m.resource_id][m.tag_id] = true
    end
  end
  return function(o)
    local have = tags[o[key]]
    if not have or not all then return have ~= nil end
    for id in pairs(want) do if not have[id] then return false end end
    return true
  end
end

local function via_filter(ctx, v, via)
  local want, hit = set_of(v), {}
  for _, o in ctx.store:coll(via[1]):each() do
    if want[o[via[2]]] then hit[o[via[3]]] = true end
  end
  return function(o) return hit[o.id] == true end
end

-- One filter as a predicate; nil when the request does not use it.
local function constant(f)
  local field, ne, value = f.field, f.ne, f.value
  if ne ~= nil then return function(o) return o[field] ~= ne end end
  return function(o) return o[field] == value end
end

local function test(ctx, f, src, coll)
  if f.ne ~= nil or f.value ~= nil then
    -- no request value: built once per row
    f.compiled = f.compiled or constant(f)
    return f.compiled
  end
  local v = src[f[1]]
  if v == nil or v == null then return nil end
  if type(v) == "table" and next(v) == nil then
    -- empty = false: an empty list keeps nothing (instead of not filtering)
    if f.empty == false then return function() return false end end
    return nil
  end
  if f.flag then return v == true and function(o) return o[f.flag] == true end or nil end
  if f.via then return via_filter(ctx, v, f.via) end
  if f.search then return common.search_pred(v, f.search) end
  if f.csv then
    local s = set_of(v)
    return function(o) return s[o[f.csv]] == true end
  end
  if f.present then
    return function(o) return present(o[f.present]) == v end
  end
  if f.after or f.before then return time_filter(f, v, coll) end
  if f.has then
    return function(o)
      for _, x in ipairs(type(o[f.has]) == "table" and o[f.has] or {}) do if x == v then return true end end
      return false
    end
  end
  if f.tag then return tag_filter(ctx, v, f.tag, f.all) end
  return common.eq_pred(f.field or f[1], v)
end

local function predicate(ctx, f, src, coll)
  local p, msg = test(ctx, f, src, coll)
  if p and f.negate then return function(o) return not p(o) end end
  return p, msg
end

--- The AND of a row's filters for this request; nil, message on a bad value.
function M.filter(ctx, filters, src, coll)
  local preds = {}
  for _, f in ipairs(filters or {}) do
    local p, msg = predicate(ctx, f, src, coll)
    if msg then return nil, msg end
    preds[#preds + 1] = p
  end
  return common.all(preds) or false
end

-- References ---------------------------------------------------------------------
-- refs = { { field, coll, label } }: a request value that must name an
-- existing object (404 otherwise).

local function check_refs(ctx, refs, src)
  for _, r in ipairs(refs or {}) do
    local v = src[r[1]]
    if present(v) and not ctx.store:coll(r[2]):get(v) then
      return (r[3] or "Resource") .. " not found"
    end
  end
end

-- The request values a row reads: src = "body", "params" or the query.
local function source(ctx, row)
  if row.src == "body" then return ctx.body or {} end
  if row.src == "params" then return ctx.params end
  return ctx.query
end

-- unique = { field, message, ci = true }: a create refuses a body value
-- that an object of the collection already has (ci: in any case); the
-- message names it through %s.
local function duplicate(ctx, row, b)
  local u = row.unique
  local v = b[u[1]]
  if type(v) ~= "string" then return nil end
  local want = u.ci and v:lower() or v
  for _, o in ctx.store:coll(row.coll or ctx.entity.lua_name):each() do
    local x = o[u[1]]
    if x == want or (u.ci and type(x) == "string" and x:lower() == want) then return u[2]:format(v) end
  end
end

-- Checks on the body a row declares: one_of = { fields } (exactly one
-- is given), non_empty = { fields } (a string or list that must not be
-- empty), members = { { field, coll, what } } (every value of a body list
-- names an object of coll), unique (above).
local function body_checks(ctx, row)
  local b = ctx.body or {}
  if row.unique then
    local dup = duplicate(ctx, row, b)
    if dup then return dup end
  end
  if row.one_of then
    local n = 0
    for _, f in ipairs(row.one_of) do if present(b[f]) then n = n + 1 end end
    if n ~= 1 then return "body must have exactly one of " .. table.concat(row.one_of, ", ") end
  end
  for _, f in ipairs(row.non_empty or {}) do
    if b[f] == "" then return "body/" .. f .. " must NOT have fewer than 1 characters" end
    if type(b[f]) == "table" and b[f] ~= null and next(b[f]) == nil then
      return "body/" .. f .. " must NOT have fewer than 1 items"
    end
  end
  for _, m in ipairs(row.members or {}) do
    local list = b[m[1]]
    for i, v in ipairs(type(list) == "table" and list or {}) do
      if not ctx.store:coll(m[2]):get(v) then
        return string.format("body/%s/%d (%s) is not %s of this workspace", m[1], i - 1, tostring(v), m[3])
      end
    end
  end
end

-- A row's checks: those on the body, its refs, then named functions from
-- the special handlers, each returning nothing or status, message.
local function run_checks(ctx, row)
  if row.one_of or row.non_empty or row.members or row.unique then
    local bad = body_checks(ctx, row)
    if bad then return 400, bad end
  end
  if row.refs then
    local msg = check_refs(ctx, row.refs, row.src and source(ctx, row) or ctx.body or ctx.query)
    if msg then return 404, msg end
  end
  if not row.checks then return end
  for _, name in ipairs(row.checks) do
    local status, msg = M.checks[name](ctx, row)
    if status then return status, msg end
  end
end

M.checks = {}

-- The kinds ------------------------------------------------------------------------

local function coll_of(ctx, row) return ctx.store:coll(row.coll or ctx.entity.lua_name) end

-- The object a row acts on: the workspace itself, a body field (key_src =
-- "body") or a path parameter (the first one by default).
local function key_of(ctx, row)
  if row.key == "workspace" then return ctx.store.workspace_id end
  if row.key_src == "body" then return (ctx.body or {})[row.key] end
  local name = row.key or (ctx.op.path_params[1] and ctx.op.path_params[1].name)
  return ctx.params[name]
end

-- The 404 message: "<label> not found", or the label itself with the key
-- in place of a %s.
local function label(ctx, row)
  if row.label and row.label:find("%s", 1, true) then return row.label:format(key_of(ctx, row)) end
  return (row.label or ctx.entity.name) .. " not found"
end

local function target(ctx, row)
  local obj = coll_of(ctx, row):get(key_of(ctx, row))
  if not obj then return nil, label(ctx, row) end
  return obj
end

local function touch(ctx, obj, row)
  if row.touch == false then return end
  local now = ctx.store:now_iso()
  if obj.timestamp_updated ~= nil then obj.timestamp_updated = now end
  if obj.updated_at ~= nil then obj.updated_at = now end
end

-- The body fields a row writes: its list, or the body fields the schema has.
local function writable(ctx, row)
  if row.fields then return row.fields end
  local schema, out = {}, {}
  for _, f in ipairs(ctx.entity.fields) do schema[f.name] = true end
  for _, f in ipairs(ctx.op.body and ctx.op.body.fields or {}) do
    if schema[f.name] then out[#out + 1] = f.name end
  end
  return out
end

-- omit = { { flag, field, when } }: copies without `field` when the
-- request's boolean `flag` is `when` (absent counts as false).
local function omitted(ctx, row, obj)
  local copy
  for _, o in ipairs(row.omit or {}) do
    if (ctx.query[o[1]] == true) == o[3] and obj[o[2]] ~= nil then
      copy = copy or util.shallow_copy(obj)
      copy[o[2]] = nil
    end
  end
  return copy or obj
end

-- project = { out = field }: each item shown as those fields only.
local function projected(row, obj)
  local out = {}
  for k, f in pairs(row.project) do out[k] = obj[f] end
  return out
end

function M.list(ctx, row)
  local src = source(ctx, row)
  local coll = coll_of(ctx, row)
  local pred, msg = M.filter(ctx, row.filters, src, coll)
  if pred == nil then return err(400, "querystring/" .. msg) end
  local status, page = common.page(ctx, coll, pred or nil, row.src == "body" and src or nil)
  if status == 200 and (row.omit or row.project) then
    for i, o in ipairs(page.items) do page.items[i] = row.project and projected(row, o) or omitted(ctx, row, o) end
  end
  return status, page
end

-- Polled state: an object that changes after it has been read
-- settings[setting] times. later() arms it with the fields it will take;
-- poll() counts one read (a get row with poll = true does it).
function M.later(store, obj, setting, final)
  store.later = store.later or setmetatable({}, { __mode = "k" })
  store.later[obj] = { setting = setting, final = final, polls = 0 }
end

function M.poll(ctx, obj)
  local p = ctx.store.later and ctx.store.later[obj]
  if not p then return end
  p.polls = p.polls + 1
  if p.polls >= ctx.settings[p.setting] then
    for k, v in pairs(p.final) do obj[k] = v end
    ctx.store.later[obj] = nil
  end
end

function M.get(ctx, row)
  local obj, msg = target(ctx, row)
  if not obj then return err(404, msg) end
  if row.poll then M.poll(ctx, obj) end
  return 200, omitted(ctx, row, obj)
end

-- A store value by dotted path ("workspace.name").
local function store_value(store, path)
  local v = store
  for part in path:gmatch("[^.]+") do v = v[part] end
  return v
end

-- matches = { field = { body_field, pattern } }: field says whether the
-- body's string body_field (when given) matches the Lua pattern.
local function derive(obj, row, b)
  for k, m in pairs(row.matches or {}) do
    if type(b[m[1]]) == "string" then obj[k] = b[m[1]]:match(m[2]) ~= nil end
  end
end

function M.create(ctx, row)
  local b = ctx.body or {}
  local values = util.deep_copy(row.defaults or {})
  for _, name in ipairs(writable(ctx, row)) do
    if b[name] ~= nil then values[name] = b[name] end
  end
  for k, v in pairs(row.from_store or {}) do values[k] = store_value(ctx.store, v) end
  derive(values, row, b)
  -- number = { field, from = n }: one more than the highest number the
  -- collection holds in field, and than n
  if row.number then
    local f, top = row.number[1], row.number.from or 0
    for _, o in coll_of(ctx, row):each() do
      if type(o[f]) == "number" and o[f] > top then top = o[f] end
    end
    values[f] = top + 1
  end
  return row.status or 200, ctx.store:create(row.coll or ctx.entity.lua_name, values)
end

function M.update(ctx, row)
  local obj, msg = target(ctx, row)
  if not obj then return err(404, msg) end
  local b = ctx.body or {}
  for _, name in ipairs(writable(ctx, row)) do
    if b[name] ~= nil then obj[(row.rename or {})[name] or name] = b[name] end
  end
  derive(obj, row, b)
  -- clears = { flag = { fields } }: a true body flag sets the fields to null
  for flag, fields in pairs(row.clears or {}) do
    if b[flag] == true then
      for _, f in ipairs(fields) do obj[f] = null end
    end
  end
  touch(ctx, obj, row)
  return 200, obj
end

function M.delete(ctx, row)
  local obj = coll_of(ctx, row):remove(key_of(ctx, row))
  if not obj then return err(404, label(ctx, row)) end
  for _, c in ipairs(row.cascade or {}) do
    local key = obj[c.key or "id"]
    ctx.store:coll(c[1]):remove_if(function(o) return o[c[2]] == key end)
  end
  return 200, obj
end

-- Set fields to constants (json.null clears a nullable one; unset lists
-- fields to leave out, for those that are optional but never null; stamp
-- sets date-times that many seconds from now).
local function apply(obj, row)
  for k, v in pairs(row.set or {}) do obj[k] = v end
  for _, k in ipairs(row.unset or {}) do obj[k] = nil end
  for k, secs in pairs(row.stamp or {}) do
    obj[k] = util.iso(math.floor((require("socket").gettime() + secs) * 1000))
  end
end

function M.action(ctx, row)
  local obj, msg = target(ctx, row)
  if not obj then return err(404, msg) end
  apply(obj, row)
  for k, field in pairs(row.from_body or {}) do obj[k] = ctx.body[field] end
  touch(ctx, obj, row)
  return row.status or 200, obj
end

-- The objects a request names by key: keys = body field holding the list.
-- With remove, they are deleted and the answer is their array; otherwise
-- `set` applies and the answer lists found/missing keys under the names
-- row.found / row.missing.
function M.bulk(ctx, row)
  local coll = coll_of(ctx, row)
  local found, missing = json.array({}), json.array({})
  for _, key in ipairs(ctx.body[row.keys]) do
    local obj = row.remove and coll:remove(key) or coll:get(key)
    if obj and not row.remove then apply(obj, row) end
    local into = obj and found or missing
    into[#into + 1] = row.remove and obj or key
  end
  if row.remove then return 200, found end
  return 200, { [row.found] = found, [row.missing] = missing }
end

-- Every object the filters (from the path parameters) keep: set applies,
-- the answer is row.value; none = the 404 message when there is none.
function M.set_where(ctx, row)
  local pred = M.filter(ctx, row.filters, ctx.params) or function() return true end
  local n = 0
  for _, o in coll_of(ctx, row):each() do
    if pred(o) then
      apply(o, row)
      n = n + 1
    end
  end
  if n == 0 then return err(404, row.none) end
  return 200, util.deep_copy(row.value)
end

-- Remove what the query's filters keep; the answer is the removed array.
-- Remove what the filters keep, at most the request's `limit` (the name of
-- the value holding it); the answer is the removed array, or
-- { count = n } with answer = "count".
function M.delete_where(ctx, row)
  local src = source(ctx, row)
  local keep = M.filter(ctx, row.filters, src) or function() return true end
  local limit, n = row.limit and src[row.limit], 0
  if limit == null then limit = nil end
  local gone = coll_of(ctx, row):remove_if(function(o)
    if (limit and n >= limit) or not keep(o) then return false end
    n = n + 1
    return true
  end)
  if row.answer == "count" then return 200, { count = #gone } end
  return 200, json.array(gone)
end

-- A copy: every field but the identity ones, then `set`, then the body's
-- `from_body` fields; name = { body = field, suffix = text } names the copy.
local IDENTITY = { "id", "timestamp_created", "timestamp_updated" }

function M.copy(ctx, row)
  local src, msg = target(ctx, row)
  if not src then return err(404, msg) end
  local values, b = util.deep_copy(src), ctx.body or {}
  for _, k in ipairs(IDENTITY) do values[k] = nil end
  apply(values, row)
  for _, k in ipairs(row.from_body or {}) do values[k] = b[k] end
  if row.name then values.name = (row.name.body and b[row.name.body]) or (src.name .. row.name.suffix) end
  return 200, ctx.store:create(row.coll or ctx.entity.lua_name, values)
end

-- Every object of the collection, as a plain array.
function M.all(ctx, row)
  local out = json.array({})
  for _, o in coll_of(ctx, row):each() do out[#out + 1] = o end
  return 200, out
end

function M.count(ctx, row)
  local pred = M.filter(ctx, row.filters, ctx.query, coll_of(ctx, row))
  return 200, { count = coll_of(ctx, row):count(pred or nil) }
end

-- Background jobs ----------------------------------------------------------------------
-- A job is pending, then in progress, and succeeds (or fails, with the
-- fail_jobs switch) after settings.job_steps reads; the operation that
-- starts one passes what happens when it succeeds.

--- Create a background job; `finish(job, store)` runs when it succeeds.
function M.job(ctx, jtype, entity_type, entity_id, data, finish)
  local store = ctx.store
  local job = store:create("background_jobs", {
    type = jtype, entity_type = entity_type or "workspace",
    entity_id = entity_id or store.workspace_id,
    data = data or {}, progress = 0, status = "pending",
  })
  store.job_finish = store.job_finish or {}
  store.job_finish[job.id] = finish
  store.job_polls = store.job_polls or {}
  store.job_polls[job.id] = 0
  return job
end

--- Advance a job by one poll; terminal after settings.job_steps polls.
local function advance_job(ctx, job)
  local store = ctx.store
  if job.status == "success" or job.status == "failed" or job.status == "cancelled" then return job end
  local polls = (store.job_polls[job.id] or 0) + 1
  store.job_polls[job.id] = polls
  local steps = math.max(1, math.tointeger(ctx.settings.job_steps) or 1)
  if polls >= steps then
    if ctx.settings.fail_jobs then
      job.status = "failed"
      job.progress = math.floor(100 * (steps - 1) / steps)
      job.data = job.data or {}
      job.data.error = "Job failed (mock fail_jobs switch)"
    else
      local finish = store.job_finish and store.job_finish[job.id]
      if finish then
        local extra = finish(job, store)
        if type(extra) == "table" then
          for k, v in pairs(extra) do job.data[k] = v end
        end
      end
      job.status = "success"
      job.progress = 100
    end
  else
    job.status = "in-progress"
    job.progress = math.floor(100 * polls / steps)
  end
  job.updated_at = store:now_iso()
  return job
end

-- kind = "job": reading a job advances it; data_fields picks the keys of
-- its data the answer shows.
function M.job_status(ctx, row)
  local job, msg = target(ctx, row)
  if not job then return err(404, msg) end
  advance_job(ctx, job)
  if not ctx.query.data_fields then return 200, job end
  local want, copy, data = set_of(ctx.query.data_fields), util.shallow_copy(job), {}
  for k, v in pairs(job.data or {}) do if want[k] then data[k] = v end end
  copy.data = data
  return 200, copy
end

-- Tallies ----------------------------------------------------------------------------
-- A condition names what an object must be to be counted: "*" anything,
-- "f" field f set and not false, "!f" not, "f=1,2" f is 1 or 2; terms
-- joined by "&" must all hold. Compiled once per text.

local conditions = {}

local function term(neg, field, values)
  local set
  if values ~= "" then
    -- numbers under their numeric key too, so no tostring per object
    set = set_of(values)
    for part in pairs(set_of(values)) do
      if tonumber(part) then set[tonumber(part)] = true end
    end
  end
  if set then return function(o) return (set[o[field]] == true) ~= neg end end
  return function(o)
    local v = o[field]
    return (v ~= nil and v ~= null and v ~= false) ~= neg
  end
end

local function condition(text)
  local c = conditions[text]
  if c then return c end
  local terms = {}
  for t in text:gmatch("[^&]+") do
    local neg, field, values = t:match("^(!?)([%w_]+)=?(.*)$")
    if field then terms[#terms + 1] = term(neg == "!", field, values) end
  end
  c = #terms == 1 and terms[1] or function(o)
    for i = 1, #terms do if not terms[i](o) then return false end end
    return true
  end
  conditions[text] = c
  return c
end

-- seen: the counts of this group so far, by condition
local function how_many(cond, list, seen)
  if seen[cond] then return seen[cond] end
  local holds, n = condition(cond), 0
  if cond == "*" then n = #list else
    for i = 1, #list do if holds(list[i]) then n = n + 1 end end
  end
  seen[cond] = n
  return n
end

local function counts(spec, list, out, seen)
  for k, c in pairs(spec) do
    if type(c) == "number" then out[k] = c
    elseif type(c) == "table" then out[k] = counts(c, list, {}, seen)
    else out[k] = how_many(c, list, seen) end
  end
  return out
end

local function percent(n, d) return d > 0 and math.floor(10000 * n / d + 0.5) / 100 or 0 end

-- The fields a tally row (or one of its flags) writes for one group.
local function tally_fields(part, list, src, out, seen)
  counts(part.count or {}, list, out, seen)
  for k, c in pairs(part.percent or {}) do out[k] = percent(how_many(c, list, seen), #list) end
  for k, p in pairs(part.echo or {}) do
    local v = src[p]
    out[k] = v == nil and null or v
  end
  return out
end

local function tally_row(row, list, src, out)
  local seen = {}
  tally_fields(row, list, src, out, seen)
  for flag, part in pairs(row.flags or {}) do
    if src[flag] == true then tally_fields(part, list, src, out, seen) end
  end
  return out
end

-- The groups of a tally: one per value of the request list `each`, or
-- one per distinct value of the `by` fields, in key order.
local function groups_of(row, list, src)
  local out = {}
  if row.each then
    local param, field = row.each[1], row.each[2]
    for _, v in ipairs(src[param]) do
      local g = { fields = { [field] = v } }
      for _, o in ipairs(list) do if o[field] == v then g[#g + 1] = o end end
      out[#out + 1] = g
    end
    return out
  end
  local names, fields = {}, {}
  for i, b in ipairs(row.by) do
    names[i], fields[i] = type(b) == "table" and b[1] or b, type(b) == "table" and b[2] or b
  end
  local by, keys, parts = {}, {}, {}
  for _, o in ipairs(list) do
    for i = 1, #fields do parts[i] = tostring(o[fields[i]]) end
    local k = #parts == 1 and parts[1] or table.concat(parts, "\0")
    local g = by[k]
    if not g then
      g = { fields = {} }
      for i = 1, #fields do g.fields[names[i]] = o[fields[i]] end
      by[k], keys[#keys + 1] = g, k
    end
    g[#g + 1] = o
  end
  table.sort(keys)
  for i, k in ipairs(keys) do out[i] = by[k] end
  return out
end

-- kind = "tally": counts over the objects the filters keep, one answer or
-- one row per group (by / each); see behaviour.lua for the row's fields.
function M.tally(ctx, row)
  local src, coll = source(ctx, row), coll_of(ctx, row)
  local pred, msg = M.filter(ctx, row.filters, src, coll)
  if pred == nil then return err(400, (row.src == "body" and "body/" or "querystring/") .. msg) end
  local list = {}
  for _, o in coll:each() do if not pred or pred(o) then list[#list + 1] = o end end
  if not (row.by or row.each) then return 200, tally_row(row, list, src, {}) end
  local rows = json.array({})
  for i, g in ipairs(groups_of(row, list, src)) do rows[i] = tally_row(row, g, src, g.fields) end
  if row.wrap then return 200, { [row.wrap] = rows } end
  return 200, rows
end

-- A fixed answer's placeholders: { ["$store"] = "workspace.name" } is a
-- store value; { ["$count"] = coll } the collection's size, or from = n
-- minus it.
local function filled(ctx, v)
  if type(v) ~= "table" then return v end
  if v["$store"] then return store_value(ctx.store, v["$store"]) end
  if v["$count"] then
    local n = ctx.store:coll(v["$count"]):count()
    return v.from and v.from - n or n
  end
  local out = setmetatable({}, getmetatable(v))
  for k, x in pairs(v) do out[k] = filled(ctx, x) end
  return out
end

function M.static(ctx, row)
  return row.status or 200, filled(ctx, row.value)
end

M.view = views.view

--- Run the row's checks, then its kind.
function M.run(ctx, row)
  local status, msg = run_checks(ctx, row)
  if status then return err(status, msg) end
  return M[row.kind](ctx, row)
end

M.set_of = set_of
M.present = present
return M
