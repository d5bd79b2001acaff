--- The `instantly` command-line client.
-- `instantly <entity> <action> [path args] [--field value]... [options]`
-- for every catalog operation, generated from the entity definitions the
-- SDK itself is built from. `main(argv)` returns the process exit code:
-- 0 success, 1 API error, 2 usage error, 3 transport error, 130
-- interrupted. The mock server is loaded only for `--mock`.
-- @module instantly.cli

local commands = require("instantly.cli.commands")
local params = require("instantly.cli.params")
local output = require("instantly.cli.output")
local progress = require("instantly.cli.progress")
local chart = require("instantly.cli.chart")
local term = require("instantly.cli.term")
local index = require("instantly.entities")

local M = {}

M.EXIT = { ok = 0, api = 1, usage = 2, transport = 3, interrupted = 130 }

-- A usage error travels as this table through error() to main's handler.
local Usage = {}
Usage.__index = Usage
Usage.__tostring = function(self) return self.message end
local function usage(msg, hint)
  error(setmetatable({ message = msg, hint = hint }, Usage), 0)
end

--- The JSON codec the CLI uses, on top of instantly.core.
local function json_codec()
  local core = require("instantly.core")
  local array_mt = core.array_mt or (core.array and getmetatable(core.array({})))
  local J = { null = core.null }
  function J.encode(v, pretty)
    if pretty then return core.json_encode(v, { indent = 2, sort_keys = true }) end
    return core.json_encode(v, { sort_keys = true })
  end
  function J.decode(text, what)
    local ok, v, err = pcall(core.json_decode, text)
    if not ok then return nil, (what and (what .. ": ") or "") .. tostring(v) end
    if v == nil and err then return nil, (what and (what .. ": ") or "") .. tostring(err) end
    return v
  end
  function J.is_array(t)
    if type(t) ~= "table" then return false end
    if array_mt and getmetatable(t) == array_mt then return true end
    if t[1] ~= nil then return true end
    return false
  end
  function J.array(t)
    if core.array then return core.array(t) end
    return t
  end
  return J
end
M.json_codec = json_codec

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

--- A word as the shell reads it back: bare when it is safe, else in single
-- quotes (account cursors contain `&`).
function M.shell_quote(s)
  s = tostring(s)
  if s ~= "" and s:match("^[%w@%%+=:,./_-]+$") then return s end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end
local shell_quote = M.shell_quote

-- Entity record definitions by name, for table columns and labels.
local function entity_by_item(item)
  if not item then return nil end
  for _, name in ipairs(index.entities) do
    local e = require("instantly.entities." .. name)
    if e.name == item then return e end
  end
  return nil
end

local function read_key_file(path)
  local f, err = io.open(path, "rb")
  if not f then usage("cannot read --api-key-file: " .. tostring(err)) end
  local key = trim(f:read("a") or "")
  f:close()
  if key == "" then usage("--api-key-file " .. path .. " is empty") end
  return key
end

local function load_data(spec, json)
  local text
  if spec == "-" then
    text = io.stdin:read("a")
  elseif spec:sub(1, 1) == "@" then
    local f, err = io.open(spec:sub(2), "rb")
    if not f then usage("--data: " .. tostring(err)) end
    text = f:read("a")
    f:close()
  else
    text = spec
  end
  local v, err = json.decode(text or "", "--data")
  if v == nil then usage(tostring(err)) end
  if type(v) ~= "table" or (json.is_array(v) and next(v) ~= nil) then
    usage("--data must be a JSON object of request parameters")
  end
  return v
end

