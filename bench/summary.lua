-- summary.lua LOG - the table of issue 14 from one `make bench` run: the
-- "ISSUE14|workload|baseline|figure|ratio|target[|IQR|rounds met]" lines
-- the benches print and the JSON rows of bench/json_bench.lua, each marked
-- met or missed. The two optional fields come from the interleaved
-- transport bench: the interquartile range of the per-round ratios and how
-- many rounds met the target (the verdict is by the median, the ratio).
-- A row whose bench did not run is shown as not measured.
local path = assert(arg[1], "usage: lua5.4 bench/summary.lua LOG")
local rows, json = {}, {}
for line in io.lines(path) do
  local w, base, fig, ratio, want, more = line:match("^ISSUE14|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)(.*)$")
  if w then
    local iqr, met = more:match("^|([^|]*)|([^|]*)$")
    rows[#rows + 1] = { w = w, base = base, fig = fig, ratio = tonumber(ratio), want = tonumber(want), iqr = iqr,
      met = met }
  end
  -- "decode 100-campaign page  210165  101.8  60.2  1.69x  2.0x MISSED"
  local name, r = line:match("^(%a+code .-)%s+%d+%s+[%d.]+%s+[%d.]+%s+([%d.]+)x")
  if name and (name:match("^decode") or name:match("^encode")) then json[#json + 1] = { name, tonumber(r) } end
end
for _, j in ipairs(json) do
  local want = j[1]:match("^decode") and 2.0 or 2.5
  rows[#rows + 1] = { w = "JSON " .. j[1], base = "lua-cjson", fig = "", ratio = j[2], want = want }
end
if #json == 0 then rows[#rows + 1] = { w = "JSON decode/encode", base = "lua-cjson", fig = "not measured" } end

io.write(("%-44s %-30s %-28s %8s %7s  %-6s  %s\n"):format("workload (issue 14)", "limit / baseline", "SDK",
  "ratio", "target", "result", "per round: IQR, rounds met"))
for _, r in ipairs(rows) do
  local res = r.ratio and (r.ratio >= r.want and "met" or "MISSED") or "-"
  io.write(("%-44s %-30s %-28s %8s %7s  %-6s  %s\n"):format(r.w, r.base, r.fig,
    r.ratio and ("%.2fx"):format(r.ratio) or "-", r.want and (">= " .. r.want .. "x") or "", res,
    r.iqr and (r.iqr .. ", " .. r.met) or ""))
end
