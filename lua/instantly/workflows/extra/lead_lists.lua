--- Find by name for lead_lists: `client.lead_lists:find{name =}` and
-- `client.lead_lists:find_or_create{...}` (see `instantly.workflows.find`).
-- Loaded by the builder (see `instantly.request.builder`, "Extension modules").
-- @module instantly.workflows.extra.lead_lists

local find = require "instantly.workflows.find"

return {
  entity = {
    --- The record with this exact name (the oldest of several) and the
    -- number of matches.
    -- @function find
    find = function(self, params, call_opts)
      return find.find(self, params, call_opts)
    end,

    --- Find by `name`, or create with these parameters; returns the
    -- record and whether it was created.
    -- @function find_or_create
    find_or_create = function(self, params, call_opts)
      return find.find_or_create(self, params, call_opts)
    end,
  },
}
