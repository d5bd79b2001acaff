-- seeds.lua DIR - writes the memory-amplification shapes of issue 11 (and
-- variants) into DIR as fuzzing seeds, so the memory oracle starts from
-- inputs that once held thousands of times lua-cjson's bytes. Generated
-- rather than committed: the merge step keeps only files that add coverage.
local dir = assert(arg[1], "usage: lua5.4 spec/fuzz/seeds.lua DIR")

local function list(n, fmt)
  local t = {}
  for i = 1, n do t[i] = fmt:format(i) end
  return table.concat(t, ",")
end
local nums, keys = list(1024, "1"), list(1024, '"k%d":1')
local seeds = {
  arrays = "[[" .. nums .. "]" .. (",[]"):rep(3000) .. "]",
  objects = "[{" .. keys .. "}" .. (",{}"):rep(3000) .. "]",
  nested = '[{"a":[' .. nums .. "]}" .. (',{"a":[]}'):rep(2000) .. "]",
  alternating = "[" .. ("[" .. nums .. "],[1],"):rep(8) .. "[]]",
  repeated = "[" .. ("{" .. ('"a":1,'):rep(300) .. '"a":1},'):rep(8) .. "{}]",
  deep_wide = ("[" .. ("1,"):rep(50)):rep(300) .. ("]"):rep(300),
}
for name, text in pairs(seeds) do
  local f = assert(io.open(dir .. "/seed-" .. name, "wb"))
  f:write(text)
  f:close()
end
