--- Find by name for custom_tags: `client.custom_tags:find{label =}` and
-- `client.custom_tags:find_or_create{...}` (see `instantly.workflows.find`).
-- Loaded by the builder (see `instantly.request.builder`, "Extension modules").
-- @module instantly.workflows.extra.custom_tags

local find = require "instantly.workflows.find"

return {
  entity = {
    --- The record with this exact label (the oldest of several) and the
    -- number of matches.
    -- @function find
    find = function(self, params, call_opts)
      return find.find(self, params, call_opts)
    end,

    --- Find by `label`, or create with these parameters; returns the
    -- record and whether it was created.
    -- @function find_or_create
    find_or_create = function(self, params, call_opts)
      return find.find_or_create(self, params, call_opts)
    end,
  },
}
