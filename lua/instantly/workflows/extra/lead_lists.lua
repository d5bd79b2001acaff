--- Find by name for lead_lists: `client.lead_lists:find{name =}` and
-- `client.lead_lists:find_or_create{...}` (see `instantly.workflows.find`).
-- Loaded by the builder (see `instantly.request.builder`, "Extension modules").
-- @module instantly.workflows.extra.lead_lists

local find = require "instantly.workflows.find"

return {
  entity = {
    -- `find{name =}` and `find_or_create{...}`: `instantly.workflows.find`
    -- takes the entity as its first argument, so its functions are the methods.
    find = find.find,
    find_or_create = find.find_or_create,
  },
}
