-- report.lua RESULTS - prints the table of bench/20-transport.sh from its
-- result lines ("WORKLOAD ROW KIND REQUESTS SECONDS RSS_KB", best of the
-- repetitions already chosen), with each row's ratio to its C baseline:
-- c_easy for sequential rows, c_multi for rows with requests in flight.
local path = assert(arg[1], "usage: lua5.4 report.lua RESULTS")
local order, by = {}, {}
for line in io.lines(path) do
  local w, row, kind, n, secs, rss = line:match("^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$")
  if w then
    if not by[w] then
      by[w] = {}
      order[#order + 1] = w
    end
    local r = { row = row, kind = kind, rps = tonumber(n) / tonumber(secs), rss = tonumber(rss) / 1024 }
    by[w][#by[w] + 1] = r
    by[w][row] = r
  end
end

local misses = {}
io.write(("%-7s %-20s %-6s %10s %8s %10s\n"):format("load", "row", "kind", "req/s", "ratio", "peak RSS"))
for _, w in ipairs(order) do
  for _, r in ipairs(by[w]) do
    local base = r.kind == "multi" and by[w].c_multi or by[w].c_easy
    local ratio = base and r.rps / base.rps
    io.write(("%-7s %-20s %-6s %10.0f %8s %8.1f MB\n"):format(w, r.row, r.kind, r.rps,
      ratio and ("%.2fx"):format(ratio) or "-", r.rss))
  end
end

-- The targets of the transport (issue 3), on the small GET.
local small = by.small or {}
local function target(row, base, want)
  local r, b = small[row], small[base]
  if not (r and b) then return end
  local ratio = r.rps / b.rps
  local verdict = ratio >= want and "met" or "MISSED"
  io.write(("target: %s >= %.2fx %s on the small GET: %.2fx, %s\n"):format(row, want, base, ratio, verdict))
  if ratio < want then misses[#misses + 1] = row end
end
target("core_request", "c_easy", 0.85)
target("core_submit_poll", "c_multi", 0.80)

-- The targets of the client (issue 5): a small call through the SDK next
-- to the plain C loop, and a 100-campaign page next to LuaSocket + cjson.
target("sdk_client", "c_easy", 0.80)
do
  local page = by.page or {}
  local r, b = page.sdk_client, page["luasocket+cjson"]
  if r and b then
    local ratio = r.rps / b.rps
    io.write(("target: sdk_client >= 2.00x luasocket+cjson on the 100-campaign page: %.2fx, %s\n")
      :format(ratio, ratio >= 2 and "met" or "MISSED"))
    if ratio < 2 then misses[#misses + 1] = "sdk_client (page)" end
  end
end
