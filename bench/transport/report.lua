-- report.lua RESULTS - prints the table of bench/20-transport.sh from the
-- lines best.lua wrote ("WORKLOAD ROW KIND REQ_PER_S CPU_US RSS_KB REPS"),
-- with each row's req/s ratio to its C baseline (c_easy for sequential
-- rows, c_multi for rows with requests in flight): the median, over the
-- repetitions, of the row's req/s over the baseline's in the same one.
local path = assert(arg[1], "usage: lua5.4 report.lua RESULTS")
local order, by = {}, {}
for line in io.lines(path) do
  local w, row, kind, rps, us, kb, reps = line:match("^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$")
  if w then
    if not by[w] then
      by[w] = {}
      order[#order + 1] = w
    end
    local r = { row = row, kind = kind, rps = tonumber(rps), us = tonumber(us), rss = tonumber(kb) / 1024,
      reps = {} }
    for rep, v in reps:gmatch("(%d+)=([%d.]+)") do r.reps[tonumber(rep)] = tonumber(v) end
    by[w][#by[w] + 1] = r
    by[w][row] = r
  end
end

-- Median over the repetitions both ran of r / base, nil without any.
local function paired(r, base)
  local q = {}
  for rep, v in pairs(r.reps) do
    if base.reps[rep] then q[#q + 1] = v / base.reps[rep] end
  end
  if #q == 0 then return nil end
  table.sort(q)
  return #q % 2 == 1 and q[(#q + 1) // 2] or (q[#q // 2] + q[#q // 2 + 1]) / 2
end

io.write(("%-6s %-18s %-6s %9s %7s %12s %9s\n"):format("load", "row", "kind", "req/s", "ratio", "cpu us/req",
  "peak RSS"))
for _, w in ipairs(order) do
  for _, r in ipairs(by[w]) do
    local base = r.kind == "multi" and by[w].c_multi or by[w].c_easy
    local ratio = base and paired(r, base)
    io.write(("%-6s %-18s %-6s %9.0f %7s %12.1f %6.1f MB\n"):format(w, r.row, r.kind, r.rps,
      ratio and ("%.2fx"):format(ratio) or "-", r.us, r.rss))
  end
end

-- The targets, by req/s as asked (the median of the paired ratios) and
-- by CPU per request (baseline CPU / row CPU), the figure a busy machine
-- disturbs least. Each also goes out as an "ISSUE14|..." line that
-- tools/bench.sh gathers into one table at the end of `make bench`.
local function target(load, label, row, base, want)
  local t = by[load] or {}
  local r, b = t[row], t[base]
  if not (r and b) then
    io.write(("target: %s: not measured (row %s or %s missing)\n"):format(label, row, base))
    return
  end
  local ratio, cpu_ratio = paired(r, b) or r.rps / b.rps, b.us / r.us
  io.write(("target: %s >= %.2fx %s (%s): req/s %.2fx %s; cpu %.2fx %s\n"):format(row, want, base, label,
    ratio, ratio >= want and "met" or "MISSED", cpu_ratio, cpu_ratio >= want and "met" or "MISSED"))
  io.write(("ISSUE14|%s [%s]|%s: %.0f req/s|%.0f req/s (cpu %.2fx)|%.4f|%g\n"):format(label, row, base, b.rps, r.rps,
    cpu_ratio, ratio, want))
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
