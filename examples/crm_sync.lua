#!/usr/bin/env lua5.4
-- crm_sync.lua - a resumable sync of 2,000 CRM contacts into a lead list,
-- writing the ids Instantly created back for the CRM.
--
-- Shows: `client.leads:import` as a sync - a checkpoint so a run that
-- stopped resumes without sending a batch twice, `on_change = "restart"`
-- so a CRM export that grew since is sent from where it changed,
-- `on_batch(rows, response)` with each created lead's id and row number,
-- and the summary's "this run" against `summary.total`.
--
--   sh tools/run-examples.sh crm_sync                    (against a local mock)
--   INSTANTLY_API_KEY=... lua5.4 examples/crm_sync.lua   (adds 2,100 .example leads to a list)

local instantly = require("instantly")
local csv = require("instantly").csv

local client = instantly.new {}
local dir = os.getenv("TMPDIR") or "/tmp"
local export, checkpoint, writeback = dir .. "/crm-export.csv", dir .. "/crm-sync.ckpt", dir .. "/crm-ids.csv"
os.remove(checkpoint)

-- The CRM's export (here generated): its own headers, mapped on import.
local function crm_export(n)
  local w = assert(csv.writer(export, { header = { "Work Email", "First Name", "Company", "Personalization Line",
                                                   "Deal Stage" } }))
  for i = 1, n do
    assert(w:write { ("contact%d@crm-sync.example"):format(i), "Contact" .. i, "Company " .. (i % 97),
                     "Saw your post #" .. i, i % 3 == 0 and "Qualified" or "New" })
  end
  assert(w:close())
end

local list = assert(client.lead_lists:find_or_create { name = "CRM sync" })
local ids = assert(csv.writer(writeback, { header = { "row", "email", "instantly_id" } }))

local function sync(stop_after)
  -- One batch in flight: a batch sent when a run dies would come back as
  -- duplicates next time, without ids (the CRM would look those up).
  local s, err = client.leads:import { leads = export, list_id = list.id, skip_if_in_list = true, batch_size = 300,
    concurrency = 1, checkpoint = checkpoint, on_change = "restart", columns = { ["Deal Stage"] = "deal_stage" },
    on_batch = function(rows)
      for _, r in ipairs(rows) do if r.id then assert(ids:write { r.row, r.email, r.id }) end end
    end,
    on_progress = function(p) if stop_after and p.batches_sent >= stop_after then error("stopped", 0) end end }
  if not s then error(err, 0) end
  print(string.format("%s\n  this run: %d uploaded; in total: %d uploaded, %d duplicates skipped",
    tostring(s), s.uploaded, s.total.uploaded, s.total.duplicates))
end

crm_export(2000)
print("Run 1 (stops after two batches):", pcall(sync, 2))
print("Run 2 (resumes):")
sync()
crm_export(2100)                       -- the CRM gained 100 contacts
print("Run 3 (the export grew):")
sync()
assert(ids:close())
local n = 0
for _ in io.lines(writeback) do n = n + 1 end
print(string.format("%d lead ids written back to %s", n - 1, writeback))
os.remove(export)
os.remove(checkpoint)
