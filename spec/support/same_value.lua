-- same_value.lua - exact structural equality for the JSON specs: number
-- subtypes must agree (1 ~= 1.0), floats bit for bit (0.0 ~= -0.0), and
-- metatables too (so decoded arrays must carry core.array_mt).
-- same(a, b [, path]) -> true | false, "where and why"
local function same(a, b, path)
  path = path or "$"
  if type(a) ~= type(b) then
    return false, path .. ": " .. type(a) .. " vs " .. type(b)
  end
  if type(a) == "number" then
    if math.type(a) ~= math.type(b) then
      return false, path .. ": " .. math.type(a) .. " vs " .. math.type(b)
    end
    if math.type(a) == "float" and string.pack("<d", a) ~= string.pack("<d", b) then
      return false, path .. (": %a vs %a"):format(a, b)
    end
    return true
  end
  if type(a) ~= "table" then
    return a == b, path .. ": " .. tostring(a) .. " vs " .. tostring(b)
  end
  if getmetatable(a) ~= getmetatable(b) then
    return false, path .. ": metatables differ"
  end
  for k, v in pairs(a) do
    local ok, why = same(v, b[k], path .. "." .. tostring(k))
    if not ok then return false, why end
  end
  for k in pairs(b) do
    if a[k] == nil then return false, path .. "." .. tostring(k) .. ": extra key" end
  end
  return true
end

return same
