--- Client-level workflow methods: `client:gather(tasks, opts)`.
-- Loaded by the builder (see `instantly.request.builder`, "Extension modules").
-- @module instantly.workflows.extra.client

local gather = require "instantly.workflows.gather"

return {
  client = {
    --- Run SDK calls concurrently; see `instantly.workflows.gather`.
    -- (The method is that function itself, so misuse raises at the
    -- caller's line without a level passed down.)
    -- @function gather
    gather = gather.gather,
  },
}
