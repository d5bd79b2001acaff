-- sdk_request.lua - run by sdk_host: the whole SDK inside a C program.
-- `require "instantly"` loads the Lua layer from the folder the host named
-- and the C core the host linked in; then one client call to the server
-- given as arguments (the mock, in `make test`).
local base_url, api_key = ...
assert(base_url and api_key, "usage: sdk_host LUA_DIR sdk_request.lua BASE_URL API_KEY")

local instantly = require "instantly"
assert(package.cpath == "", "the host chose no C path")
assert(package.searchpath("instantly.core", package.cpath) == nil, "no core.so is reachable")

local client = instantly.new{ base_url = base_url, api_key = api_key }
local workspace, err = client.workspaces:get()
if not workspace then error(tostring(err), 0) end
local page = assert(client.campaigns:list{ limit = 2 })
client:close()
print(("sdk_host: instantly %s in a C host: workspace %q, %d campaigns on the first page")
  :format(instantly.VERSION, workspace.name, #page.items))
