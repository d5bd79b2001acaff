--- Terminal bar chart for daily analytics (sent, opened, replied per day).
-- One line per day; the three series are drawn over each other on one bar,
-- the smaller series in denser shading, with the numbers at the end.
-- @module instantly.cli.chart

local term = require("instantly.cli.term")

local M = {}

M.SERIES = {
  { key = "sent", label = "sent", glyph = "░" },
  { key = "opened", label = "opened", glyph = "▒" },
  { key = "replies", label = "replied", glyph = "█" },
}

local function num(v)
  if type(v) == "number" then return v end
  return tonumber(v) or 0
end

--- Draw `rows` (each with `date`, `sent`, `opened`, `replies`; several
-- rows of one date are added up) into a string no wider than `width`.
function M.daily(rows, width, series)
  series = series or M.SERIES
  width = width or 80
  -- One bar per date: rows for several accounts on one day are summed.
  local by_date, sorted = {}, {}
  for _, r in ipairs(rows) do
    local d = tostring(r.date or "")
    local acc = by_date[d]
    if not acc then
      acc = { date = d }
      by_date[d] = acc
      sorted[#sorted + 1] = acc
    end
    for _, s in ipairs(series) do acc[s.key] = (acc[s.key] or 0) + num(r[s.key]) end
  end
  table.sort(sorted, function(a, b) return tostring(a.date or "") < tostring(b.date or "") end)
  local max, numw, datew = 0, 1, 4
  for _, r in ipairs(sorted) do
    datew = math.max(datew, term.len(tostring(r.date or "")))
    for _, s in ipairs(series) do
      local v = num(r[s.key])
      if v > max then max = v end
      numw = math.max(numw, #string.format("%d", math.floor(v)))
    end
  end
  local legend = {}
  for _, s in ipairs(series) do legend[#legend + 1] = s.glyph .. " " .. s.label end
  local lines = { table.concat(legend, "   ") }
  if #sorted == 0 then
    lines[#lines + 1] = "(no days in range)"
    return table.concat(lines, "\n") .. "\n"
  end
  -- "date │bar  n/n/n"
  local numbers_w = (numw + 1) * #series
  local barw = math.max(10, width - datew - 3 - numbers_w)
  for _, r in ipairs(sorted) do
    local cells = {}
    for x = 1, barw do cells[x] = " " end
    -- Widest series first, so smaller ones are drawn on top of it.
    local order = {}
    for i, s in ipairs(series) do order[i] = s end
    table.sort(order, function(a, b) return num(r[a.key]) > num(r[b.key]) end)
    for _, s in ipairs(order) do
      local v = num(r[s.key])
      local n = max > 0 and math.floor(v / max * barw + 0.5) or 0
      if v > 0 and n == 0 then n = 1 end
      for x = 1, n do cells[x] = s.glyph end
    end
    local nums = {}
    for i, s in ipairs(series) do nums[i] = string.format("%" .. numw .. "d", math.floor(num(r[s.key]))) end
    local date = tostring(r.date or "")
    lines[#lines + 1] = date .. string.rep(" ", datew - term.len(date)) .. " │"
      .. table.concat(cells) .. " " .. table.concat(nums, "/")
  end
  local labels = {}
  for i, s in ipairs(series) do labels[i] = s.label end
  local axis = string.rep(" ", datew) .. " └" .. string.rep("─", barw)
  local caption = " " .. table.concat(labels, "/")
  if term.len(axis) + term.len(caption) <= width then axis = axis .. caption end
  lines[#lines + 1] = axis
  return table.concat(lines, "\n") .. "\n"
end

return M