-- The request the dry-run transport saw, as the lines to print; the key
-- is removed from every line (headers, URL, body), not only from the
-- Authorization header.
local function format_request(req, key)
  local redact = require("instantly.request.redact")
  local lines = { string.format("%s %s", req.method or "GET", req.url or "") }
  local headers = req.headers or {}
  local flat = {}
  if headers[1] ~= nil then
    for _, h in ipairs(headers) do
      local k, v = tostring(h):match("^([^:]+):%s*(.*)$")
      if k then flat[k] = v end
    end
  else
    for k, v in pairs(headers) do flat[k] = v end
  end
  flat = redact.headers(flat, key)
  local names = {}
  for k in pairs(flat) do names[#names + 1] = k end
  table.sort(names, function(a, b) return a:lower() < b:lower() end)
  for _, k in ipairs(names) do lines[#lines + 1] = k .. ": " .. tostring(flat[k]) end
  if req.body and req.body ~= "" then
    lines[#lines + 1] = ""
    lines[#lines + 1] = req.body
  end
  return redact.scrub(table.concat(lines, "\n"), key) .. "\n"
end

-- A transport that records requests and sends nothing.
local function dry_transport()
  local t = { seen = {} }
  function t.request(_, req)
    t.seen[#t.seen + 1] = req
    return 200, "{}", { ["content-type"] = "application/json" }
  end
  return t
end

local function print_dry(io_, dry)
  for _, req in ipairs(dry.seen) do io_.stdout:write(format_request(req, dry.key)) end
  return M.EXIT.ok
end

local function confirm(io_, what)
  if not (term.isatty(0) and term.isatty(2)) then
    usage(what .. " is destructive: pass --yes to confirm")
  end
  io_.stderr:write(what .. " cannot be undone. Continue? [y/N] ")
  io_.stderr:flush()
  local answer = io.stdin:read("l")
  if not answer or not answer:lower():match("^%s*y") then
    usage("aborted: nothing was changed")
  end
end

--- One line for an error, without repeated prefixes: an error whose kind
-- or file name is also the start of its message (`checkpoint: checkpoint
-- x.ckpt: ...`, `a.csv: a.csv: ...`) says it once.
function M.error_line(err)
  local line = tostring(err):gsub("%s*\n%s*", " ")
  line = line:gsub("^instantly: ", "")
  local prev
  repeat
    prev = line
    line = line:gsub("^([^:]+): %1([: ])", "%1%2", 1)
  until line == prev
  return "instantly: " .. line
end

-- An expected failure, as one line on stderr.
local function report(io_, err)
  io_.stderr:write(M.error_line(err), "\n")
end

local function exit_for(err)
  if type(err) == "table" and (err.kind == "transport" or err.kind == "timeout") then
    return M.EXIT.transport
  end
  return M.EXIT.api
end

local function is_interrupt(e)
  return type(e) == "string" and e:match("interrupted!$") ~= nil
end

local function print_help(io_, parser, to_stderr)
  local out = to_stderr and io_.stderr or io_.stdout
  out:write(parser:get_help(), "\n")
end

-- The names the catalog gives an enum parameter's values: from its own
-- description ("0=Draft, 1=Active"), else from the entity field of the
-- same name (a list filter `--status` takes the entity's status names).
local function enum_labels(def, entity)
  if not def.enum then return nil end
  local own = output.enum_labels(def.description)
  if own then return own end
  for _, f in ipairs(entity.fields or {}) do
    if f.name == def.name then return output.enum_labels(f.description) end
  end
  return nil
end

-- Turn parsed flags into the request parameters of the operation.
-- `lax` (--no-validate): only the type conversion, no enum or range
-- checks and no required flags; the SDK then reports problems as warnings.
local LAX = { enum = true, min = true, max = true }
local function collect_params(entity, op, res, json, data, lax)
  local p = {}
  if data then for k, v in pairs(data) do p[k] = v end end
  local list = op.options or params.flags(op)
  for _, def in ipairs(list) do
    local raw = res["f_" .. def.name]
    if raw ~= nil and not (type(raw) == "table" and #raw == 0) then
      local d = def
      if lax then
        d = setmetatable({}, { __index = function(_, k) if not LAX[k] then return def[k] end end })
      end
      local v, err = params.coerce(d, raw, json, enum_labels(def, entity))
      if v == nil then usage(err) end
      p[def.name] = v
    end
  end
  for _, def in ipairs(list) do
    if def.required and p[def.name] == nil and not lax then
      usage("missing --" .. def.name .. " (required)")
    end
  end
  return p
end

local function next_page(page)
  local nxt = page.next
  if type(nxt) ~= "function" then return nil end
  if not page.next_starting_after or page.next_starting_after == "" then return nil end
  if #(page.items or {}) == 0 then return nil end
  return nxt(page)
end

--- Run the CLI with `argv` (a list of strings). `io_` may replace
-- `stdout`/`stderr` (tests); `getenv` may replace os.getenv.
-- Returns the exit code.
function M.main(argv, io_, getenv)
  io_ = io_ or { stdout = io.stdout, stderr = io.stderr }
  getenv = getenv or os.getenv
  local srv
  local ok, code = xpcall(function()
    return M.run(argv, io_, getenv, function(s) srv = s end)
  end, function(e)
    if getmetatable(e) == Usage then return e end
    return { internal = true, message = tostring(e), trace = debug.traceback("", 2) }
  end)
  if srv then pcall(srv.stop, srv) end
  if ok then return code end
  if getmetatable(code) == Usage then
    io_.stderr:write("instantly: ", code.message, code.hint and ("; " .. code.hint) or "", "\n")
    return M.EXIT.usage
  end
  if is_interrupt(code.message) then
    io_.stderr:write("instantly: interrupted\n")
    return M.EXIT.interrupted
  end
  -- A misuse error raised by the SDK names the caller's file and line and
  -- starts with "instantly: "; the user needs neither.
  local msg = tostring(code.message):gsub("\n.*", ""):gsub("^[^%s]-:%d+: ", ""):gsub("^instantly: ", "")
  io_.stderr:write("instantly: ", msg, "\n")
  if getenv("INSTANTLY_DEBUG") then io_.stderr:write(code.trace or "", "\n") end
  return M.EXIT.usage
end

-- `--completion SHELL` anywhere before `--`: the script, or nil.
local function completion(argv)
  for i, a in ipairs(argv) do
    if a == "--" then return nil end
    local shell = a:match("^%-%-completion=(.*)$") or (a == "--completion" and (argv[i + 1] or ""))
    if shell then
      local root = commands.build(100, true)
      local script = shell == "bash" and root:get_bash_complete() or shell == "zsh" and root:get_zsh_complete()
        or shell == "fish" and root:get_fish_complete()
      if not script then usage("--completion: expected bash, zsh or fish, got '" .. shell .. "'") end
      return script
    end
  end
  return nil
end

-- The entity and action argv names (either may be nil); unknown words are
-- usage errors with a suggestion.
local function resolve(argv)
  local ew, aw = commands.locate(argv)
  local entity, op
  if ew then
    entity = commands.entity(ew.word)
    if not entity then
      local names = {}
      for _, e in ipairs(commands.entities()) do names[#names + 1] = e.lua_name end
      local s = commands.suggest(ew.word:gsub("-", "_"), names)
      usage("unknown entity '" .. ew.word .. "'" .. (s and (" (did you mean '" .. s .. "'?)") or ""),
        "see `instantly --help`")
    end
  end
  if entity and aw then
    op = commands.action(entity, aw.word)
    if not op then
      local s = commands.suggest(aw.word:gsub("-", "_"), commands.action_names(entity))
      usage("unknown action '" .. aw.word .. "' for " .. entity.lua_name
        .. (s and (" (did you mean '" .. s .. "'?)") or ""),
        "see `instantly " .. entity.lua_name .. " --help`")
    end
  end
  return entity, op
end

-- Parse argv for one action. Returns the parsed result, or nil and the
-- exit code when help was printed instead.
local function parse(argv, io_, getenv, entity, op)
  local width = term.width(getenv)
  local help_width = term.isatty(1) and width or math.max(width, 100)
  if getenv("COLUMNS") then help_width = width end
  local root, eparser, aparser, bools = commands.build(help_width, entity, op)
  if commands.wants_help(argv) then
    print_help(io_, aparser or eparser or root)
    return nil, M.EXIT.ok
  end
  if not entity then
    if #argv == 0 then
      print_help(io_, root, true)
      return nil, M.EXIT.usage
    end
    local ok, err = root:pparse(argv)
    if not ok then usage(err, "see `instantly --help`") end
    usage("missing entity", "see `instantly --help`")
  end
  if not op then
    print_help(io_, eparser, true)
    return nil, M.EXIT.usage
  end
  local words = params.join_negative(argv, function(w) return commands.takes_value(w, op) end)
  local ok, res = root:pparse(params.normalize_bools(words, bools))
  if not ok then
    usage(res, "see `instantly " .. entity.lua_name .. " " .. op.lua_method .. " --help`")
  end
  return res
end

-- Output mode and the global options that only fit some actions.
local function output_mode(g, entity, op)
  if g("json") and g("jsonl") then usage("--json and --jsonl exclude each other") end
  local mode = g("json") and "json" or g("jsonl") and "jsonl" or g("table") and "table"
    or (term.isatty(1) and "table" or "json")
  if g("chart") and not (entity.lua_name == "analytics"
      and (op.lua_method == "campaign_daily" or op.lua_method == "account_daily")) then
    usage("--chart is only for analytics campaign_daily and account_daily")
  end
  if g("all") and not op.paginated then usage("--all is only for paginated list actions") end
  if g("wait") and op.async ~= "background_job" then usage("--wait is only for actions that start a background job") end
  if g("out") and not (entity.lua_name == "leads" and op.lua_method == "export") then
    usage("--out is only for leads export")
  end
  return mode
end

-- Hooks that report requests (--verbose) and long waits on stderr.
-- Everything they print goes through the same redaction as errors.
local function hooks(g, io_, api_key)
  local redact = require("instantly.request.redact")
  local function log(line) io_.stderr:write(redact.scrub(line, api_key)) end
  local h = {}
  if g("verbose") then
    h.on_request = function(r)
      local again = r.attempt > 1 and (" (attempt " .. r.attempt .. ")") or ""
      log(string.format("> %s %s%s\n", r.method, r.url, again))
    end
    h.on_response = function(r)
      log(string.format("< %s %s in %.3fs\n", tostring(r.status or "-"), r.path, r.elapsed or 0))
    end
  end
  -- Waits (rate limiter, retries) are silent unless they are long enough
  -- to look like a hang on a terminal, or --verbose asks for everything.
  h.on_wait = function(w)
    if not (g("verbose") or (w.seconds >= 1 and term.isatty(2))) then return end
    local line
    if w.reason == "retry" then
      line = string.format("%s; retrying in %.1fs", tostring(w.error):gsub("^instantly: ", ""), w.seconds)
    else
      line = string.format("%s: rate limit %s, waiting %.1fs", tostring(w.operation), tostring(w.limit), w.seconds)
    end
    log("instantly: " .. line:gsub("%s*\n%s*", " ") .. "\n")
  end
  return h
end

-- The client the command talks through: key, base URL, --mock, --dry-run.
-- Returns client, dry transport (or nil); or nil, exit code.
local function connect(g, getenv, io_, keep_mock)
  local base_url = g("base_url") or getenv("INSTANTLY_BASE_URL")
  if base_url == "" then base_url = nil end
  local api_key
  if g("api_key_file") then api_key = read_key_file(g("api_key_file")) else api_key = getenv("INSTANTLY_API_KEY") end
  if api_key == "" then api_key = nil end
  if g("mock") then
    if g("base_url") then usage("--mock and --base-url exclude each other") end
    local srv, merr = require("instantly.mock").start { seed = 1, rate_limits = false }
    if not srv then
      io_.stderr:write("instantly: --mock: ", tostring(merr), "\n")
      return nil, M.EXIT.transport
    end
    keep_mock(srv)
    base_url, api_key = srv.url, srv.api_key
  end
  local dry
  if g("dry_run") then
    dry = dry_transport()
    api_key = api_key or "no-key-set"
    dry.key = api_key
  end
  if not api_key then
    usage("no API key: set INSTANTLY_API_KEY, pass --api-key-file FILE, or use --mock")
  end
  local timeout
  if g("timeout") then
    timeout = tonumber(g("timeout"))
    if not timeout or timeout <= 0 then
      usage("--timeout: expected a number of seconds > 0, got '" .. g("timeout") .. "'")
    end
  end
  local h = hooks(g, io_, api_key)
  local client = require("instantly").new { api_key = api_key, base_url = base_url, transport = dry,
    workspace = g("workspace"), timeout = timeout, on_request = h.on_request, on_response = h.on_response,
    on_wait = h.on_wait, validate = g("no_validate") and "warn" or "strict",
    on_warning = function(text) io_.stderr:write("instantly: warning: ", text, "\n") end }
  return client, dry
end

local function output_ctx(g, entity, op, mode, io_, width, json)
  local record_entity = entity_by_item(op.response and op.response.item)
  local cols
  if g("columns") then
    cols = {}
    for c in g("columns"):gmatch("[^,%s]+") do cols[#cols + 1] = c end
  end
  return {
    mode = mode, out = io_.stdout, width = width, json = json,
    op_key = entity.lua_name .. "." .. op.lua_method, item = op.response and op.response.item,
    fields = record_entity and record_entity.fields or (not op.extra and entity.fields) or nil,
    columns = cols,
  }
end

--- Check `--columns` against what can be shown: a field of the record
-- entity, or a key of one of the rows. An unknown name is a usage error.
function M.check_columns(ctx, rows)
  if not ctx.columns then return end
  local known = {}
  for _, f in ipairs(ctx.fields or {}) do known[f.name] = true end
  for _, row in ipairs(rows) do
    if type(row) == "table" then for k in pairs(row) do known[k] = true end end
  end
  if next(known) == nil then return end
  for _, c in ipairs(ctx.columns) do
    if not known[c] then
      local names = {}
      for k in pairs(known) do names[#names + 1] = k end
      local s = commands.suggest(c, names)
      usage("--columns: unknown column '" .. c .. "'" .. (s and (" (did you mean '" .. s .. "'?)") or ""))
    end
  end
end

--- The body of `main`; raises Usage errors. `keep_mock(srv)` registers a
-- mock server for main to stop.
function M.run(argv, io_, getenv, keep_mock)
  local script = completion(argv)
  if script then
    io_.stdout:write(script)
    return M.EXIT.ok
  end
  local ew, aw = commands.locate(argv)
  if ew and aw and ew.word == "webhooks" and aw.word == "listen" then
    return require("instantly.cli.webhooks").listen(argv, aw.pos + 1, io_, getenv)
  end
  local entity, op = resolve(argv)
  local res, code = parse(argv, io_, getenv, entity, op)
  if not res then return code end
  local json = json_codec()
  local g = function(name) return res["g_" .. name] end
  local mode = output_mode(g, entity, op)

  local data = g("data") and load_data(g("data"), json) or nil
  local call_params = collect_params(entity, op, res, json, data, g("no_validate"))
  local path_args = {}
  for _, pp in ipairs(op.path_params or {}) do
    path_args[#path_args + 1] = res["p_" .. pp.name]
  end

  -- Destructive operations need consent (a dry run changes nothing).
  if commands.destructive(op) and not g("yes") and not g("dry_run") then
    local what = entity.lua_name .. " " .. op.lua_method
    if #path_args > 0 then what = what .. " " .. table.concat(path_args, " ") end
    confirm(io_, what)
  end

  local client, dry = connect(g, getenv, io_, keep_mock)
  if not client then return dry end
  local ctx = output_ctx(g, entity, op, mode, io_, term.width(getenv), json)
  local call = { client = client, entity = entity, op = op, res = res, g = g, params = call_params,
                 path_args = path_args, io = io_, ctx = ctx, dry = dry, argv = argv }
  if op.extra then return M.workflow(call) end
  if entity.lua_name == "leads" and op.lua_method == "export" and g("out") then
    return M.export(client, call_params, g("out"), io_, ctx, dry)
  end
  return M.call(call)
end

--- One catalog operation: call it and print what came back.
function M.call(call)
  local coll = call.client[call.entity.lua_name]
  local args = {}
  for i, a in ipairs(call.path_args) do args[i] = a end
  args[#args + 1] = call.params
  local result, err = coll[call.op.lua_method](coll, table.unpack(args, 1, #args))
  if call.dry then return print_dry(call.io, call.dry) end
  if result == nil and err ~= nil then
    report(call.io, err)
    return exit_for(err)
  end
  if call.op.paginated then
    if call.g("all") then return M.print_all(call, result) end
    return M.print_page(call, result)
  end
  if call.g("chart") then
    call.io.stdout:write(chart.daily(type(result) == "table" and result or {}, call.ctx.width))
    return M.EXIT.ok
  end
  if call.g("wait") then
    local job, werr = M.wait_job(call, result)
    if job == nil then
      report(call.io, werr)
      return exit_for(werr)
    end
    result = job
  end
  return M.print_result(call, result)
end

--- `--all`: every page, streamed as JSON lines or gathered into one array.
function M.print_all(call, page)
  local ctx, json, io_ = call.ctx, call.ctx.json, call.io
  local items = {}
  local checked = false
  while page do
    if not checked then
      M.check_columns(ctx, page.items or {})
      checked = true
    end
    for _, it in ipairs(page.items or {}) do
      if ctx.mode == "jsonl" then io_.stdout:write(json.encode(it), "\n") else items[#items + 1] = it end
    end
    local nxt, nerr = next_page(page)
    if nxt == nil and nerr ~= nil then
      report(io_, nerr)
      return exit_for(nerr)
    end
    page = nxt
  end
  if ctx.mode ~= "jsonl" then output.print(json.array(items), "array", ctx) end
  return M.EXIT.ok
end

--- One page, and in the table view a hint to the next one, when there is
-- one: the page after is looked at first, so the last page has no hint.
function M.print_page(call, page)
  local ctx, json = call.ctx, call.ctx.json
  M.check_columns(ctx, page.items or {})
  local plain = { items = json.array(page.items or {}), next_starting_after = page.next_starting_after }
  output.print(plain, "page", ctx)
  if ctx.mode == "table" then
    local nxt = next_page(page)
    if nxt and #(nxt.items or {}) > 0 then
      call.io.stderr:write("more: --starting_after ", shell_quote(page.next_starting_after), " or --all\n")
    end
  end
  return M.EXIT.ok
end

--- `--wait`: poll the background job the call started, with a progress bar.
function M.wait_job(call, job)
  local e, op = call.entity, call.op
  local bar = progress.new { stream = call.io.stderr, label = e.lua_name .. " " .. op.lua_method, unit = "%" }
  local done, err = call.client.background_jobs:wait(job, {
    on_progress = function(j)
      bar:update(tonumber(j.progress) or 0, 100, j.status and ("(" .. tostring(j.status) .. ")") or nil)
    end,
  })
  bar:finish()
  if done then
    call.ctx.fields = (entity_by_item("Background Job") or {}).fields
    call.ctx.item = "Background Job"
  end
  return done, err
end

--- A single result: an object, text, or nothing (204).
function M.print_result(call, result)
  local ctx = call.ctx
  local kind = call.op.response and call.op.response.kind
  if kind == "text" then
    output.print(result, "text", ctx)
  elseif kind == "empty" or result == true then
    output.print(nil, "empty", ctx)
    if ctx.mode == "table" then call.io.stderr:write("done (no content)\n") end
  else
    M.check_columns(ctx, { result })
    output.print(result, "object", ctx)
  end
  return M.EXIT.ok
end

-- `leads export` body fields that mean the same for a file export, and
-- the name `leads:export_file` gives them.
local EXPORT_FILE_ARGS = { campaign = "campaign_id", list_id = "list_id", search = "search", filter = "filter" }
-- The other `leads export` selectors that leads:list understands too.
local EXPORT_LIST_PARAMS = { in_campaign = true, in_list = true, ids = true, excluded_ids = true, contacts = true,
                             queries = true }

--- `leads export ... --out file.csv`: write the selected leads to a CSV
-- (or .jsonl) file, page by page, with a progress count on a terminal.
-- Without --out, `leads export` is the API's own export job.
function M.export(client, call_params, path, io_, ctx, dry)
  local bar = progress.new { stream = io_.stderr, label = "export", unit = "leads" }
  local args = { path = path, on_progress = function(count) bar:update(count) end }
  for k, v in pairs(call_params) do
    local name = EXPORT_FILE_ARGS[k]
    if name then
      args[name] = v
    elseif EXPORT_LIST_PARAMS[k] then
      args.params = args.params or {}
      args.params[k] = v
    else
      usage("--" .. k .. " does not apply to an export to a file (--out)")
    end
  end
  local res, err = client.leads:export_file(args)
  bar:finish()
  if dry then return print_dry(io_, dry) end
  if res == nil and err ~= nil then
    report(io_, err)
    return exit_for(err)
  end
  if ctx.mode == "table" then
    io_.stdout:write(string.format("wrote %d leads to %s (%s)\n", res.rows or 0, tostring(res.path or path),
      tostring(res.format or "csv")))
    return M.EXIT.ok
  end
  ctx.fields, ctx.item = nil, nil
  output.print(res, "object", ctx)
  return M.EXIT.ok
end

-- Rows in a CSV file (for the import progress bar's total); nil if unknown.
local function count_rows(path)
  local ok, csv = pcall(require, "instantly.workflows.csv")
  if not ok then return nil end
  local r = csv.open(path, { header = true })
  if not r then return nil end
  local n = 0
  while true do
    local row = r:read()
    if row == nil then break end
    n = n + 1
  end
  r:close()
  return n
end

-- The import's target and file from its positionals and --list_id.
local function import_target(call)
  local campaign_id, file = call.res.p_campaign_id, call.res.p_file
  if file == nil then campaign_id, file = nil, campaign_id end
  if not file then usage("missing CSV file") end
  if campaign_id and call.params.list_id then usage("give a campaign id or --list_id, not both") end
  if not campaign_id and not call.params.list_id then usage("give a campaign id or --list_id") end
  local fh, err = io.open(file, "rb")
  if not fh then usage("cannot read " .. M.error_line(err):gsub("^instantly: ", "")) end
  fh:close()
  return campaign_id, file
end

--- How to pick up an import that stopped part-way: the same command, which
-- with --checkpoint skips the batches already accepted; without one, the
-- server skips the leads already there.
function M.resume_hint(call, rows_done)
  local words = { "instantly" }
  for _, a in ipairs(call.argv) do words[#words + 1] = shell_quote(a) end
  local how
  if call.params.checkpoint then
    how = "run the same command again; --checkpoint skips the batches already accepted"
  else
    local skip = call.params.list_id and "--skip_if_in_list" or "--skip_if_in_campaign"
    if not call.params[skip:sub(3)] then words[#words + 1] = skip end
    how = "run it again with " .. skip .. " (the server skips the leads already added; "
      .. "--checkpoint FILE makes the next run resumable batch by batch)"
  end
  return string.format("instantly: import stopped after %d rows; to resume, %s:\n  %s\n",
    rows_done or 0, how, table.concat(words, " "))
end

-- The summary, as text or as an object.
local function print_import(call, summary)
  local ctx, io_ = call.ctx, call.io
  if ctx.mode == "table" then
    if summary.dry_run then
      io_.stdout:write(string.format("dry run: %d rows, %d valid, %d rejected, %d batch%s; nothing sent\n",
        summary.rows, summary.valid, summary.invalid_count, summary.batches, summary.batches == 1 and "" or "es"))
    else
      io_.stdout:write(tostring(summary), "\n")
    end
    for i, bad in ipairs(summary.invalid or {}) do
      if i > 10 then
        io_.stdout:write(string.format("  ... and %d more invalid rows\n", summary.invalid_count - 10))
        break
      end
      io_.stdout:write(string.format("  row %s (line %s): %s\n", tostring(bad.row), tostring(bad.line),
        tostring(bad.reason)))
    end
    return
  end
  ctx.fields, ctx.item = nil, nil
  local plain = {}
  for k, v in pairs(summary) do plain[k] = v end
  for _, k in ipairs({ "invalid", "failed_batches", "ignored_columns" }) do
    if type(plain[k]) == "table" then plain[k] = ctx.json.array(plain[k]) end
  end
  output.print(plain, "object", ctx)
end

--- `leads import`: the whole CSV in batches, a progress bar on a terminal,
-- the summary at the end. With --dry-run every row is read and checked
-- and the summary printed, but nothing is sent and no file is written.
function M.import(call)
  local campaign_id, file = import_target(call)
  local io_, dry = call.io, call.dry ~= nil
  local bar = progress.new { stream = io_.stderr, label = dry and "check" or "import", unit = "leads" }
  local total = bar.enabled and count_rows(file) or nil
  local rows_done = 0
  local args = { leads = file, campaign_id = campaign_id, on_progress = function(s)
    rows_done = s.rows or rows_done
    bar:update(s.rows, total, s.uploaded and (tostring(s.uploaded) .. " uploaded") or nil)
  end }
  for k, v in pairs(call.params) do args[k] = v end
  if dry then args.dry_run, args.rejects = true, nil end
  local ok, summary, err = pcall(call.client.leads.import, call.client.leads, args)
  bar:finish()
  if not ok then
    if not is_interrupt(summary) then error(summary, 0) end
    io_.stderr:write(M.resume_hint(call, rows_done))
    return M.EXIT.interrupted
  end
  if summary == nil then
    report(io_, err)
    return exit_for(err)
  end
  print_import(call, summary)
  if summary.ok == false and not dry then
    local fb = (summary.failed_batches or {})[1]
    if fb then
      io_.stderr:write(string.format("instantly: %d batch(es) failed, the first (rows %s-%s): %s\n",
        #summary.failed_batches, tostring(fb.first_row), tostring(fb.last_row), tostring(fb.error)))
      io_.stderr:write(M.resume_hint(call, summary.rows))
      return exit_for(fb.error)
    end
    return M.EXIT.api
  end
  return M.EXIT.ok
end

--- Workflow actions (`leads import`).
function M.workflow(call)
  if call.entity.lua_name == "leads" and call.op.lua_method == "import" then
    return M.import(call)
  end
  usage("no workflow for " .. call.entity.lua_name .. " " .. call.op.lua_method)
end

return M
