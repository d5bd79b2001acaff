-- best.lua RAW - folds the repetitions of bench/20-transport.sh. RAW lines
-- are "WORKLOAD ROW KIND REQUESTS SECONDS RSS_KB USER_S SYS_S"; for each row
-- it prints "WORKLOAD ROW KIND REQ_PER_S CPU_US_PER_REQ RSS_KB" with the best
-- req/s, the least CPU per request and the largest peak RSS seen.
local best, cpu, rss, order, info = {}, {}, {}, {}, {}
local path = assert(arg[1], "usage: lua5.4 best.lua RAW")
for line in io.lines(path) do
  local w, row, kind, n, s, kb, u, sy = line:match("^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$")
  if w and tonumber(n) > 0 then
    local rps = tonumber(n) / tonumber(s)
    local us = (tonumber(u) + tonumber(sy)) * 1e6 / tonumber(n)
    if not best[row] then
      order[#order + 1] = row
      info[row] = { w = w, kind = kind }
    end
    best[row] = math.max(best[row] or 0, rps)
    cpu[row] = math.min(cpu[row] or math.huge, us)
    rss[row] = math.max(rss[row] or 0, tonumber(kb))
  end
end
for _, row in ipairs(order) do
  print(table.concat({ info[row].w, row, info[row].kind, ("%.1f"):format(best[row]), ("%.2f"):format(cpu[row]),
    rss[row] }, " "))
end
