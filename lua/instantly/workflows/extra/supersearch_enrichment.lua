--- Waiting for SuperSearch enrichments:
-- `client.supersearch_enrichment:wait(resource_or_response, opts)`.
-- Loaded by the builder (see `instantly.request.builder`, "Extension modules").
-- @module instantly.workflows.extra.supersearch_enrichment

local wait = require "instantly.workflows.wait"

return {
  entity = {
    --- Poll until the enrichments of a list or campaign are done; see
    -- `instantly.workflows.wait.enrichment`.
    -- @function wait
    wait = function(self, target, opts, call_opts)
      return wait.enrichment(self.client, target, opts, call_opts)
    end,
  },
}
