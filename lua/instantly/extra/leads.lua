--- Lead workflows: `client.leads:import{...}` and `client.leads:export_file{...}`.
-- Loaded by the builder (see `instantly.builder`, "Extension modules").
-- The engine is `instantly.bulk`. (`client.leads:export` is the API's own
-- POST /leads/export, a background job sending leads to a connected app;
-- writing leads to a file is `export_file`.)
-- @module instantly.extra.leads

local bulk = require "instantly.bulk"

return {
  entity = {
    --- Import leads into a campaign or list in batches; see `instantly.bulk.import`.
    -- @function import
    import = function(self, args, call_opts)
      local summary, err = bulk.import(self.client, args, call_opts, 2)
      return summary, err
    end,

    --- Write every lead of a campaign, list or workspace to a CSV or JSONL
    -- file; see `instantly.bulk.export`.
    -- @function export_file
    export_file = function(self, args, call_opts)
      local summary, err = bulk.export(self.client, args, call_opts, 2)
      return summary, err
    end,
  },
}
