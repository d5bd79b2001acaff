-- report.lua SLICES [SCALE [NEWCOST]] - prints the tables of
-- bench/20-transport.sh. SLICES holds bench/transport/lockstep.c's lines,
-- each after its load's name:
--   WORKLOAD row NAME KIND
--   WORKLOAD slice ROUND NAME KIND REQUESTS ELAPSED_S CPU_S
--   WORKLOAD rss NAME KIND KB
--   WORKLOAD fail NAME KIND REASON...
-- A row's figures are medians over the rounds of its slices. Its ratio to
-- its baseline (c_easy for sequential rows, c_multi for rows with requests
-- in flight) is taken per round from the two slices of that round (they ran
-- within a round of each other, so a drift of the machine's speed touches
-- both alike): req/s row / baseline, and CPU per request baseline / row.
-- Printed: the median over the rounds and the interquartile range. A row
-- that failed is left out (and said so).
local path = assert(arg[1], "usage: lua5.4 report.lua SLICES [SCALE [NEWCOST]]")
local order, by, failed = {}, {}, {}
for line in io.lines(path) do
  local w, what, rest = line:match("^(%S+) (%S+) (.*)$")
  local t = w and by[w]
  if what == "row" then
    local name, kind = rest:match("^(%S+) (%S+)$")
    if not t then
      t = {}
      by[w] = t
      order[#order + 1] = w
    end
    local r = { row = name, kind = kind, slices = {} }
    t[#t + 1] = r
    t[name] = r
  elseif what == "slice" and t then
    local round, name, n, e, c = rest:match("^(%d+) (%S+) %S+ (%d+) (%S+) (%S+)$")
    local r = t[name]
    n, e, c = tonumber(n), tonumber(e), tonumber(c)
    if r and n and n > 0 and e > 0 then r.slices[tonumber(round)] = { rps = n / e, us = c * 1e6 / n } end
  elseif what == "rss" and t then
    local name, kb = rest:match("^(%S+) %S+ (%d+)$")
    if t[name] then t[name].rss = tonumber(kb) / 1024 end
  elseif what == "fail" and t then
    local name, why = rest:match("^(%S+) %S+ (.*)$")
    if t[name] then
      t[name].failed = why
      failed[#failed + 1] = ("%s %s: %s"):format(w, name, why)
    end
  end
end

-- The q-quantile of the sorted list v (linear between neighbours).
local function quantile(v, q)
  local x = 1 + (#v - 1) * q
  local i = math.floor(x)
  return v[i] + (v[math.min(i + 1, #v)] - v[i]) * (x - i)
end

-- { median, q1, q3, count, list } of the values of f(round) over the
-- rounds where f gives one; nil without any.
local function over_rounds(rounds, f)
  local v = {}
  for _, round in ipairs(rounds) do
    local x = f(round)
    if x then v[#v + 1] = x end
  end
  if #v == 0 then return nil end
  local list = { table.unpack(v) }
  table.sort(v)
  return { median = quantile(v, 0.5), q1 = quantile(v, 0.25), q3 = quantile(v, 0.75), n = #v, list = list }
end

local function rounds_of(r)
  local rounds = {}
  for round in pairs(r.slices) do rounds[#rounds + 1] = round end
  table.sort(rounds)
  return rounds
end

-- Per-round ratios of r to base: req/s and CPU per request.
local function paired(r, base)
  if not (r and base) or r.failed or base.failed then return nil end
  local rounds = rounds_of(r)
  local rps = over_rounds(rounds, function(i)
    return base.slices[i] and r.slices[i].rps / base.slices[i].rps
  end)
  local cpu = over_rounds(rounds, function(i)
    return base.slices[i] and base.slices[i].us / r.slices[i].us
  end)
  return rps, cpu
end

local function baseline(t, r)
  return r.kind == "multi" and t.c_multi or t.c_easy
end

io.write(("%-6s %-18s %-6s %9s %7s %11s %11s %9s %9s\n"):format("load", "row", "kind", "req/s", "ratio",
  "(IQR)", "cpu us/req", "cpu ratio", "peak RSS"))
for _, w in ipairs(order) do
  for _, r in ipairs(by[w]) do
    local rounds = rounds_of(r)
    if r.failed then
      io.write(("%-6s %-18s %-6s failed: %s\n"):format(w, r.row, r.kind, r.failed))
    elseif #rounds > 0 then
      local rps = over_rounds(rounds, function(i) return r.slices[i].rps end)
      local us = over_rounds(rounds, function(i) return r.slices[i].us end)
      local ratio, cpu_ratio = paired(r, baseline(by[w], r))
      io.write(("%-6s %-18s %-6s %9.0f %7s %11s %11.1f %9s %6s MB\n"):format(w, r.row, r.kind, rps.median,
        ratio and ("%.2fx"):format(ratio.median) or "-",
        ratio and ("%.2f-%.2f"):format(ratio.q1, ratio.q3) or "", us.median,
        cpu_ratio and ("%.2fx"):format(cpu_ratio.median) or "-", r.rss and ("%.1f"):format(r.rss) or "?"))
    end
  end
end
for _, f in ipairs(failed) do io.write("failed and left out: ", f, "\n") end

-- The targets: the verdict by the median over the rounds of the per-round
-- req/s ratio, with its interquartile range and how many rounds met the
-- target, and the same by CPU per request. Each also goes out as an
-- "ISSUE14|workload|baseline|figure|ratio|target|IQR|rounds met" line that
-- tools/bench.sh gathers into one table at the end of `make bench`.
local function met_in(s, want)
  local k = 0
  for _, x in ipairs(s.list) do if x >= want then k = k + 1 end end
  return k
end

local function target(load, label, row, base, want)
  local t = by[load] or {}
  local r, b = t[row], t[base]
  local ratio, cpu = paired(r, b)
  if not (ratio and cpu) then
    io.write(("target: %s: not measured (row %s or %s missing or failed)\n"):format(label, row, base))
    io.write(("ISSUE14|%s [%s]|%s|not measured||%g\n"):format(label, row, base, want))
    return
  end
  local b_rps = over_rounds(rounds_of(b), function(i) return b.slices[i].rps end).median
  local r_rps = over_rounds(rounds_of(r), function(i) return r.slices[i].rps end).median
  io.write(("target: %s >= %.2fx %s (%s): req/s %.2fx %s (IQR %.2f-%.2f, %d/%d rounds met); "
    .. "cpu %.2fx %s (IQR %.2f-%.2f, %d/%d)\n"):format(row, want, base, label,
    ratio.median, ratio.median >= want and "met" or "MISSED", ratio.q1, ratio.q3, met_in(ratio, want), ratio.n,
    cpu.median, cpu.median >= want and "met" or "MISSED", cpu.q1, cpu.q3, met_in(cpu, want), cpu.n))
  io.write(("ISSUE14|%s [%s]|%s: %.0f req/s|%.0f req/s (cpu %.2fx)|%.4f|%g|%.2f-%.2f|%d/%d\n"):format(label, row,
    base, b_rps, r_rps, cpu.median, ratio.median, want, ratio.q1, ratio.q3, met_in(ratio, want), ratio.n))
end
target("small", "small GET, sequential", "core_request", "c_easy", 0.85)
target("small", "small GET, sequential", "sdk_client", "c_easy", 0.85)
target("small", "small GET, 4 in flight", "core_submit_poll", "c_multi", 0.80)
target("small", "small GET, 4 in flight (client:gather)", "sdk_gather", "c_multi", 0.80)
target("page", "GET 100-campaign page + decode", "sdk_client", "luasocket+cjson", 2.5)
target("leads", "POST 1000 leads, encoded per call", "sdk_client", "luasocket+cjson", 2.0)

-- Scaling rows (one repetition each): "KIND PARAM ROW REQUESTS SECONDS CPU_S RSS_KB".
local scale = arg[2] and io.open(arg[2])
if scale then
  local page, conc = {}, {}
  for line in scale:lines() do
    local kind, param, row, n, secs, cpu, kb = line:match("^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$")
    if kind then
      local r = { n = tonumber(n), secs = tonumber(secs), cpu = tonumber(cpu), kb = tonumber(kb) }
      if kind == "page" then page[#page + 1] = { tonumber(param), r } end
      if kind == "conc" then
        local p = tonumber(param)
        conc[p] = conc[p] or {}
        conc[p][row] = r
      end
    end
  end
  scale:close()
  io.write("scaling: page size (sdk_client: campaigns:list{limit = N}, fetch + decode + records)\n")
  io.write(("  %-8s %10s %12s %12s %10s\n"):format("items", "req/s", "ms/request", "cpu us/item", "peak RSS"))
  for _, p in ipairs(page) do
    local r = p[2]
    io.write(("  %-8d %10.0f %12.3f %12.2f %7.1f MB\n"):format(p[1], r.n / r.secs, r.secs * 1000 / r.n,
      r.cpu * 1e6 / r.n / p[1], r.kb / 1024))
  end
  io.write("scaling: concurrency (small GET; sdk_gather = client:gather, c_multi = plain libcurl multi)\n")
  io.write(("  %-8s %12s %12s %7s %14s %10s\n"):format("inflight", "c_multi/s", "sdk/s", "ratio", "sdk cpu us/req",
    "sdk RSS"))
  for _, c in ipairs({ 1, 2, 4, 8, 16 }) do
    local row = conc[c]
    if row and row.c_multi and row.sdk_gather then
      local a, b = row.c_multi, row.sdk_gather
      io.write(("  %-8d %12.0f %12.0f %6.2fx %14.1f %7.1f MB\n"):format(c, a.n / a.secs, b.n / b.secs,
        (b.n / b.secs) / (a.n / a.secs), b.cpu * 1e6 / b.n, b.kb / 1024))
    end
  end
end

-- instantly.new{}: "MS_PER_NEW SEARCHES_PER_NEW" from new_cost.lua.
if arg[3] then
  local ms, searches = arg[3]:match("^(%S+) (%S+)$")
  ms, searches = tonumber(ms), tonumber(searches)
  if ms then
    local ok = ms <= 0.3 and searches == 0
    io.write(("target: instantly.new{} <= 0.3 ms, no file-system search: %.3f ms, %g searches %s\n"):format(
      ms, searches, ok and "met" or "MISSED"))
    io.write(("ISSUE14|instantly.new{} (ms, package searches)|<= 0.3 ms, none|%.3f ms, %g searches|%.4f|1\n")
      :format(ms, searches, (searches == 0 and 0.3 / ms or 0)))
  end
end
