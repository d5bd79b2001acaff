--- How the CLI prints results: aligned tables for people, JSON for programs.
-- A table is chosen when stdout is a terminal, pretty JSON when it is piped
-- or with `--json`, JSON Lines with `--jsonl`. Tables are cut to the
-- terminal width, widest column first.
-- @module instantly.cli.output

local term = require("instantly.cli.term")
local columns = require("instantly.cli.columns")

local M = {}

local MAX_CELL = 48

-- "0=Draft, 1=Active, 2=Paused" in a field description becomes a lookup
-- table, so a table cell can say "Active" rather than 1.
local function enum_labels(desc)
  if type(desc) ~= "string" then return nil end
  local t, n = {}, 0
  for k, label in desc:gmatch("(%-?%d+)%s*=%s*([^,;]+)") do
    t[tonumber(k)] = label:match("^%s*(.-)%s*$")
    n = n + 1
  end
  if n >= 2 then return t end
  return nil
end
M.enum_labels = enum_labels

--- Field-name -> label lookup tables for an entity's schema fields.
function M.labels_for(fields)
  local out = {}
  for _, f in ipairs(fields or {}) do
    local l = enum_labels(f.description)
    if l then out[f.name] = l end
  end
  return out
end

--- The text of one table cell.
function M.cell(v, labels, json)
  local t = type(v)
  if v == nil or (json and v == json.null) then return "" end
  if t == "number" then
    if labels and labels[v] then return labels[v] end
    if math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 1e15 then
      return string.format("%d", v)
    end
    return tostring(v)
  elseif t == "boolean" then
    return v and "yes" or "no"
  elseif t == "table" then
    if json then
      local ok, s = pcall(json.encode, v)
      if ok and s then return s end
    end
    return "…"
  end
  return (tostring(v):gsub("[\r\n\t]+", " "))
end

--- The header shown for a column: upper case, without the noise words
-- that make analytics names long (`emails_sent_count` -> `EMAILS_SENT`).
function M.header(col)
  local h = col:gsub("_count$", ""):gsub("^stat_", ""):gsub("^campaign_(%a)", "%1")
  return h:upper()
end

--- Render rows as an aligned table no wider than `width`.
-- `cols` names the columns; `labels` maps column -> enum labels. Too wide
-- a table first drops the columns from the right that cannot fit even cut
-- to their floor (their header, or 10 characters), then cuts its widest
-- columns down towards their floors.
function M.table(rows, cols, width, labels, json)
  local cells, widths, floors = {}, {}, {}
  local heads = {}
  for i, c in ipairs(cols) do
    heads[i] = M.header(c)
    widths[i] = term.len(heads[i])
  end
  for r, row in ipairs(rows) do
    cells[r] = {}
    for i, c in ipairs(cols) do
      local s = M.cell(type(row) == "table" and row[c] or nil, labels and labels[c], json)
      s = term.cut(s, MAX_CELL)
      cells[r][i] = s
      widths[i] = math.max(widths[i], term.len(s))
    end
  end
  for i, w in ipairs(widths) do floors[i] = math.min(w, math.max(10, term.len(heads[i]))) end
  -- The first column names the row (id, email, name): keep it whole up to
  -- a UUID, so it can be copied from the terminal.
  if floors[1] then floors[1] = math.min(widths[1], math.max(floors[1], 36)) end
  local n = #cols
  local function total(w)
    local sum = 0
    for i = 1, n do sum = sum + w[i] end
    return sum + 2 * math.max(0, n - 1)
  end
  -- Columns that cannot fit even at their floor go first, from the right.
  while n > 1 and total(floors) > width do n = n - 1 end
  while total(widths) > width do
    local wi, wmax = nil, 0
    for i = 1, n do
      if widths[i] > floors[i] and widths[i] > wmax then wi, wmax = i, widths[i] end
    end
    if not wi then
      widths[1] = math.max(1, width)
      break
    end
    widths[wi] = wmax - 1
  end
  local lines = {}
  local function line(vals)
    local parts = {}
    for i = 1, n do
      local s = term.cut(vals[i], widths[i])
      if i < n then s = s .. string.rep(" ", widths[i] - term.len(s)) end
      parts[i] = s
    end
    local text = table.concat(parts, "  "):gsub("%s+$", "")
    lines[#lines + 1] = text
  end
  line(heads)
  for _, r in ipairs(cells) do line(r) end
  return table.concat(lines, "\n") .. "\n"
end

local function sorted_keys(obj)
  local keys = {}
  for k in pairs(obj) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  return keys
end

--- One record as "key  value" lines, schema order first.
function M.record(obj, fields, width, labels, json)
  local order, seen = {}, {}
  local function present(k)
    local v = obj[k]
    return v ~= nil and not (json and v == json.null)
  end
  for _, f in ipairs(fields or {}) do
    seen[f.name] = true
    if present(f.name) then order[#order + 1] = f.name end
  end
  for _, k in ipairs(sorted_keys(obj)) do
    if not seen[k] and present(k) then order[#order + 1] = k end
  end
  local kw = 0
  for _, k in ipairs(order) do kw = math.max(kw, term.len(k)) end
  local out = {}
  for _, k in ipairs(order) do
    local v = M.cell(obj[k], labels and labels[k], json)
    local room = math.max(10, width - kw - 2)
    out[#out + 1] = k .. string.rep(" ", kw - term.len(k)) .. "  " .. term.cut(v, room)
  end
  return table.concat(out, "\n") .. "\n"
end

local function is_list(v, json)
  return type(v) == "table" and json.is_array(v)
end

--- Print a result.
-- `res` is the decoded value; `shape` says what it is:
-- "page" (a cursor page, or all items with --all), "array", "object",
-- "text", "empty". `ctx` carries `mode` ("table", "json", "jsonl"),
-- `out` (a file), `width`, `json` (codec), `op_key`, `item`, `fields`.
function M.print(res, shape, ctx)
  local out, json = ctx.out, ctx.json
  if shape == "text" then
    out:write(tostring(res or ""))
    if type(res) == "string" and res ~= "" and res:sub(-1) ~= "\n" then out:write("\n") end
    return
  end
  if shape == "empty" then
    -- No content (HTTP 204): nothing to print; the exit code says it worked.
    return
  end
  local rows
  if shape == "page" then
    rows = res.items or {}
  elseif is_list(res, json) then
    rows = res
  end
  if ctx.mode == "jsonl" then
    if rows then
      for _, r in ipairs(rows) do out:write(json.encode(r), "\n") end
    else
      out:write(json.encode(res), "\n")
    end
    return
  end
  if ctx.mode == "json" then
    out:write(json.encode(res, true), "\n")
    return
  end
  local labels = M.labels_for(ctx.fields)
  if rows then
    if #rows == 0 then
      out:write("(no results)\n")
      return
    end
    local objects = type(rows[1]) == "table"
    if not objects then
      for _, r in ipairs(rows) do out:write(M.cell(r, nil, json), "\n") end
      return
    end
    local cols = ctx.columns or columns.pick(ctx.op_key, ctx.item, ctx.fields, rows)
    if #cols == 0 then
      out:write(json.encode(rows, true), "\n")
      return
    end
    out:write(M.table(rows, cols, ctx.width, labels, json))
    return
  end
  if type(res) == "table" then
    out:write(M.record(res, ctx.fields, ctx.width, labels, json))
  else
    out:write(M.cell(res, nil, json), "\n")
  end
end

return M
