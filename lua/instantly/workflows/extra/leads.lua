--- Lead workflows: `client.leads:import{...}` and `client.leads:export_file{...}`.
-- Loaded by the builder (see `instantly.request.builder`, "Extension modules").
-- The engines are `instantly.workflows.bulk.import` and `instantly.workflows.bulk.export`.
-- `client.leads:export` stays the API's own POST /leads/export (a
-- background job that sends leads to a connected app); files are written
-- only by `export_file`.
-- @module instantly.workflows.extra.leads

local import = require "instantly.workflows.bulk.import"
local export = require "instantly.workflows.bulk.export"

-- Tail calls: the engines raise misuse at level 2, which is then the
-- caller of the method.
return {
  entity = {
    --- Import leads into a campaign or list in batches; see `instantly.workflows.bulk.import`.
    -- @function import
    import = function(self, args, call_opts)
      return import.import(self.client, args, call_opts)
    end,

    --- Write every lead of a campaign, list or workspace to a CSV or JSONL
    -- file; see `instantly.workflows.bulk.export`.
    -- @function export_file
    export_file = function(self, args, call_opts)
      return export.export(self.client, args, call_opts)
    end,
  },
}
