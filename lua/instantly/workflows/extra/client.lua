--- Client-level workflow methods: `client:gather(tasks, opts)`.
-- Loaded by the builder (see `instantly.request.builder`, "Extension modules").
-- @module instantly.workflows.extra.client

local gather = require "instantly.workflows.gather"

return {
  client = {
    --- Run SDK calls concurrently; see `instantly.workflows.gather`.
    -- @function gather
    gather = function(client, tasks, opts)
      local values, errs, failed = gather.gather(client, tasks, opts, 2)
      return values, errs, failed
    end,
  },
}
