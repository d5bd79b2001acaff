--- Bulk lead import and export, streaming in constant memory.
--
-- The engines live in three modules, one concern each:
-- `instantly.workflows.bulk.columns` (what CSV columns and lead keys mean, and the
-- local checks of a lead), `instantly.workflows.bulk.import` with
-- `instantly.workflows.bulk.checkpoint` (batched, resumable upload through POST
-- /leads/add) and `instantly.workflows.bulk.export` (POST /leads/list to a CSV or
-- JSON Lines file). This module gathers their public functions; users
-- call them as `client.leads:import{...}` and `client.leads:export_file{...}`.
-- @module instantly.workflows.bulk

local columns = require "instantly.workflows.bulk.columns"
local checkpoint = require "instantly.workflows.bulk.checkpoint"
local import = require "instantly.workflows.bulk.import"
local export = require "instantly.workflows.bulk.export"

return {
  MAX_BATCH = import.MAX_BATCH,
  import = import.import,
  export = export.export,
  EXPORT_COLUMNS = export.EXPORT_COLUMNS,
  LEAD_FIELDS = columns.LEAD_FIELDS,
  IGNORED_FIELDS = columns.IGNORED_FIELDS,
  ALIASES = columns.ALIASES,
  column_meaning = columns.column_meaning,
  near_miss = columns.near_miss,
  plan_columns = columns.plan_columns,
  is_email = columns.is_email,
  load_checkpoint = checkpoint.load,
  save_checkpoint = checkpoint.save,
}
