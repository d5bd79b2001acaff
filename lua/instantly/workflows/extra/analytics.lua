--- Analytics as rows: `client.analytics:by_campaign(params)` (rates
-- included), `:by_step(campaign, params)` (joined to the sequence) and
-- `:over_bounce_limit(opts, params)`; see `instantly.workflows.stats`.
-- Loaded by the builder (see `instantly.request.builder`, "Extension modules").
-- @module instantly.workflows.extra.analytics

local stats = require "instantly.workflows.stats"

return {
  entity = {
    --- One row per campaign with its counters and rates.
    -- @function by_campaign
    by_campaign = function(self, params, call_opts)
      return stats.by_campaign(self.client, params, call_opts)
    end,

    --- One row per step and variant of a campaign, with subject and rates.
    -- @function by_step
    by_step = function(self, campaign, params, call_opts)
      return stats.by_step(self.client, campaign, params, call_opts)
    end,

    --- The campaigns whose bounce rate is over `max_bounce_rate` (default
    -- 0.05) with at least `min_sent` (default 100) emails sent.
    -- @function over_bounce_limit
    over_bounce_limit = function(self, opts, params, call_opts)
      local rows, err = stats.by_campaign(self.client, params, call_opts)
      if not rows then return nil, err end
      return stats.over_bounce_limit(rows, opts)
    end,
  },
}
