-- Every error kind the SDK's own modules create is listed in
-- instantly.error.KINDS (users compare err.kind against it).
local KINDS = require("instantly.error").KINDS

describe("error kinds", function()
  it("KINDS lists every kind an SDK module creates", function()
    local p = assert(io.popen("find lua/instantly -name '*.lua' -not -path '*/mock/*' " ..
      "-not -path '*/entities/*' -not -path '*/cli/*' -not -name csv.lua"))
    local files, found = 0, {}
    for path in p:lines() do
      files = files + 1
      local f = assert(io.open(path))
      local text = f:read("a")
      f:close()
      -- error tables are built as `{ kind = "x", ... }` (client.lua's
      -- response-body classification uses `how.kind = ...`, not this form)
      for kind in text:gmatch('[{,]%s*kind = "([%w_]+)"') do found[kind] = path end
    end
    p:close()
    assert.is_true(files > 10)
    assert.is_true(next(found) ~= nil)
    for kind, path in pairs(found) do
      assert.is_true(KINDS[kind] == true, "kind '" .. kind .. "' (" .. path .. ") is missing from KINDS")
    end
  end)
end)
