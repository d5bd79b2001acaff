-- best.lua RAW - folds the repetitions of bench/20-transport.sh: for each
-- row, the line with the best req/s, carrying the largest peak RSS seen.
local best, rss, order = {}, {}, {}
local path = assert(arg[1], "usage: lua5.4 best.lua RAW")
for line in io.lines(path) do
  local w, row, kind, n, s, kb = line:match("^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$")
  if w then
    local rps = tonumber(n) / tonumber(s)
    if not best[row] then order[#order + 1] = row end
    if not best[row] or rps > best[row].rps then
      best[row] = { w = w, kind = kind, n = n, s = s, rps = rps }
    end
    rss[row] = math.max(rss[row] or 0, tonumber(kb))
  end
end
for _, row in ipairs(order) do
  local b = best[row]
  print(table.concat({ b.w, row, b.kind, b.n, b.s, rss[row] }, " "))
end
