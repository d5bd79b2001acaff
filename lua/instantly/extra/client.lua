--- Client-level workflow methods: `client:gather(tasks, opts)`.
-- Loaded by the builder (see `instantly.builder`, "Extension modules").
-- @module instantly.extra.client

local gather = require "instantly.gather"

return {
  client = {
    --- Run SDK calls concurrently; see `instantly.gather`.
    -- @function gather
    gather = function(client, tasks, opts)
      local values, errs, failed = gather.gather(client, tasks, opts, 2)
      return values, errs, failed
    end,
  },
}
