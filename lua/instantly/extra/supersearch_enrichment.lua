--- Waiting for SuperSearch enrichments:
-- `client.supersearch_enrichment:wait(resource_or_response, opts)`.
-- Loaded by the builder (see `instantly.builder`, "Extension modules").
-- @module instantly.extra.supersearch_enrichment

local wait = require "instantly.wait"

return {
  entity = {
    --- Poll until the enrichments of a list or campaign are done; see
    -- `instantly.wait.enrichment`.
    -- @function wait
    wait = function(self, target, opts, call_opts)
      return wait.enrichment(self.client, target, opts, call_opts)
    end,
  },
}
