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

-- The targets of the transport (issue 3), on the small GET: by req/s as
-- asked, and by CPU per request (baseline CPU / row CPU), the figure a
-- busy machine disturbs least.
local small = by.small or {}
local function target(row, base, want)
  local r, b = small[row], small[base]
  if not (r and b) then return end
  local ratio, cpu_ratio = paired(r, b) or r.rps / b.rps, b.us / r.us
  io.write(("target: %s >= %.2fx %s (small GET): req/s %.2fx %s; cpu %.2fx %s\n"):format(row, want, base,
    ratio, ratio >= want and "met" or "MISSED", cpu_ratio, cpu_ratio >= want and "met" or "MISSED"))
end
target("core_request", "c_easy", 0.85)
target("core_submit_poll", "c_multi", 0.80)

-- The targets of the client (issue 5): a small call through the SDK next
-- to the plain C loop, and a 100-campaign page through the SDK next to
-- LuaSocket + lua-cjson (both ratios by req/s and by CPU per request).
target("sdk_client", "c_easy", 0.80)
do
  local page = by.page or {}
  local r, b = page.sdk_client, page["luasocket+cjson"]
  if r and b then
    local ratio, cpu_ratio = r.rps / b.rps, b.us / r.us
    io.write(("target: sdk_client >= 2.00x luasocket+cjson (100-campaign page): req/s %.2fx %s; cpu %.2fx %s\n")
      :format(ratio, ratio >= 2 and "met" or "MISSED", cpu_ratio, cpu_ratio >= 2 and "met" or "MISSED"))
  end
end
