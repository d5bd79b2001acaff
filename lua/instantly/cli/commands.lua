--- The command tree of the `instantly` CLI, built from the entity data.
-- `instantly <entity> <action> [path args] [--field value]...`: one entity
-- command per `instantly.entities` file and one action per catalog
-- operation, plus a few workflow actions (`leads import`). Parsers are built
-- lazily: the top level lists entities without building their actions, and
-- only the entity a command names gets its action parsers.
-- @module instantly.cli.commands

local argparse = require("argparse")
local index = require("instantly.entities")
local params = require("instantly.cli.params")

local M = {}

--- Global options: name, whether it takes a value, help, group.
M.GLOBALS = {
  { "--json", false, "Print pretty JSON (the default when stdout is not a terminal).", "Output" },
  { "--jsonl", false, "Print JSON Lines: one record per line.", "Output" },
  { "--table", false, "Print an aligned table even when stdout is not a terminal.", "Output" },
  { "--columns", true, "Comma-separated columns for the table view.", "Output" },
  { "--all", false, "Follow pagination and print every item of a list.", "Output" },
  { "--chart", false, "Draw a terminal chart of sent/opened/replied per day "
    .. "(analytics campaign_daily, account_daily).", "Output" },
  { "--out", true, "Write a lead export to this CSV file (leads export).", "Output" },
  { "--data", true, "Request parameters as a JSON object: @file.json, - for stdin, or inline JSON. "
    .. "Flags override its fields.", "Request" },
  { "--wait", false, "On calls that start a background job, wait for it to finish.", "Request" },
  { "--no-validate", false, "Send the parameters even when they fail the local checks (enums, ranges, formats, "
    .. "nested fields); each problem is printed on stderr.", "Request" },
  { "--dry-run", false, "Print the exact request (key redacted) and send nothing.", "Safety" },
  { "--yes", false, "Confirm a destructive operation without asking.", "Safety" },
  { "--base-url", true, "API base URL (default: INSTANTLY_BASE_URL or https://api.instantly.ai).", "Connection" },
  { "--api-key-file", true, "Read the API key from this file (default: INSTANTLY_API_KEY).", "Connection" },
  { "--mock", false, "Run against a local mock server started for this command.", "Connection" },
  { "--workspace", true, "Act on this sub-workspace (x-as-workspace; agency keys).", "Connection" },
  { "--timeout", true, "Seconds a request may take (default 60).", "Connection" },
  { "--verbose", false, "Log each request and response (key redacted) on stderr.", "Connection" },
  { "--completion", true, "Print a completion script for bash, zsh or fish and exit "
    .. "(e.g. `source <(instantly --completion bash)`).", "Shell" },
}

local TAKES_VALUE = {}
for _, g in ipairs(M.GLOBALS) do
  TAKES_VALUE[g[1]] = g[2]
end
TAKES_VALUE["-y"] = false

M.EPILOG = [[
Environment:
   INSTANTLY_API_KEY    API key (never printed); or --api-key-file
   INSTANTLY_BASE_URL   API base URL; or --base-url

Exit codes: 0 success, 1 API error, 2 usage error, 3 transport error.]]

-- Workflow actions that are not single catalog operations.
M.EXTRA = {
  leads = {
    {
      lua_method = "import",
      summary = "Import leads from a CSV file into a campaign or list, in batches, with a progress bar",
      args = {
        { name = "campaign_id", optional = true,
          description = "Campaign to add the leads to (use --list_id for a list instead)" },
        { name = "file", description = "CSV file with a header row; an 'email' column is required" },
      },
      options = {
        { name = "list_id", type = "string", format = "uuid", description = "Lead list to add the leads to" },
        { name = "batch_size", type = "integer", min = 1, max = 1000,
          description = "Leads per request (default 1000)" },
        { name = "concurrency", type = "integer", min = 1, max = 32,
          description = "Batches in flight at once (default 4)" },
        { name = "checkpoint", type = "string",
          description = "Resume file: a killed import run again with it skips the batches already accepted" },
        { name = "rejects", type = "string",
          description = "CSV file to receive every row that was not sent, with its row, line and reason" },
        { name = "skip_if_in_workspace", type = "boolean", description = "Skip leads already in the workspace" },
        { name = "skip_if_in_campaign", type = "boolean", description = "Skip leads already in the campaign" },
        { name = "skip_if_in_list", type = "boolean", description = "Skip leads already in the list" },
        { name = "verify", type = "boolean", description = "Verify addresses on import (verify_leads_on_import)" },
        { name = "blocklist_id", type = "string", format = "uuid", description = "Block list to check against" },
        { name = "assigned_to", type = "string", format = "uuid",
          description = "Workspace user to assign the leads to" },
      },
      write = true,
    },
  },
}

local function first_sentence(s)
  s = tostring(s or "")
  local one = s:match("^(.-%.)%s") or s
  return one
end

