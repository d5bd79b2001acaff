--- Lead workflows: `client.leads:import{...}` and `client.leads:export{path = ...}`.
-- Loaded by the builder (see `instantly.builder`, "Extension modules").
-- The engine is `instantly.bulk`. `client.leads:export` is two things:
-- with `path` or `format` (neither is a field of the API call) it streams
-- leads to a file; otherwise it is the API's own POST /leads/export, a
-- background job that sends leads to a connected app. `export_file` is
-- the file export under an unambiguous name.
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

  wrap = {
    --- `leads:export{path = "leads.csv" | format = "jsonl", ...}` writes a
    -- file (see `export_file`); without `path`/`format` it is the API call.
    export = function(orig, self, args, ...)
      if type(args) == "table" and (args.path ~= nil or args.format ~= nil) then
        local summary, err = bulk.export(self.client, args, ..., 2)
        return summary, err
      end
      return orig(self, args, ...)
    end,
  },
}
