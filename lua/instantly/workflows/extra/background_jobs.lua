--- Waiting for background jobs: `client.background_jobs:wait(job_or_id, opts)`
-- and `job:wait(opts)` on every Background Job record, including the jobs
-- returned by accounts:enable_warmup / disable_warmup and leads:move / export.
-- Loaded by the builder (see `instantly.request.builder`, "Extension modules").
-- @module instantly.workflows.extra.background_jobs

local wait = require "instantly.workflows.wait"
local instantly = require "instantly"

local error = error

local function client_of(rec)
  local c = instantly.client_of(rec)
  if not c then error("instantly: call it with a colon: job:wait(...)", 3) end
  return c
end

return {
  entity = {
    --- Poll a job until it reaches a terminal state; see `instantly.workflows.wait.job`.
    -- @function wait
    wait = function(self, job_or_id, opts, call_opts)
      return wait.job(self.client, job_or_id, opts, call_opts)
    end,
  },
  record = {
    --- `job:wait{timeout =, interval =, on_progress =}`.
    -- @function wait
    wait = function(job, opts, call_opts)
      return wait.job(client_of(job), job, opts, call_opts)
    end,
  },
}
