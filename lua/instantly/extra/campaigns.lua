--- Campaign launch with a preflight: `client.campaigns:preflight(id)`,
-- `client.campaigns:launch(id, {preflight = true})`, and the same as
-- `campaign:preflight()` / `campaign:launch{...}` on campaign records.
-- Loaded by the builder (see `instantly.builder`, "Extension modules").
-- @module instantly.extra.campaigns

local preflight = require "instantly.preflight"

local getmetatable, type, error = getmetatable, type, error

local function client_of(rec, what)
  local mt = type(rec) == "table" and getmetatable(rec)
  local c = type(mt) == "table" and mt.__client
  if not c then error("instantly: call it with a colon: campaign:" .. what .. "(...)", 3) end
  return c
end

return {
  entity = {
    --- Report what would make sending fail or hurt deliverability; see `instantly.preflight`.
    -- @function preflight
    preflight = function(self, campaign, opts, call_opts)
      local report, err = preflight.preflight(self.client, campaign, opts, call_opts, 2)
      return report, err
    end,

    --- Activate, after a passing preflight unless `preflight = false`.
    -- @function launch
    launch = function(self, campaign, opts, call_opts)
      local camp, report = preflight.launch(self.client, campaign, opts, call_opts, 2)
      return camp, report
    end,
  },
  record = {
    --- `campaign:preflight(opts)`.
    -- @function preflight
    preflight = function(camp, opts, call_opts)
      local report, err = preflight.preflight(client_of(camp, "preflight"), camp, opts, call_opts, 2)
      return report, err
    end,

    --- `campaign:launch{preflight = true, strict = false}`.
    -- @function launch
    launch = function(camp, opts, call_opts)
      local c, report = preflight.launch(client_of(camp, "launch"), camp, opts, call_opts, 2)
      return c, report
    end,
  },
}
