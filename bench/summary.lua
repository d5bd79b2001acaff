-- summary.lua LOG - the table of issue 14 from one `make bench` run: the
-- "ISSUE14|workload|baseline|figure|ratio|target" lines the benches print
-- and the JSON rows of bench/json_bench.lua, each marked met or missed.
-- A row whose bench did not run is shown as not measured.
local path = assert(arg[1], "usage: lua5.4 bench/summary.lua LOG")
local rows, json = {}, {}
for line in io.lines(path) do
  local w, base, fig, ratio, want = line:match("^ISSUE14|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$")
  if w then
    rows[#rows + 1] = { w = w, base = base, fig = fig, ratio = tonumber(ratio), want = tonumber(want) }
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

io.write(("%-44s %-30s %-28s %8s %7s  %s\n"):format("workload (issue 14)", "limit / baseline", "SDK", "ratio",
  "target", "result"))
for _, r in ipairs(rows) do
  local res = r.ratio and (r.ratio >= r.want and "met" or "MISSED") or "-"
  io.write(("%-44s %-30s %-28s %8s %7s  %s\n"):format(r.w, r.base, r.fig,
    r.ratio and ("%.2fx"):format(r.ratio) or "-", r.want and (">= " .. r.want .. "x") or "", res))
end
