--- Email verification with waiting: `client.email_verification:verify(email,
-- {wait = true})`, `client.email_verification:wait(email_or_result)` and
-- `result:wait()` on verification records.
-- Loaded by the builder (see `instantly.request.builder`, "Extension modules").
-- @module instantly.workflows.extra.email_verification

local wait = require "instantly.workflows.wait"
local instantly = require "instantly"

local error = error

return {
  entity = {
    --- Verify an address, optionally waiting for the verdict; see `instantly.workflows.wait.verify`.
    -- @function verify
    verify = function(self, email, opts, call_opts)
      return wait.verify(self.client, email, opts, call_opts)
    end,

    --- Poll until the verdict is in; see `instantly.workflows.wait.verification`.
    -- @function wait
    wait = function(self, email_or_result, opts, call_opts)
      return wait.verification(self.client, email_or_result, opts, call_opts)
    end,
  },
  record = {
    --- `result:wait{timeout =, interval =, on_progress =}`.
    -- @function wait
    wait = function(rec, opts, call_opts)
      local c = instantly.client_of(rec)
      if not c then error("instantly: call it with a colon: result:wait(...)", 2) end
      return wait.verification(c, rec, opts, call_opts)
    end,
  },
}
