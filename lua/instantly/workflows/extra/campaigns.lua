--- Campaign workflows: `client.campaigns:preflight(id_or_params)`,
-- `:launch(id, {preflight = true})`, `:find{name =}`, `:find_or_create{...}`,
-- and `campaign:preflight()` / `campaign:launch{...}` /
-- `campaign:step_analytics()` on campaign records.
-- Loaded by the builder (see `instantly.request.builder`, "Extension modules").
-- The methods tail-call their engines, so misuse raises at the caller.
-- @module instantly.workflows.extra.campaigns

local preflight = require "instantly.workflows.preflight"
local find = require "instantly.workflows.find"
local stats = require "instantly.workflows.stats"
local instantly = require "instantly"

local error = error

local function client_of(rec, what)
  local c = instantly.client_of(rec)
  if not c then error("instantly: call it with a colon: campaign:" .. what .. "(...)", 3) end
  return c
end

return {
  entity = {
    --- Report what would make sending fail or hurt deliverability, for a
    -- campaign or for create parameters; see `instantly.workflows.preflight`.
    -- @function preflight
    preflight = function(self, campaign, opts, call_opts)
      return preflight.preflight(self.client, campaign, opts, call_opts)
    end,

    --- Activate, after a passing preflight unless `preflight = false`.
    -- @function launch
    launch = function(self, campaign, opts, call_opts)
      return preflight.launch(self.client, campaign, opts, call_opts)
    end,

    -- `find{name =}` and `find_or_create{...}`: `instantly.workflows.find`
    -- takes the entity as its first argument, so its functions are the methods.
    find = find.find,
    find_or_create = find.find_or_create,
  },
  record = {
    --- `campaign:preflight(opts)`.
    -- @function preflight
    preflight = function(camp, opts, call_opts)
      return preflight.preflight(client_of(camp, "preflight"), camp, opts, call_opts)
    end,

    --- `campaign:launch{preflight = true, strict = false}`.
    -- @function launch
    launch = function(camp, opts, call_opts)
      return preflight.launch(client_of(camp, "launch"), camp, opts, call_opts)
    end,

    --- `campaign:step_analytics{start_date =, end_date =}`: a row per step
    -- and variant with subject and rates; see `instantly.workflows.stats.by_step`.
    -- @function step_analytics
    step_analytics = function(camp, params, call_opts)
      return stats.by_step(client_of(camp, "step_analytics"), camp, params, call_opts)
    end,
  },
}
