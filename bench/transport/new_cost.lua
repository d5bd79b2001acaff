-- new_cost.lua - what instantly.new{} costs: milliseconds per client
-- (median of 15 rounds of 40 clients, each closed) and how many times
-- `require` had to search package.path/cpath per client once the SDK is
-- loaded (each search is a series of failed file opens). Prints
-- "MS_PER_NEW SEARCHES_PER_NEW".
local core = require "instantly.core"
local instantly = require "instantly"

local searches = 0
for i, searcher in ipairs(package.searchers) do
  package.searchers[i] = function(...)
    searches = searches + 1
    return searcher(...)
  end
end

local function make() instantly.new { api_key = "bench-key", base_url = "http://127.0.0.1:9" }:close() end
make() -- first client of the process: loads the modules
searches = 0
local rounds = {}
for r = 1, 15 do
  local t0 = core.monotime()
  for _ = 1, 40 do make() end
  rounds[r] = (core.monotime() - t0) / 40
end
table.sort(rounds)
io.write(("%.4f %.2f\n"):format(rounds[8] * 1000, searches / (15 * 40)))
