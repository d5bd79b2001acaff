-- best.lua RAW - folds the repetitions of bench/20-transport.sh. RAW lines
-- are "WORKLOAD ROW KIND REQUESTS SECONDS LOOP_CPU_S RSS_KB USER_S SYS_S REP"
-- (LOOP_CPU_S from the row itself, start-up excluded; RSS and the times
-- after it from /usr/bin/time for the whole process). For each row it
-- prints "WORKLOAD ROW KIND BEST_REQ_PER_S CPU_US_PER_REQ RSS_KB REPS":
-- the best req/s, the least CPU per request, the largest peak RSS, and the
-- req/s of every repetition as REP=RPS,... so that report.lua can compare
-- a row with its baseline run in the same repetition.
local best, cpu, rss, reps, order, info = {}, {}, {}, {}, {}, {}
local path = assert(arg[1], "usage: lua5.4 best.lua RAW")
for line in io.lines(path) do
  local w, row, kind, n, s, c, kb, rep = line:match("^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) %S+ %S+ (%S+)$")
  if w and tonumber(n) > 0 then
    local rps = tonumber(n) / tonumber(s)
    local us = tonumber(c) * 1e6 / tonumber(n)
    if not best[row] then
      order[#order + 1] = row
      info[row] = { w = w, kind = kind }
      reps[row] = {}
    end
    best[row] = math.max(best[row] or 0, rps)
    cpu[row] = math.min(cpu[row] or math.huge, us)
    rss[row] = math.max(rss[row] or 0, tonumber(kb))
    reps[row][#reps[row] + 1] = rep .. "=" .. ("%.1f"):format(rps)
  end
end
for _, row in ipairs(order) do
  print(table.concat({ info[row].w, row, info[row].kind, ("%.1f"):format(best[row]), ("%.2f"):format(cpu[row]),
    rss[row], table.concat(reps[row], ",") }, " "))
end
