--- Waiting for an OAuth session: `client.oauth:wait(session_or_id, opts)`.
-- Loaded by the builder (see `instantly.request.builder`, "Extension modules").
-- @module instantly.workflows.extra.oauth

local wait = require "instantly.workflows.wait"

return {
  entity = {
    --- Poll the session until the user finished (or it failed or expired),
    -- honouring its expiry and the read-once rule; see `instantly.workflows.wait.oauth`.
    -- @function wait
    wait = function(self, session_or_id, opts, call_opts)
      return wait.oauth(self.client, session_or_id, opts, call_opts)
    end,
  },
}
