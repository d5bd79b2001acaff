--- Find by name for custom_tags: `client.custom_tags:find{label =}` and
-- `client.custom_tags:find_or_create{...}` (see `instantly.workflows.find`).
-- Loaded by the builder (see `instantly.request.builder`, "Extension modules").
-- @module instantly.workflows.extra.custom_tags

local find = require "instantly.workflows.find"

return {
  entity = {
    -- `find{label =}` and `find_or_create{...}`: `instantly.workflows.find`
    -- takes the entity as its first argument, so its functions are the methods.
    find = find.find,
    find_or_create = find.find_or_create,
  },
}