--- Entity lookup by `lua_name`, slug (`lead-lists`) or kebab spelling.
function M.entity(word)
  if type(word) ~= "string" then return nil end
  local want = word:gsub("-", "_")
  for _, name in ipairs(index.entities) do
    if name == want then return require("instantly.entities." .. name) end
  end
  for _, name in ipairs(index.entities) do
    local e = require("instantly.entities." .. name)
    if e.slug == word then return e end
  end
  return nil
end

--- Every entity, in catalog order.
function M.entities()
  local out = {}
  for i, name in ipairs(index.entities) do out[i] = require("instantly.entities." .. name) end
  return out
end

--- The action for `word` on entity `e`: a catalog operation or a workflow
-- action (`extra = true`).
function M.action(e, word)
  if type(word) ~= "string" then return nil end
  local want = word:gsub("-", "_")
  for _, x in ipairs(M.EXTRA[e.lua_name] or {}) do
    if x.lua_method == want then return setmetatable({ extra = true }, { __index = x }) end
  end
  for _, op in ipairs(e.operations) do
    if op.lua_method == want then return op end
  end
  return nil
end

--- Every action name of an entity (operations, then workflow actions).
function M.action_names(e)
  local out = {}
  for _, op in ipairs(e.operations) do out[#out + 1] = op.lua_method end
  for _, x in ipairs(M.EXTRA[e.lua_name] or {}) do out[#out + 1] = x.lua_method end
  return out
end

local function edit_distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

--- The closest of `names` to `word`, if it is close enough to suggest.
function M.suggest(word, names)
  local best, bd = nil, math.huge
  for _, n in ipairs(names) do
    local d = edit_distance(word, n)
    if d < bd then best, bd = n, d end
  end
  if best and bd <= math.max(2, #word // 3) then return best end
  return nil
end

--- Split argv into the entity word, the action word and where they are,
-- skipping global options and their values.
function M.locate(argv)
  local words, i = {}, 1
  while i <= #argv and #words < 2 do
    local a = argv[i]
    if a == "--" then break end
    if a:sub(1, 1) == "-" and a ~= "-" then
      local name = a:match("^(%-%-?[^=]+)")
      if TAKES_VALUE[name] and not a:find("=", 1, true) then i = i + 1 end
    else
      words[#words + 1] = { word = a, pos = i }
    end
    i = i + 1
  end
  return words[1], words[2]
end

--- Does `word` (an option as typed, `--name` without `=value`) take a
-- value, for the global options or the flags of `op`?
function M.takes_value(word, op)
  if TAKES_VALUE[word] ~= nil then return TAKES_VALUE[word] end
  if not op then return false end
  for _, p in ipairs(op.options or params.flags(op)) do
    if word == params.flag_name(p) or word == params.alias(p) then return p.type ~= "boolean" end
  end
  return false
end

--- Does argv ask for help (before any `--`)?
function M.wants_help(argv)
  for _, a in ipairs(argv) do
    if a == "--" then return false end
    if a == "-h" or a == "--help" then return true end
  end
  return false
end

local function add_globals(p)
  local groups, order = {}, {}
  for _, g in ipairs(M.GLOBALS) do
    local name, takes, help, group = g[1], g[2], g[3], g[4]
    local el
    if takes then
      el = p:option(name, help):args(1):target("g_" .. name:sub(3):gsub("-", "_"))
    else
      local n = name == "--yes" and "-y --yes" or name
      el = p:flag(n, help):target("g_" .. name:sub(3):gsub("-", "_"))
    end
    if not groups[group] then groups[group] = {}; order[#order + 1] = group end
    table.insert(groups[group], el)
  end
  for _, gname in ipairs(order) do p:group(gname .. " options", table.unpack(groups[gname])) end
end

local function new_parser(width)
  local p = argparse("instantly", "Command-line client for the Instantly.ai API V2: every catalog "
    .. "operation as `instantly <entity> <action>`, generated from the SDK's entity definitions.")
  p:help_max_width(width)
  p:usage_max_width(width)
  p:command_target("entity")
  p:epilog(M.EPILOG)
  add_globals(p)
  return p
end

local function op_description(op)
  local lines = { op.summary or "" }
  if op.unconfirmed then
    lines[#lines + 1] = ""
    lines[#lines + 1] = "UNCONFIRMED: "
      .. tostring(op.evidence_note or "no public source built from the live spec lists it.")
  end
  if not op.extra then
    lines[#lines + 1] = ""
    lines[#lines + 1] = string.format("%s %s%s", op.method, index.path_prefix, op.path)
    local r = op.response or {}
    local ret = r.kind or "object"
    if r.item then ret = ret .. " of " .. r.item end
    if op.paginated then ret = ret .. " (cursor pages; --all follows them)" end
    lines[#lines + 1] = "Returns: " .. ret .. (r.notes and (". " .. r.notes) or "")
    if op.async == "background_job" then
      lines[#lines + 1] = "Starts a background job; --wait polls it to the end."
    elseif op.async == "accepted_202" then
      lines[#lines + 1] = "Accepted (202): queued on the server, nothing to wait for."
    elseif op.async == "poll" then
      lines[#lines + 1] = "Finishes asynchronously: poll the matching status operation."
    end
    if op.rate_limit then lines[#lines + 1] = "Rate limit: " .. tostring(op.rate_limit) end
    if op.scopes and #op.scopes > 0 then lines[#lines + 1] = "Scopes (any): " .. table.concat(op.scopes, ", ") end
  end
  if M.destructive(op) then
    lines[#lines + 1] = "Destructive: asks for confirmation on a terminal; pass --yes otherwise."
  end
  return table.concat(lines, "\n")
end

--- Is the operation one that needs confirmation (delete, bulk delete,
-- cancel, move, change owner, removal)?
function M.destructive(op)
  if op.method == "DELETE" then return true end
  local m = op.lua_method or ""
  return m:match("^delete") ~= nil or m:match("^cancel") ~= nil or m:match("^move") ~= nil
    or m:match("^remove") ~= nil or m == "change_owner" or m == "schedule_removal"
end

--- Does the operation change anything on the server?
function M.is_write(op)
  if op.extra then return op.write == true end
  return op.method ~= "GET" and not (op.paginated and op.method == "POST")
end

local function add_action(ep, e, op)
  local ap = ep:command(op.lua_method, op_description(op))
  ap:summary((op.unconfirmed and "[unconfirmed] " or "") .. (op.summary or ""))
  local words = { "instantly", e.lua_name, op.lua_method }
  for _, pp in ipairs(op.path_params or op.args or {}) do
    words[#words + 1] = pp.optional and ("[<" .. pp.name .. ">]") or ("<" .. pp.name .. ">")
  end
  if #(op.options or params.flags(op)) > 0 then words[#words + 1] = "[--field value]..." end
  words[#words + 1] = "[options]"
  ap:usage("Usage: " .. table.concat(words, " "))
  ap:epilog("Options for every action (output format, --all, --data, --dry-run, --yes, --wait, "
    .. "--base-url, --api-key-file, --mock): see `instantly --help`.")
  local bools = {}
  for _, pp in ipairs(op.path_params or op.args or {}) do
    local kind = (pp.type and pp.type ~= "string") and (" (" .. pp.type .. ")") or ""
    local a = ap:argument(pp.name, (pp.description or pp.name) .. kind)
    a:target("p_" .. pp.name)
    -- A workflow's positionals are all optional to argparse (`leads import
    -- FILE` with --list_id fills the first one); the workflow sorts them out.
    if pp.optional or op.extra then a:args("?") end
  end
  local list = op.options or params.flags(op)
  local q, b = {}, {}
  for _, p in ipairs(list) do
    local o = ap:option(params.flag_name(p), params.describe(p))
    o:target("f_" .. p.name)
    o:argname("<" .. params.metavar(p) .. ">")
    if p.type == "array" then o:count("*") end
    if p.type == "boolean" then
      bools[params.flag_name(p)] = true
      local alias = params.alias(p)
      if alias then bools[alias] = true end
    end
    if p.where == "query" then q[#q + 1] = o else b[#b + 1] = o end
  end
  if #q > 0 then ap:group("Query parameters", table.unpack(q)) end
  if #b > 0 then ap:group(op.extra and "Options" or "Body fields", table.unpack(b)) end
  return ap, bools
end

--- Build the parser. With `entity` nil, the top level with every entity
-- listed; with `entity`, only that entity's actions are built (and with
-- `op` too, only that action's options); with `entity == true`, every
-- action of every entity (for completion scripts).
-- Returns the root parser, the entity parser, the action parser and the
-- set of boolean flag spellings of that action.
function M.build(width, entity, op)
  local root = new_parser(width)
  local eparser, aparser, bools
  for _, e in ipairs(M.entities()) do
    local c = root:command(e.lua_name, e.description or "")
    c:summary(first_sentence(e.description))
    if e.slug and e.slug ~= e.lua_name and e.slug:gsub("-", "_") ~= e.lua_name then
      c:hidden_name(e.slug)
    end
    if entity == true then
      -- Every action of every entity (shell completion scripts).
      c:command_target("action")
      for _, name in ipairs(M.action_names(e)) do add_action(c, e, M.action(e, name)) end
    elseif entity and e.lua_name == entity.lua_name then
      eparser = c
      c:command_target("action")
      c:epilog("Run `instantly " .. e.lua_name .. " <action> --help` for an action's parameters.")
      for _, name in ipairs(M.action_names(e)) do
        local a = M.action(e, name)
        if op and (a.lua_method == op.lua_method) then
          aparser, bools = add_action(c, e, a)
        else
          local s = c:command(name, (a.unconfirmed and "[unconfirmed] " or "") .. (a.summary or ""))
          s:summary((a.unconfirmed and "[unconfirmed] " or "") .. (a.summary or ""))
        end
      end
    end
  end
  return root, eparser, aparser, bools or {}
end

return M
