--- The builder: turns the entity data (`instantly.entities.*`) into the
-- methods of a client. Adding an endpoint is adding a row to the catalog.
--
-- What it builds, per client:
--
-- * an entity object per entity, `client.<lua_name>` (e.g.
--   `client.campaigns`), with one method per operation under the catalog's
--   `lua_method`, an iterator per paginated operation (`list` -> `each`,
--   `list_<x>` -> `each_<x>`), `help([method])` and a `docs` table;
-- * a record metatable per entity: objects the API returns are plain data
--   tables whose metatable gives them the methods of every operation of
--   that entity whose first path parameter is a field of the record
--   (`campaign:activate()`, `account:pause()`, `webhook:test()`), plus
--   iterators over related collections (`campaign:leads()`: a paginated
--   `list` of another entity with a parameter named `<entity>`,
--   `<entity>_id`, `parent_<entity>`, or for a name of several words its
--   last word plus `_id`: `lead_list:leads()` filters on `list_id`). A method whose name is also a
--   field of the entity's schema is left out (the field would hide it).
--
-- Calling convention of every generated method:
--
--     entity:method(path_arg1, ..., params, opts)   -- an operation with parameters
--     entity:method(path_arg1, ..., opts)           -- an operation without any
--
-- path arguments are positional in path order (strings, percent-encoded
-- for you, checked against the catalog's format: `uuid`, `email`; `.` and
-- `..` are refused); `params` is one table of query and body parameters
-- (routed by the catalog; may be nil); `opts` is the per-call options
-- table (`timeout`, `connect_timeout`, `max_retries`, `headers`; may be
-- nil), always the last argument. For an operation without parameters
-- `(path_args..., nil, opts)` is accepted too.
--
-- A paginated method `list` also gives `each` (an `Iterator`: a failed
-- page ends the loop and leaves the error in `it.err`) and `all` (every
-- item in one array, capped by `params.max`, or `nil, err`).
-- On a record the path arguments taken from the record are left out:
-- `campaign:update{name = "x"}` is `client.campaigns:update(campaign.id, {name = "x"})`.
--
-- Extension modules (for other parts of the SDK and for users). The SDK's
-- own live in `lua/instantly/workflows/extra/<entity>.lua` and are listed, with the
-- entities, in `instantly.entities.extensions` (tools/gen-entities.lua
-- writes the list from the files present), so making a client never
-- searches `package.path`. A user adds extensions only through the
-- `extensions` option of `instantly.new`, a table mapping an entity's lua
-- name (or `"client"`) to a module of the same shape. A module is
--
--     { entity = { name = function(entity, ...) end, ... },
--       record = { name = function(record, ...) end, ... } }
--
-- and each function becomes a method of `client.N` or of N's records.
-- A module may also have `wrap = { name = function(orig, entity, ...) end }`
-- to extend an existing entity method: the function gets the original
-- method first and decides when to hand over to it (the SDK's own
-- modules use none: one method name keeps one meaning). The `client` module
-- has `{ client = { name = function(client, ...) end } }` for client-level
-- methods. A name that is already taken raises when the client is made
-- (`instantly.new`), as does a wrap of a missing method. From inside an
-- extension:
--
-- * an entity method reaches the client as `entity.client` (and the other
--   entities as `entity.client.leads`, ...); `entity.lua_name` and
--   `entity.definition` describe the entity;
-- * a record method reaches its client with `instantly.client_of(record)`
--   and its entity object with `instantly.entity_of(record)` (both read the
--   record's metatable fields `__client` and `__entity`);
-- * all of them call ordinary operations (`entity:get(id)`,
--   `client.background_jobs:get(job.id)`), which follow the same
--   pipeline (rate limiter, retries, scheduler hook).
-- @module instantly.request.builder

local core = require "instantly.core"
local validate = require "instantly.request.validate"
local pipeline = require "instantly.request.pipeline"
local Err = require "instantly.request.error"
local ratelimit = require "instantly.request.ratelimit"
local catalog = require "instantly.entities"
local record = require "instantly.request.record"

local type, pairs, ipairs, error, tostring, select, next = type, pairs, ipairs, error, tostring, select, next
local setmetatable, getmetatable, require, rawget = setmetatable, getmetatable, require, rawget
local concat, sort = table.concat, table.sort
local mtype = math.type

local null = core.null
local route, escape = validate.route, validate.escape
local send, decode, judge = pipeline.send, pipeline.decode, pipeline.judge
local attempts_of, attached, LAZY = pipeline.attempts, pipeline.attached, pipeline.LAZY
local running = coroutine.running
local json_encode, record_decode, plain_decode = core.json_encode, record.decode, pipeline.decode_plain

local M = {}

local function snake(name)
  return (name:lower():gsub("[^%w]+", "_"):gsub("^_+", ""):gsub("_+$", ""))
end
M.snake = snake

--- The iterator name of a paginated method: `list` -> `each`,
-- `list_accounts` -> `each_accounts`, anything else `x` -> `each_x`.
-- @tparam string lua_method
-- @treturn string
function M.iterator_name(lua_method)
  if lua_method == "list" then return "each" end
  local rest = lua_method:match("^list_(.+)$")
  return "each_" .. (rest or lua_method)
end

-------------------------------------------------------------------------------
-- Per-process operation data (immutable, cached)
-------------------------------------------------------------------------------

local defs_cache

--- The entity definitions in catalog order, and by name.
-- @treturn table array of entity definitions
-- @treturn table map entity `name` -> definition
function M.definitions()
  if defs_cache then return defs_cache.list, defs_cache.by_name end
  local list, by_name = {}, {}
  for i, n in ipairs(catalog.entities) do
    local d = require("instantly.entities." .. n)
    list[i] = d
    by_name[d.name] = d
  end
  defs_cache = { list = list, by_name = by_name }
  return list, by_name
end

-- Making a client and calling one entity loads only what that needs:
-- the entity files are the bulk of the SDK (parsing all of them costs
-- more than a thousand small requests), so one is required when first
-- used, another entity's when an operation answers with its items (found
-- by the index's `lua_names`), and everything (`definitions`) only for
-- what spans the catalog (relations, extension checks).
local catalog_set

-- The set of the catalog's lua names (entity files), made once.
local function entity_set()
  if not catalog_set then
    catalog_set = {}
    for _, n in ipairs(catalog.entities) do catalog_set[n] = true end
  end
  return catalog_set
end

--- The definition of the entity whose lua name is `lua_name`, or nil
-- when the catalog has none.
-- @tparam string lua_name
-- @treturn table|nil
function M.definition(lua_name)
  if type(lua_name) ~= "string" or not entity_set()[lua_name] then return nil end
  local d = require("instantly.entities." .. lua_name)
  if d.lua_name ~= lua_name then
    error("catalog: entity module " .. lua_name .. " has lua_name " .. tostring(d.lua_name))
  end
  return d
end

-- The definition of the entity named `name` (the catalog's `name`, as in
-- a response's `item`); `near` is a definition that is likely it.
local function def_named(name, near)
  if near and near.name == name then return near end
  local lua_name = catalog.lua_names and catalog.lua_names[name]
  local d = lua_name and M.definition(lua_name)
  if d and d.name == name then return d end
  local _, by_name = M.definitions()
  return by_name[name]
end

local function type_text(p)
  local t = p.type
  if t == "array" and p.items then t = p.items .. "[]" end
  if p.format then t = t .. " (" .. p.format .. ")" end
  if p.enum then
    local e = {}
    for i, v in ipairs(p.enum) do e[i] = type(v) == "string" and ("%q"):format(v) or tostring(v) end
    t = t .. " one of " .. concat(e, ", ")
  end
  if p.nullable then t = t .. ", or instantly.null" end
  if p.min or p.max then t = t .. " " .. tostring(p.min or "") .. ".." .. tostring(p.max or "") end
  return t
end

local function returns_text(op, def)
  local r = op.response
  local item = r.item and def_named(r.item, def)
  local rec = item and (item.lua_name .. " record") or "table"
  if r.kind == "list" then
    return "page {items = {" .. rec .. "...}, next_starting_after}, status, headers"
  elseif r.kind == "array" then
    return "array of " .. rec .. ", status, headers"
  elseif r.kind == "job" then
    return "background_jobs record (poll it until done), status, headers"
  elseif r.kind == "text" then
    return "string (the raw text body), status, headers"
  elseif r.kind == "empty" then
    return "true (HTTP " .. tostring(r.status) .. ", no body), status, headers"
  elseif r.status == 202 then
    return "the accepted response (decoded body, or true when empty), 202, headers"
  end
  return rec .. ", status, headers"
end

--- Documentation of one operation, as a table (used by `help`, the
-- coverage spec and the docs generator).
-- @tparam table def entity definition
-- @tparam table op operation
-- @treturn table `{name, summary, signature, http, params, returns, iterator, rate_limit, async, scopes, id}`
function M.doc_for(def, op)
  local params = {}
  for _, p in ipairs(op.path_params) do
    params[#params + 1] = { name = p.name, where = "path", type = type_text(p), required = true,
                            description = p.description }
  end
  for _, p in ipairs(op.query or {}) do
    params[#params + 1] = { name = p.name, where = "query", type = type_text(p), required = p.required or false,
                            description = p.description }
  end
  for _, p in ipairs(op.body and op.body.fields or {}) do
    params[#params + 1] = { name = p.name, where = "body", type = type_text(p), required = p.required or false,
                            description = p.description }
  end
  return {
    id = op.id, name = op.lua_method, summary = op.summary,
    signature = "client." .. def.lua_name .. ":" .. op.lua_method .. M.arglist(op),
    http = op.method .. " " .. catalog.path_prefix .. op.path,
    params = params,
    returns = returns_text(op, def),
    iterator = op.paginated and M.iterator_name(op.lua_method) or nil,
    rate_limit = op.rate_limit, async = op.async, scopes = op.scopes,
    notes = op.response.notes, evidence = op.evidence,
    unconfirmed = op.unconfirmed and (op.evidence_note or "no public source built from the live spec lists it.") or nil,
  }
end

--- The argument list of a generated method as documented everywhere
-- (`help`, reference, stubs): path arguments, then `params` when the
-- operation has any (in brackets unless one is required), then the
-- optional `opts`: `(id[, opts])`, `([params][, opts])`, `(params[, opts])`.
-- @tparam table op operation
-- @treturn string
function M.arglist(op)
  local args = {}
  for _, p in ipairs(op.path_params) do args[#args + 1] = p.name end
  local n, required = 0, false
  for _, p in ipairs(op.query or {}) do n = n + 1; required = required or p.required end
  for _, p in ipairs(op.body and op.body.fields or {}) do n = n + 1; required = required or p.required end
  local head = concat(args, ", ")
  if n > 0 then
    if required then
      head = head .. (head ~= "" and ", " or "") .. "params"
    else
      head = head .. (head ~= "" and "[, params]" or "[params]")
    end
  end
  return "(" .. head .. (head ~= "" and "[, opts]" or "[opts]") .. ")"
end

local function iterator_doc(def, op)
  local d = M.doc_for(def, op)
  local name = M.iterator_name(op.lua_method)
  return {
    id = op.id, name = name,
    summary = "Iterate every item of '" .. op.summary .. "' across all pages (a failed page ends the loop; " ..
      "check it.err)",
    signature = "local it = client." .. def.lua_name .. ":" .. name .. M.arglist(op) ..
      "; for item in it do ... end; if it.err then ... end",
    http = d.http, params = d.params,
    returns = "an instantly.Iterator yielding one record per item; after the loop, it.err is the " ..
      "instantly.Error that ended it early (nil when every page arrived)",
    rate_limit = op.rate_limit, scopes = op.scopes,
  }
end

local function collector_doc(def, op)
  local d = M.doc_for(def, op)
  local name = M.collector_name(op.lua_method)
  local params = {}
  for i, p in ipairs(d.params) do params[i] = p end
  params[#params + 1] = { name = "max", where = "sdk", type = "integer", required = false,
                          description = "at most this many items (default 10000); more is a 'limit' error" }
  return {
    id = op.id, name = name,
    summary = "Every item of '" .. op.summary .. "' in one array (capped by max)",
    signature = "client." .. def.lua_name .. ":" .. name .. M.arglist(op),
    http = d.http, params = params,
    returns = "array of records, or nil, err (a failed page, or more than max items: kind 'limit')",
    rate_limit = op.rate_limit, scopes = op.scopes,
  }
end

-- Per-operation data that does not depend on the client.
local shared_cache = setmetatable({}, { __mode = "k" })

local function shared_for(def, op)
  local s = shared_cache[op]
  if s then return s end
  local item = op.response.item and def_named(op.response.item, def)
  local error_field = false
  -- An operation whose object declares an `error` field returns it as data.
  for _, f in ipairs((item or def).fields) do if f.name == "error" then error_field = true end end
  -- "/campaigns/{id}/activate" -> {"/campaigns/", 1, "/activate"}
  local segs = {}
  local pos = 1
  local idx = 0
  local path = op.path
  while true do
    local a, b, name = path:find("{([^}]+)}", pos)
    if not a then break end
    segs[#segs + 1] = path:sub(pos, a - 1)
    idx = idx + 1
    if op.path_params[idx] == nil or op.path_params[idx].name ~= name then
      error("catalog: " .. op.id .. ": path parameter order does not match " .. path)
    end
    segs[#segs + 1] = idx
    pos = b + 1
  end
  segs[#segs + 1] = path:sub(pos)
  local path_formats = {}
  for i, p in ipairs(op.path_params) do path_formats[i] = p.format or false end
  local checker = validate.compile(op)
  -- A call without parameters routes to no query and (with a body) an
  -- empty object whatever the validation mode, unless a parameter is
  -- required: such calls skip the routing (see invoke).
  local nil_ok = #checker.required == 0 and not op.unconfirmed
  local nil_body
  if nil_ok and op.body ~= nil then
    local _, b = route(checker, nil, "off")
    nil_body = assert(core.json_encode(b))
  end
  s = {
    label = def.lua_name .. ":" .. op.lua_method,
    method = op.method, op = op, def = def,
    checker = checker,
    segs = segs, npath = idx, path_formats = path_formats,
    no_params = next(checker.params) == nil,
    has_body = op.body ~= nil,
    nil_ok = nil_ok, nil_body = nil_body,
    kind = op.response.kind, item = item,
    error_field = error_field,
    -- Why the operation is in doubt (catalog `evidence_note`), or nil.
    unconfirmed = op.unconfirmed and (op.evidence_note or "no public source built from the live spec lists it.") or nil,
  }
  shared_cache[op] = s
  return s
end

-------------------------------------------------------------------------------
-- Calling an operation
-------------------------------------------------------------------------------

local OPTS = { timeout = "number", connect_timeout = "number", max_retries = "number", headers = "table",
               validate = "string" }

--- What is wrong with one header, or nil: a name that is not an HTTP
-- token, or a name or value with CR, LF or NUL (which would end the
-- header early and let the rest of the value become headers of its own).
-- @param name
-- @param value
-- @treturn string|nil
function M.header_problem(name, value)
  if type(name) ~= "string" or type(value) ~= "string" then return "must map strings to strings" end
  if not name:find("^[%w!#$%%&'*+%-.^_`|~]+$") then
    return "has a header name that is not an HTTP token: \"" ..
      name:gsub("[%c\"\\]", function(ch) return ("\\%d"):format(ch:byte()) end) .. "\""
  end
  if value:find("[\0\r\n]") then
    return ("has a CR, LF or NUL in the value of header '%s'"):format(name)
  end
  return nil
end
local header_problem = M.header_problem

local function check_opts(label, opts, level, no_params)
  if type(opts) ~= "table" then
    error("instantly: " .. label .. ": options must be a table, got " .. type(opts), level + 1)
  end
  for k, v in pairs(opts) do
    local want = OPTS[k]
    if not want then
      error("instantly: " .. label .. ": unknown option '" .. tostring(k) ..
        "' (known: connect_timeout, headers, max_retries, timeout, validate)" ..
        (no_params and "; this operation takes no parameters: the table after its path arguments is the options"
         or ""), level + 1)
    end
    if type(v) ~= want then
      error("instantly: " .. label .. ": option '" .. k .. "' must be a " .. want .. ", got " .. type(v), level + 1)
    end
    if k == "max_retries" and (mtype(v) ~= "integer" or v < 0) then
      error("instantly: " .. label .. ": option 'max_retries' must be an integer >= 0", level + 1)
    end
    if k == "validate" and not validate.MODES[v] then
      error("instantly: " .. label .. ": option 'validate' must be \"strict\", \"warn\" or \"off\", got " ..
        ("%q"):format(v), level + 1)
    end
    if (k == "timeout" or k == "connect_timeout") and (v ~= v or v <= 0) then
      error("instantly: " .. label .. ": option '" .. k .. "' must be > 0", level + 1)
    end
    if k == "headers" then
      for hk, hv in pairs(v) do
        local problem = header_problem(hk, hv)
        if problem then error("instantly: " .. label .. ": option 'headers' " .. problem, level + 1) end
        if hk:lower() == "authorization" then
          error("instantly: " .. label .. ": option 'headers' must not set authorization", level + 1)
        end
      end
    end
  end
end
M.check_opts = check_opts

local function merge_headers(base, extra)
  local h = {}
  for k, v in pairs(base) do h[k] = v end
  for k, v in pairs(extra) do h[k:lower()] = v end
  return h
end
M.merge_headers = merge_headers

-- Formats a path argument must have, from the catalog's `format`. A
-- value that fails is refused before anything is sent: a wrong id can
-- only be a 404, and a value chosen by someone else (a CSV, a webhook)
-- must not be able to steer the request.
local HEX = "%x%x%x%x"
local UUID = "^" .. HEX .. HEX .. "%-" .. HEX .. "%-" .. HEX .. "%-" .. HEX .. "%-" .. HEX .. HEX .. HEX .. "$"
M.PATH_FORMATS = {
  uuid = function(v) return v:find(UUID) ~= nil end,
  email = function(v) return v:find("^[^%s@%c]+@[^%s@%c]+$") ~= nil end,
}
local PATH_FORMATS = M.PATH_FORMATS

local function path_misuse(cop, i, what, level)
  error("instantly: " .. cop.label .. ": path parameter '" .. cop.checker.path_params[i] ..
    "' (argument #" .. i .. ") " .. what, level + 1)
end

-- One path argument, percent-encoded (every byte but the unreserved ones,
-- so `/`, `?`, `#`, `%`, CR/LF and NUL cannot change the request line).
-- `.` and `..` are refused: the transport removes dot segments (RFC 3986
-- 5.2.4), so `campaigns:delete("..")` would delete `/api/v2/`, and servers
-- that decode `%2E` before routing would do the same with the encoded form.
local function path_arg(cop, i, v, level)
  local tv = type(v)
  if tv == "string" then
    if v == "" then path_misuse(cop, i, "must not be empty", level + 1) end
    if v == "." or v == ".." then
      path_misuse(cop, i, "must not be '" .. v .. "' (a dot segment would address another endpoint)", level + 1)
    end
    local format = cop.path_formats[i]
    if format and PATH_FORMATS[format] and not PATH_FORMATS[format](v) then
      path_misuse(cop, i, ("must be a%s %s, got %q"):format(format == "uuid" and "" or "n", format,
        #v > 60 and v:sub(1, 60) .. "..." or v), level + 1)
    end
    return escape(v)
  elseif mtype(v) == "integer" and not cop.path_formats[i] then
    return tostring(v)
  end
  path_misuse(cop, i, "must be a string, got " .. (v == nil and "nothing" or tv), level + 1)
end

-- Build the path from the operation's segments and the path arguments.
local function build_path(cop, level, a1, ...)
  local segs = cop.segs
  if cop.npath == 0 then return segs[1] end
  if cop.npath == 1 then return segs[1] .. path_arg(cop, 1, a1, level + 1) .. segs[3] end
  local parts, vals = {}, { a1, ... }
  for i = 1, #segs do
    local s = segs[i]
    parts[i] = type(s) == "number" and path_arg(cop, s, vals[s], level + 1) or s
  end
  return concat(parts)
end

-- Warnings (validation under "warn", unconfirmed operations) go to the
-- client's `on_warning` hook, or to Lua's own `warn` (shown when warnings
-- are on: `lua -W`, or `warn("@on")`). Each text is reported once per
-- client; the memory of what was said is bounded.
local function warn_once(ctx, text)
  local seen = ctx.warned
  if seen[text] then return end
  if seen.n < 1000 then
    seen[text] = true
    seen.n = seen.n + 1
  end
  local hook = ctx.on_warning
  -- looked up at the call, so a program (or a spec) may replace warn
  if hook then hook(text) else _G.warn("instantly: ", text) end
end
M.warn_once = warn_once

local function route_for(ctx, cop, params, opts, level)
  local mode = opts and opts.validate or ctx.validate
  local query, body, msg, warnings, text = route(cop.checker, params, mode)
  if msg then error("instantly: " .. cop.label .. ": " .. msg, level + 1) end
  if warnings then
    for i = 1, #warnings do warn_once(ctx, cop.label .. ": " .. warnings[i]) end
  end
  if cop.unconfirmed then
    warn_once(ctx, cop.label .. ": " .. cop.op.method .. " " .. cop.op.path ..
      " is unconfirmed: " .. cop.unconfirmed .. " It may answer 404 in production.")
  end
  return query, body, text
end

local finish

-- The one way every generated method, record method, page and iterator
-- calls the API. `path` is the operation's path with its arguments in
-- (without the API prefix). `level` is the stack level (relative to this
-- function's caller) that misuse errors blame.
local function invoke(_, cop, path, params, opts, level)
  if opts ~= nil then check_opts(cop.label, opts, level + 1, cop.no_params) end
  local query, text
  if params == nil and cop.nil_ok then
    text = cop.nil_body
  else
    local body
    -- text: the body checked and encoded in one walk, when route could
    query, body, text = route_for(cop.ctx, cop, params, opts, level + 1)
    if cop.has_body and not text then
      local err
      text, err = json_encode(body)
      if not text then
        error("instantly: " .. cop.label .. ": cannot encode parameters: " .. tostring(err), level + 1)
      end
    end
  end
  local headers = cop.headers
  if opts and opts.headers then headers = merge_headers(headers, opts.headers) end
  local url, full
  if path == cop.path0 then
    url, full = cop.url0, cop.full0
  else
    local ctx = cop.ctx
    url, full = ctx.base .. path, ctx.prefix .. path
  end
  if query and query ~= "" then url = url .. "?" .. query end
  return finish(cop, url, full, text, headers, opts)
end
M.invoke = invoke

-- The rest of a call once its URL, path (as errors show it), body text
-- and headers are known: send, decode, shape the records. A method
-- called without parameters or options comes straight here (see
-- method_for).
function finish(cop, url, full, text, headers, opts)
  local pipe = cop.pipe
  local dec = cop.decoder
  local status, rtext, rheaders, attempts, decoded
  local req = pipe.fast_decode
  if req and not (text or opts) then
    -- pipeline.send's short way, inline (the commonest call: no body, no
    -- options; see pipeline.send), with the answer's decoder: the core
    -- decodes a 2xx body itself (`decoded` true, `rtext` the value)
    req.method = cop.method
    req.url = url
    req.headers = headers
    req.decode = dec
    local map = attached.map
    local sched = map and map[running()]
    if sched then
      status, rtext, rheaders, decoded = sched:request(pipe.session, req)
    else
      status, rtext, rheaders, decoded = pipe.session:request(req)
    end
    if status then rheaders = setmetatable({ rheaders }, LAZY) end
    if status and status >= 200 and status < 300 then
      attempts = 1
    else
      status, rtext, rheaders, attempts = attempts_of(pipe, cop, url, full, text, headers, opts, sched, true,
                                                      status, rtext, rheaders)
      decoded = false
    end
  else
    status, rtext, rheaders, attempts = send(pipe, cop, url, full, text, headers, opts)
  end
  if not status then return nil, rtext end
  local v, msg, oom
  if decoded or type(rtext) == "table" then
    -- (a table: a scheduler that dropped the fourth value; text is a string)
    v = rtext
  elseif not dec or not rtext or rtext == "" or status == 204 then
    v, msg = decode(pipe, cop, url, full, status, rtext, rheaders, attempts)
    if v == nil then return nil, msg end
    return v, status, rheaders
  else
    -- pipeline.decode inline: a response that becomes records is decoded
    -- with its null members left out of its objects (record.decode)
    v, msg, oom = dec(rtext)
  end
  -- only a value that is not a table without an `error` member goes to
  -- judge (which reads the text only when there is no value)
  if type(v) ~= "table" or (v.error and not cop.error_field) then
    v, msg = judge(pipe, cop, url, full, status, rtext, rheaders, attempts, v, msg, oom)
    if v == nil then return nil, msg end
    if type(v) ~= "table" then return v, status, rheaders end
  end
  -- Records: each object is shaped (booleans, field names; see
  -- instantly.request.record), then given its entity's metatable.
  -- `__shape` is false for an entity with nothing to shape. (Inline,
  -- not a helper per record: a page has a hundred.)
  local mt = cop.item_mt
  if not mt then return v, status, rheaders end
  local shape = mt.__shape
  if not cop.many then -- one record
    if not getmetatable(v) then
      if shape then shape(v) end
      setmetatable(v, mt)
    end
    return v, status, rheaders
  end
  local items = v
  if cop.kind == "list" then items = v.items end
  if type(items) == "table" then
    for i = 1, #items do
      local it = items[i]
      if type(it) == "table" and not getmetatable(it) then
        if shape then shape(it) end
        setmetatable(it, mt)
      end
    end
  end
  return v, status, rheaders
end

-------------------------------------------------------------------------------
-- Pages and iterators
-------------------------------------------------------------------------------

local function copy(t)
  local o = {}
  if t then for k, v in pairs(t) do o[k] = v end end
  return o
end

local function has_cursor(page)
  local cur = page.next_starting_after
  local items = page.items
  return cur ~= nil and cur ~= null and cur ~= "" and type(items) == "table" and #items > 0
end

-- Cursor cycles (A -> B -> A) across a whole iteration, in bounded
-- memory: the last RECENT cursors (of at most RING_BYTES each) are
-- remembered exactly, so a short cycle is caught at its first repeat; any
-- other is caught by Brent's method (one saved cursor, re-saved at every
-- power of two), within about twice its length in pages. `seen` is
-- `{ring, set, pos, saved, power, lam}`.
local RECENT = 32

local function cursors_new()
  return { ring = {}, set = {}, pos = 0, saved = nil, power = 1, lam = 0 }
end

local function cursors_copy(d)
  local o = cursors_new()
  for k, v in pairs(d.ring) do o.ring[k] = v end
  for k, v in pairs(d.set) do o.set[k] = v end
  o.pos, o.saved, o.power, o.lam = d.pos, d.saved, d.power, d.lam
  return o
end

-- Cursors longer than this are left to Brent's method alone, so the ring
-- holds at most RECENT * RING_BYTES bytes whatever the server sends.
local RING_BYTES = 1024

-- Records `cur` as sent; false when it was sent before (a cycle).
local function cursors_add(d, cur)
  if type(cur) ~= "string" and type(cur) ~= "number" then return true end
  if d.set[cur] or cur == d.saved then return false end
  if type(cur) == "number" or #cur <= RING_BYTES then
    d.pos = d.pos % RECENT + 1
    local old = d.ring[d.pos]
    if old ~= nil then d.set[old] = nil end
    d.ring[d.pos], d.set[cur] = cur, true
  end
  d.lam = d.lam + 1
  if d.lam >= d.power then d.saved, d.power, d.lam = cur, d.power * 2, 0 end
  return true
end

local function cycle_error(cop, path, cur)
  local shown = tostring(cur)
  if #shown > 80 then shown = shown:sub(1, 80) .. "..." end
  return pipeline.new_error("api", {
    method = cop.method, path = cop.ctx.prefix .. path, url = cop.ctx.base .. path,
    message = "the server sent cursor '" .. shown .. "' again: its pages form a cycle; stopping",
  }, cop.ctx.key)
end

local Page = {}

--- The next page, `nil` when this was the last one, or `nil, err` (also
-- when the server sends a cursor this chain of pages has already used).
-- @treturn table|nil next page
-- @treturn instantly.Error|nil
function Page:next()
  local st = getmetatable(self).__state
  if not has_cursor(self) then return nil end
  local cur = self.next_starting_after
  local seen
  if st.seen then
    seen = cursors_copy(st.seen)
  else
    -- the first page of a chain: only the cursor it was asked with
    seen = cursors_new()
    if st.params and st.params.starting_after ~= nil then cursors_add(seen, st.params.starting_after) end
  end
  if not cursors_add(seen, cur) then return nil, cycle_error(st.cop, st.path, cur) end
  local params = copy(st.params)
  params.starting_after = cur
  local cop = st.cop
  local page, err = invoke(st.client, cop, st.path, params, st.opts, 2)
  if not page then return nil, err end
  return cop.make_page(page, st.client, cop, st.path, params, st.opts, seen)
end

--- Whether a next page may exist (a cursor and a non-empty page).
-- @treturn boolean
function Page:has_next()
  return has_cursor(self)
end

local function make_page(page, c, cop, path, params, opts, seen)
  if type(page) ~= "table" then return page end
  return setmetatable(page, {
    __index = Page, __name = "instantly.Page",
    __state = { client = c, cop = cop, path = path, params = params, opts = opts, seen = seen },
  })
end

--- An iteration over every item of a paginated operation, returned by
-- `each`, `each_<x>` and record relations (`campaign:leads()`). Use it in
-- a generic `for`; a failed page does not raise: the loop ends and the
-- error is in `it.err` (nil when every page arrived).
--
--     local it = client.leads:each{campaign = id}
--     for lead in it do print(lead.email) end
--     if it.err then return nil, it.err end
--
-- An error nobody read by the time the iteration is garbage-collected is
-- reported through Lua's warning system (`warn`, shown by `lua -W`).
-- @type Iterator
local Iterator = {}

--- Every remaining item in one array, or `nil, err`; at most `max` items
-- (default 10000): more than that is an error of kind `limit`, never a
-- silently shortened list.
-- @tparam[opt] integer max
-- @treturn table|nil items
-- @treturn instantly.Error|nil
function Iterator:collect(max)
  max = max or M.ALL_MAX
  local items = {}
  for item in self do
    if #items >= max then
      local st = rawget(self, 1)
      st.stop()
      return nil, Err.new("limit", {
        method = st.cop.method, path = st.cop.ctx.prefix .. st.path,
        message = "more than " .. max .. " items (pass a larger max, or iterate with " ..
          M.iterator_name(st.cop.op.lua_method) .. ")",
      })
    end
    items[#items + 1] = item
  end
  local err = self.err
  if err then return nil, err end
  return core.array(items)
end

M.ALL_MAX = 10000

local ITER_MT = {
  __name = "instantly.Iterator",
  __call = function(it) return rawget(it, 1).step() end,
  __index = function(it, k)
    if k == "err" then
      local st = rawget(it, 1)
      st.read = true
      return st.err
    end
    return Iterator[k]
  end,
  __gc = function(it)
    local st = rawget(it, 1)
    if st and st.err and not st.read then
      warn("instantly: an iteration stopped on an error nobody read (check it.err after the loop): ",
           tostring(st.err))
    end
  end,
}

-- The iteration over all pages: one page in memory at a time; stops on a
-- missing cursor or an empty page (never on a short page); a failed page,
-- a page without items, or a cursor that cycles ends it with the error in
-- `it.err` (the items of the page that brought the repeated cursor are
-- new, so they are yielded first).
local function iterate(c, cop, path, params, opts)
  local p = copy(params)
  local seen = cursors_new()
  if p.starting_after ~= nil then cursors_add(seen, p.starting_after) end
  local items, i, n = nil, 0, 0
  local st = { c = c, cop = cop, path = path, done = false }
  local function fail(err)
    st.done, st.err, st.read, items, i, n = true, err, false, nil, 0, 0
    return nil
  end
  function st.stop() st.done, items, i, n, st.pending = true, nil, 0, 0, nil end
  function st.step()
    while true do
      if i < n then
        i = i + 1
        local item = items[i]
        items[i] = nil
        return item
      end
      if st.pending then return fail(st.pending) end
      if st.done then return nil end
      local page, err = invoke(c, cop, path, p, opts, 1)
      if not page then return fail(err) end
      items = page.items
      if type(items) ~= "table" then
        return fail(pipeline.new_error("api", {
          method = cop.method, path = cop.ctx.prefix .. path, url = cop.ctx.base .. path,
          message = "a page without an 'items' array", body = page,
        }, cop.ctx.key))
      end
      i, n = 0, #items
      local cur = page.next_starting_after
      if n == 0 or cur == nil or cur == null or cur == "" then
        st.done = true
      elseif not cursors_add(seen, cur) then
        st.done, st.pending = true, cycle_error(cop, path, cur)
      else
        p.starting_after = cur
      end
    end
  end
  return setmetatable({ st }, ITER_MT)
end

-------------------------------------------------------------------------------
-- Building a client
-------------------------------------------------------------------------------

-- Where the options go: always the last argument. An operation without
-- parameters takes them right after its path arguments
-- (`campaign:pause{timeout = 5}`); a `nil` placeholder for the parameters
-- (`campaign:pause(nil, {timeout = 5})`) is accepted too.
local function params_opts(cop, a, b)
  if cop.no_params and b == nil then return nil, a end
  return a, b
end

local function method_for(c, ent, cop, paged)
  local label = cop.label
  local npath = cop.npath
  local function misuse()
    error("instantly: call it with a colon: client." .. label .. "(...)", 3)
  end
  local no_params = cop.no_params
  -- A call without parameters or options needs no checks and no routing
  -- when the operation requires no parameter (cop.nil_ok, see invoke):
  -- it goes straight to finish.
  local nil_ok, nil_body, headers = cop.nil_ok, cop.nil_body, cop.headers
  if npath == 0 and not paged then
    -- the commonest method: tail calls (so invoke blames level 1 for
    -- misuse: this function's frame is gone)
    local path = cop.segs[1]
    local url, full = cop.url0, cop.full0
    return function(self, params, opts)
      if self ~= ent then misuse() end
      if nil_ok and params == nil and opts == nil then return finish(cop, url, full, nil_body, headers) end
      if no_params and opts == nil then params, opts = nil, params end
      return invoke(c, cop, path, params, opts, 1)
    end
  elseif npath == 1 and not paged then
    local s1, s3 = cop.segs[1], cop.segs[3]
    local ctx = cop.ctx
    return function(self, id, params, opts)
      if self ~= ent then misuse() end
      local path = s1 .. path_arg(cop, 1, id, 2) .. s3
      if nil_ok and params == nil and opts == nil then
        return finish(cop, ctx.base .. path, ctx.prefix .. path, nil_body, headers)
      end
      if no_params and opts == nil then params, opts = nil, params end
      return invoke(c, cop, path, params, opts, 1)
    end
  elseif npath == 0 then
    local path = cop.segs[1]
    return function(self, params, opts)
      if self ~= ent then misuse() end
      if no_params and opts == nil then params, opts = nil, params end
      local a, b, d = invoke(c, cop, path, params, opts, 2)
      if paged and type(a) == "table" then a = make_page(a, c, cop, path, copy(params), opts) end
      return a, b, d
    end
  elseif npath == 1 then
    local s1, s3 = cop.segs[1], cop.segs[3]
    return function(self, id, params, opts)
      if self ~= ent then misuse() end
      local path = s1 .. path_arg(cop, 1, id, 2) .. s3
      if no_params and opts == nil then params, opts = nil, params end
      local a, b, d = invoke(c, cop, path, params, opts, 2)
      if paged and type(a) == "table" then a = make_page(a, c, cop, path, copy(params), opts) end
      return a, b, d
    end
  end
  return function(self, ...)
    if self ~= ent then misuse() end
    local path = build_path(cop, 2, ...)
    local params, opts = params_opts(cop, select(npath + 1, ...))
    local a, b, d = invoke(c, cop, path, params, opts, 2)
    if paged and type(a) == "table" then a = make_page(a, c, cop, path, copy(params), opts) end
    return a, b, d
  end
end

-- Misuse is reported at the call, not at the first page.
local function check_call(cop, params, opts, level)
  if opts ~= nil then check_opts(cop.label, opts, level + 1, cop.no_params) end
  local _, _, msg = route(cop.checker, params, opts and opts.validate or cop.ctx.validate)
  if msg then error("instantly: " .. cop.label .. ": " .. msg, level + 1) end
end

local function iterator_for(c, ent, cop)
  local npath = cop.npath
  return function(self, ...)
    if self ~= ent then
      error("instantly: call it with a colon: client." .. ent.lua_name .. ":" ..
        M.iterator_name(cop.op.lua_method) .. "(...)", 2)
    end
    local path = build_path(cop, 2, ...)
    local params, opts = params_opts(cop, select(npath + 1, ...))
    check_call(cop, params, opts, 2)
    return iterate(c, cop, path, params, opts)
  end
end

--- The collecting name of a paginated method: `list` -> `all`,
-- `list_accounts` -> `all_accounts`, anything else `x` -> `all_x`.
-- @tparam string lua_method
-- @treturn string
function M.collector_name(lua_method)
  if lua_method == "list" then return "all" end
  local rest = lua_method:match("^list_(.+)$")
  return "all_" .. (rest or lua_method)
end

-- `all{..., max = N}`: every item in one array, or `nil, err`. `max` is
-- taken out of the parameters unless the operation has a parameter of
-- that name.
local function collector_for(c, ent, cop)
  local npath = cop.npath
  local own_max = cop.checker.params.max ~= nil
  local name = M.collector_name(cop.op.lua_method)
  return function(self, ...)
    if self ~= ent then
      error("instantly: call it with a colon: client." .. ent.lua_name .. ":" .. name .. "(...)", 2)
    end
    local path = build_path(cop, 2, ...)
    local params, opts = params_opts(cop, select(npath + 1, ...))
    local max
    if type(params) == "table" and not own_max and params.max ~= nil then
      max = params.max
      if mtype(max) ~= "integer" or max < 1 then
        error("instantly: " .. cop.label .. ": 'max' must be an integer >= 1", 2)
      end
      params = copy(params)
      params.max = nil
    end
    check_call(cop, params, opts, 2)
    return iterate(c, cop, path, params, opts):collect(max)
  end
end

-- Methods on records: the record supplies the first path argument.
local function record_method_for(c, cop, field)
  local npath = cop.npath
  local label = cop.label
  return function(rec, ...)
    if type(rec) ~= "table" then
      error("instantly: call it with a colon: record:" .. cop.op.lua_method .. "(...)", 2)
    end
    local id = rec[field]
    if id == nil or id == null then
      error("instantly: " .. label .. ": the record has no '" .. field .. "'", 2)
    end
    local path, params, opts
    if npath == 1 then
      params, opts = params_opts(cop, ...)
      path = cop.segs[1] .. path_arg(cop, 1, id, 2) .. cop.segs[3]
    else
      path = build_path(cop, 2, id, ...)
      params, opts = params_opts(cop, select(npath, ...))
    end
    local a, b, d = invoke(c, cop, path, params, opts, 2)
    if cop.kind == "list" and type(a) == "table" then a = make_page(a, c, cop, path, copy(params), opts) end
    return a, b, d
  end
end

local function relation_for(c, cop, param, field)
  return function(rec, params, opts)
    if type(rec) ~= "table" then error("instantly: call it with a colon: record:" .. cop.label .. "(...)", 2) end
    local id = rec[field]
    if id == nil or id == null then error("instantly: " .. cop.label .. ": the record has no '" .. field .. "'", 2) end
    local p = copy(params)
    if p[param] ~= nil then
      error("instantly: " .. cop.label .. ": '" .. param .. "' is set by the record", 2)
    end
    p[param] = id
    check_call(cop, p, opts, 2)
    return iterate(c, cop, cop.segs[1], p, opts)
  end
end

--- Help text of an entity: without a name, its methods and summaries;
-- with one, the signature, HTTP route, parameters and result of that method.
-- @tparam[opt] string name a method name, e.g. "activate"
-- @treturn string
-- @usage print(client.campaigns:help("list"))
local function help(self, name)
  local docs = self.docs
  if name == nil then
    local names = {}
    for k in pairs(docs) do names[#names + 1] = k end
    sort(names)
    local out = { "client." .. self.lua_name .. " - " .. tostring(self.definition.description), "" }
    for _, k in ipairs(names) do
      out[#out + 1] = ("  %-28s %s%s"):format(k, docs[k].unconfirmed and "[unconfirmed] " or "", docs[k].summary or "")
    end
    return concat(out, "\n")
  end
  local d = docs[name]
  if not d then error("instantly: client." .. self.lua_name .. " has no method '" .. tostring(name) .. "'", 2) end
  local out = { d.signature, "  " .. tostring(d.summary) }
  if d.unconfirmed then out[#out + 1] = "  UNCONFIRMED: " .. d.unconfirmed end
  if d.http then out[#out + 1] = "  " .. d.http end
  for _, p in ipairs(d.params or {}) do
    out[#out + 1] = ("    %-24s %-6s %s%s%s"):format(p.name, p.where, p.type, p.required and ", required" or "",
      p.description and (" - " .. p.description) or "")
  end
  if d.returns then out[#out + 1] = "  returns: " .. d.returns end
  if d.rate_limit then out[#out + 1] = "  rate limit: " .. d.rate_limit end
  return concat(out, "\n")
end

-------------------------------------------------------------------------------
-- Per-process tables shared by every client (data only, built once)
-------------------------------------------------------------------------------

local field_sets, docs_cache, names_cache, relations_cache = {}, {}, {}, nil

local function field_set(def)
  local fs = field_sets[def]
  if not fs then
    fs = {}
    for _, f in ipairs(def.fields) do fs[f.name] = true end
    field_sets[def] = fs
  end
  return fs
end

-- The docs table of an entity (`client.<entity>.docs`), shared by
-- clients. It is written the first time it is read (indexed or walked
-- with pairs; then it is a plain table): a client that only calls the
-- API never pays for its help texts.
local function docs_of(def)
  local d = docs_cache[def]
  if d then return d end
  local function fill(t)
    setmetatable(t, nil)
    for _, op in ipairs(def.operations) do
      t[op.lua_method] = M.doc_for(def, op)
      if op.paginated then
        t[M.iterator_name(op.lua_method)] = iterator_doc(def, op)
        t[M.collector_name(op.lua_method)] = collector_doc(def, op)
      end
    end
    return t
  end
  d = setmetatable({}, {
    __name = "instantly.docs",
    __index = function(t, k) return rawget(fill(t), k) end,
    __pairs = function(t) return next, fill(t), nil end,
  })
  docs_cache[def] = d
  return d
end

-- Related collections of every entity's records: campaign:leads(),
-- campaign:emails(), ... as `{[entity name] = {{name, op, param}, ...}}`.
local function relations()
  if relations_cache then return relations_cache end
  local list = M.definitions()
  relations_cache = {}
  for _, def in ipairs(list) do
    local s = snake(def.name)
    local fs = field_set(def)
    local taken, rel = {}, {}
    for _, op in ipairs(def.operations) do
      local first = op.path_params[1]
      if first and fs[first.name] and not fs[op.lua_method] then taken[op.lua_method] = true end
    end
    if fs.id then
      for _, other in ipairs(list) do
        for _, op in ipairs(other.operations) do
          if other ~= def and op.paginated and op.lua_method == "list" and #op.path_params == 0 then
            local params = shared_for(other, op).checker.params
            local last = s:match("_([^_]+)$")
            for _, pname in ipairs({ s, s .. "_id", "parent_" .. s, last and (last .. "_id") or s }) do
              local p = params[pname]
              if p and p.type == "string" and not fs[other.lua_name] and not taken[other.lua_name] then
                taken[other.lua_name] = true
                rel[#rel + 1] = { name = other.lua_name, op = op, def = other, param = pname }
              end
            end
          end
        end
      end
    end
    relations_cache[def.name] = rel
  end
  return relations_cache
end

-- The method names the builder itself gives an entity and its records,
-- so that extensions can be checked when a client is made, not when an
-- entity is first used.
local function names_of(def)
  local n = names_cache[def]
  if n then return n end
  n = { entity = { help = true }, record = {} }
  local fs = field_set(def)
  for _, op in ipairs(def.operations) do
    n.entity[op.lua_method] = true
    if op.paginated then
      n.entity[M.iterator_name(op.lua_method)] = true
      n.entity[M.collector_name(op.lua_method)] = true
    end
    local first = op.path_params[1]
    if first and fs[first.name] and not fs[op.lua_method] then n.record[op.lua_method] = true end
  end
  for _, r in ipairs(relations()[def.name]) do n.record[r.name] = true end
  names_cache[def] = n
  return n
end

-------------------------------------------------------------------------------
-- Extensions
-------------------------------------------------------------------------------

local EXT_KEYS = { entity = true, record = true, wrap = true, client = true }

-- Checks one extension module against the names already taken (`seen`:
-- {entity = set, record = set} per target) and records its own names.
-- Raises (level 0: the caller adds where) on a clash or a bad shape.
local function check_extension(modname, mod, names, seen)
  if type(mod) ~= "table" then
    error("instantly: extension " .. modname .. " must be a table, got " .. type(mod), 0)
  end
  for k in pairs(mod) do
    if not EXT_KEYS[k] then
      error("instantly: extension " .. modname .. " has an unknown key '" .. tostring(k) ..
        "' (known: client, entity, record, wrap)", 0)
    end
  end
  for _, what in ipairs({ "entity", "record", "client" }) do
    local funcs = mod[what]
    if funcs ~= nil then
      if type(funcs) ~= "table" then error("instantly: " .. modname .. "." .. what .. " must be a table", 0) end
      local taken = seen[what]
      for name, fn in pairs(funcs) do
        if type(name) ~= "string" or type(fn) ~= "function" then
          error("instantly: " .. modname .. "." .. what .. " must map names to functions", 0)
        end
        if taken == nil or names[what][name] or taken[name] then
          error("instantly: " .. modname .. " defines " .. what .. " method '" .. name ..
            "', which already exists", 0)
        end
        taken[name] = true
      end
    end
  end
  if mod.wrap ~= nil then
    if type(mod.wrap) ~= "table" then error("instantly: " .. modname .. ".wrap must be a table", 0) end
    for name, fn in pairs(mod.wrap) do
      if type(name) ~= "string" or type(fn) ~= "function" then
        error("instantly: " .. modname .. ".wrap must map names to functions", 0)
      end
      if not (names.entity[name] or seen.entity[name]) then
        error("instantly: " .. modname .. " wraps method '" .. name .. "', which does not exist", 0)
      end
    end
  end
end

local static_cache, static_one = nil, {}

-- One of the SDK's own extension modules (nil when `name`, an entity's
-- lua name or "client", has none), loaded when its entity (or the
-- client's methods) is first built. They are checked against the names
-- the builder generates all at once by `static_extensions`, which a spec
-- runs (spec/client_unit_spec.lua) and a client with the `extensions`
-- option needs; a process that only calls the API loads none it does
-- not use.
local function static_extension(name)
  if static_cache then return static_cache[name] end
  local mod = static_one[name]
  if mod == nil then
    mod = false
    for _, n in ipairs(catalog.extensions or {}) do
      if n == name then mod = require("instantly.workflows.extra." .. name) end
    end
    static_one[name] = mod
  end
  return mod or nil
end
M.static_extension = static_extension

-- The SDK's own extensions (catalog.extensions, generated with the
-- entities from the files in lua/instantly/workflows/extra/), loaded and
-- checked: `{[entity lua_name or "client"] = module}`, made once.
local function static_extensions()
  if static_cache then return static_cache end
  local _, by_name = M.definitions()
  local by_lua = {}
  for _, def in pairs(by_name) do by_lua[def.lua_name] = def end
  local mods = {}
  for _, name in ipairs(catalog.extensions or {}) do
    local modname = "instantly.workflows.extra." .. name
    local mod = require(modname)
    local def = by_lua[name]
    local names = def and names_of(def) or { entity = {}, record = {}, client = {} }
    check_extension(modname, mod, names, def and { entity = {}, record = {} } or { client = {} })
    mods[name] = mod
  end
  static_cache = mods
  return mods
end
M.static_extensions = static_extensions

--- Check the `extensions` option of `instantly.new` (raises on misuse).
-- `exts` maps an entity's lua name (or `"client"`) to a module shaped
-- like the SDK's own extension modules.
-- @tparam table exts
-- @tparam table client_methods names the client already has
function M.check_extensions(exts, client_methods)
  local statics = static_extensions()
  local by_lua = {}
  for _, def in ipairs(M.definitions()) do by_lua[def.lua_name] = def end
  for name, mod in pairs(exts) do
    local where = "extensions." .. tostring(name)
    if name == "client" then
      local taken = {}
      for k in pairs(client_methods) do taken[k] = true end
      for k in pairs(by_lua) do taken[k] = true end
      check_extension(where, mod, { client = {} }, { client = taken })
    else
      local def = by_lua[name]
      if not def then
        error("instantly: " .. where .. ": no entity named '" .. tostring(name) .. "'", 0)
      end
      local seen = { entity = {}, record = {} }
      local st = statics[name]
      if st then
        for k in pairs(st.entity or {}) do seen.entity[k] = true end
        for k in pairs(st.record or {}) do seen.record[k] = true end
      end
      check_extension(where, mod, names_of(def), seen)
    end
  end
end

-------------------------------------------------------------------------------
-- Building a client: entities are built on first use
-------------------------------------------------------------------------------

-- Per-client build state `st`: `{c =, ctx =, users =,
-- shells = {def -> shell}, cops = {op -> client op}, done = {def -> true}}`.
local build_entity

-- The entity object and the record metatable of `def`, empty until the
-- entity is built: a lookup in either builds it.
local function shell(st, def)
  local sh = st.shells[def]
  if sh then return sh end
  local methods, rec_methods = {}, {}
  local ent = setmetatable({ client = st.c, name = def.name, lua_name = def.lua_name, definition = def,
                             docs = docs_of(def) },
                           { __index = methods, __name = "instantly.entity." .. def.lua_name })
  local index = rec_methods
  local aliases = record.aliases(def)
  if aliases then
    -- a field read under its record name still reads under the API's
    index = function(t, k)
      local m = rec_methods[k]
      if m ~= nil then return m end
      local to = aliases[k]
      if to then return rawget(t, to) end
    end
  end
  -- __methods: the method table itself (__index may be a function);
  -- __shape: what a record goes through when it arrives (instantly.request.record)
  sh = { ent = ent, methods = methods, rec_methods = rec_methods,
         rec_mt = { __index = index, __methods = rec_methods, __client = st.c, __entity = ent,
                    __name = "instantly.request.record." .. def.lua_name, __shape = record.shaper_for(def) } }
  ent.record_mt = sh.rec_mt
  st.shells[def] = sh
  local lazy = { __index = function(t, k)
    build_entity(st, def)
    return rawget(t, k)
  end }
  setmetatable(methods, lazy)
  setmetatable(rec_methods, lazy)
  return sh
end

-- The client's copy of an operation: the shared data plus what depends on
-- the client (its context, record metatable, rate-limit windows).
local function cop_for(st, def, op)
  local cop = st.cops[op]
  if cop then return cop end
  local sh = shared_for(def, op)
  cop = {}
  for k, v in pairs(sh) do cop[k] = v end
  cop.ctx = st.ctx
  cop.item_mt = sh.item and shell(st, sh.item).rec_mt or nil
  -- the body's decoder (false: the text is the result)
  cop.decoder = sh.kind ~= "text" and (cop.item_mt and record_decode or plain_decode)
  cop.pipe = st.ctx.pipe
  cop.many = sh.kind == "list" or sh.kind == "array" -- items that are records, not one
  -- the request headers of every call without the `headers` option
  cop.headers = sh.has_body and st.ctx.headers_json or st.ctx.headers
  -- per-endpoint windows; the ones the API counts per IP are shared by
  -- every client (and workspace view) on the same session
  cop.windows = (st.ctx.endpoints and op.rate_limit)
    and ratelimit.windows_for(op.rate_limit, sh.label, ratelimit.shared_for(st.ctx.pipe.session)) or nil
  cop.make_page = make_page
  if sh.npath == 0 then
    -- the one URL of an operation without path arguments, made once
    cop.path0 = sh.segs[1]
    cop.url0, cop.full0 = st.ctx.base .. cop.path0, st.ctx.prefix .. cop.path0
  end
  st.cops[op] = cop
  return cop
end

-- Fills the methods of entity `def` and of its records, then its
-- extensions (the SDK's, then the caller's).
function build_entity(st, def)
  if st.done[def] then return end
  st.done[def] = true
  local c = st.c
  local sh = shell(st, def)
  local methods, recs, ent = sh.methods, sh.rec_methods, sh.ent
  setmetatable(methods, nil)
  setmetatable(recs, nil)
  methods.help = help
  local fs = field_set(def)
  for _, op in ipairs(def.operations) do
    local cop = cop_for(st, def, op)
    local m = op.lua_method
    methods[m] = method_for(c, ent, cop, op.paginated)
    if op.paginated then
      methods[M.iterator_name(m)] = iterator_for(c, ent, cop)
      local all = M.collector_name(m)
      if methods[all] then error("catalog: " .. def.lua_name .. " has an operation named " .. all) end
      methods[all] = collector_for(c, ent, cop)
    end
    local first = op.path_params[1]
    if first and fs[first.name] and not fs[m] then recs[m] = record_method_for(c, cop, first.name) end
  end
  -- Relations span the catalog (every entity's list operations), so they
  -- are made when the record methods are first walked, or first missed
  -- under a name a relation can have (another entity's lua name): until
  -- then the table answers through a metatable that fills it. Any other
  -- miss is not a relation: a record's absent field (a null left out)
  -- is read through here, and must not load the whole catalog.
  local function fill_relations(t)
    setmetatable(t, nil)
    for _, r in ipairs(relations()[def.name]) do
      if rawget(t, r.name) == nil then t[r.name] = relation_for(c, cop_for(st, r.def, r.op), r.param, "id") end
    end
    return t
  end
  local relation_names = entity_set()
  setmetatable(recs, {
    __index = function(t, k)
      if not relation_names[k] then return nil end
      return rawget(fill_relations(t), k)
    end,
    __pairs = function(t) return next, fill_relations(t), nil end,
  })
  for _, mod in ipairs({ static_extension(def.lua_name) or false, st.users[def.lua_name] or false }) do
    if mod then
      for k, fn in pairs(mod.entity or {}) do methods[k] = fn end
      for k, fn in pairs(mod.record or {}) do recs[k] = fn end
      for k, fn in pairs(mod.wrap or {}) do
        local orig = methods[k]
        methods[k] = function(...) return fn(orig, ...) end
      end
    end
  end
end

--- Set up client `c`: its entities (`c.<lua_name>`) are built the first
-- time they are used (a record of an entity counts as a use), so making a
-- client costs the same however large the catalog.
--
-- `ctx` is what the generated methods need from the client:
-- `{pipe = (instantly.request.pipeline sender), base = (base URL and path prefix),
-- prefix = (path prefix), headers =, headers_json = (request headers),
-- key = (API key, for redaction), endpoints = (per-endpoint rate limits,
-- bool), extensions = (the checked `extensions` option or nil)}`.
-- @tparam table c the client under construction
-- @tparam table ctx
-- @treturn function `index(key)`: the entity object named `key` or nil,
--   for the client's `__index`. An entity object has `client`, `name`,
--   `lua_name`, `definition`, `docs` and `record_mt` (the metatable of its
--   records, whose `__index` holds the record methods).
function M.build(c, ctx)
  local st = { c = c, ctx = ctx, users = ctx.extensions or {}, shells = {}, cops = {}, done = {} }
  return function(k)
    local def = M.definition(k)
    if not def then return nil end
    build_entity(st, def)
    return shell(st, def).ent
  end
end

--- Iterate a paginated operation found by entity and method name (used by
-- the escape hatch for other modules, e.g. the CLI).
-- @tparam table entity an entity object
-- @tparam string method paginated method name
-- @treturn function the same iterator `entity:each...` returns
function M.iterator(entity, method)
  local it = entity[M.iterator_name(method)]
  if type(it) ~= "function" then error("instantly: " .. entity.lua_name .. ":" .. method .. " is not paginated", 2) end
  return it
end

return M
