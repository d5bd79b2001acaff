--- The seeded workspace.
local M = {}
function M.build(store)
  store.seeding = true
  store.workspace_id = store:uuid()
  store.user_id = store:uuid()
  store.seeding = false
end
return M
