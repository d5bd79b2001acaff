-- run-spec.lua [BUSTED-OPTION...] SPEC... - runs spec files with busted
-- inside this very lua5.4 process, so that valgrind sees the specs (the
-- busted launcher re-executes itself for .busted's `lua` setting).
--   valgrind lua5.4 tools/run-spec.lua --cpath='./build/?.so' spec/json_spec.lua
local args = { [0] = "busted", "--ignore-lua", "--output=TAP" }
for i = 1, #arg do args[#args + 1] = arg[i] end
if #arg == 0 then
  io.stderr:write("usage: lua5.4 tools/run-spec.lua [BUSTED-OPTION...] SPEC...\n")
  os.exit(2)
end
-- busted.runner reads the global arg table as its command line.
arg = args -- luacheck: ignore 121
require("busted.runner")({ standalone = false })
