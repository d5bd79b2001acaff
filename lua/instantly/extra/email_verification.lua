--- Email verification with waiting: `client.email_verification:verify(email,
-- {wait = true})`, `client.email_verification:wait(email_or_result)` and
-- `result:wait()` on verification records.
-- Loaded by the builder (see `instantly.builder`, "Extension modules").
-- @module instantly.extra.email_verification

local wait = require "instantly.wait"

local getmetatable, type, error = getmetatable, type, error

return {
  entity = {
    --- Verify an address, optionally waiting for the verdict; see `instantly.wait.verify`.
    -- @function verify
    verify = function(self, email, opts, call_opts)
      local v, err = wait.verify(self.client, email, opts, call_opts, 2)
      return v, err
    end,

    --- Poll until the verdict is in; see `instantly.wait.verification`.
    -- @function wait
    wait = function(self, email_or_result, opts, call_opts)
      local v, err = wait.verification(self.client, email_or_result, opts, call_opts, 2)
      return v, err
    end,
  },
  record = {
    --- `result:wait{timeout =, interval =, on_progress =}`.
    -- @function wait
    wait = function(rec, opts, call_opts)
      local mt = type(rec) == "table" and getmetatable(rec)
      if type(mt) ~= "table" or not mt.__client then
        error("instantly: call it with a colon: result:wait(...)", 2)
      end
      local v, err = wait.verification(mt.__client, rec, opts, call_opts, 2)
      return v, err
    end,
  },
}
