#!/usr/bin/env lua5.4
-- import_leads_csv.lua - import a CSV of leads into a lead list, after a
-- dry run that shows how its columns map, then read a few back.
--
-- Shows: `client.lead_lists:find_or_create` (re-running does not make a
-- second list), `client.leads:import{dry_run = true}` (every row checked,
-- the column mapping printed with warnings for near-miss headers, nothing
-- sent), the import itself with a progress bar and a resumable checkpoint,
-- and paging through the result with `client.leads:each`.
--
--   sh tools/run-examples.sh import_leads_csv           (against a local mock)
--   INSTANTLY_API_KEY=... lua5.4 examples/import_leads_csv.lua [file.csv]
-- The default file is examples/data/leads.csv (reserved .example domains).

local instantly = require("instantly")
local progress = require("instantly.cli.progress")

local path = arg and arg[1] or ((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/data/leads.csv")
local client = instantly.new {}

-- 1. The list (a list, unlike a campaign, sends nothing).
local list = assert(client.lead_lists:find_or_create { name = "Imported from " .. path:match("[^/]*$") })
print(string.format("Lead list %q (%s)", list.name, list.id))

-- 2. A dry run: what each column becomes, which rows are invalid.
local plan = assert(client.leads:import { leads = path, list_id = list.id, dry_run = true })
print(tostring(plan))

-- 3. The import: a progress bar on stderr when it is a terminal; the
-- checkpoint lets a run that was stopped resume where it was.
local checkpoint = os.getenv("TMPDIR") or "/tmp"
checkpoint = checkpoint .. "/import-" .. list.id .. ".ckpt"
local bar = progress.new { label = "import", unit = "rows" }
local summary, err = client.leads:import { leads = path, list_id = list.id, skip_if_in_list = true,
  batch_size = 100, checkpoint = checkpoint, on_change = "restart",
  on_progress = function(s) bar:update(s.rows, nil, s.uploaded .. " uploaded") end }
bar:finish()
if not (summary and summary.ok) then
  io.stderr:write("import failed: ", tostring(err or summary.failed_batches[1].error), "\n",
                  "run it again to resume from ", checkpoint, "\n")
  os.exit(1)
end
os.remove(checkpoint)
print(tostring(summary))
for i, bad in ipairs(summary.invalid) do
  if i <= 5 then print(string.format("  row %d (line %d): %s", bad.row, bad.line, bad.reason)) end
end

-- 4. A few back, with the custom variable from the CSV's "city" column.
local total = 0
for lead in client.leads:each { list_id = list.id, limit = 100 } do
  total = total + 1
  if total <= 5 then
    print(string.format("  %-40s %-12s %-14s %s", lead.email, lead.first_name or "", lead.company_name or "",
      type(lead.payload) == "table" and lead.payload.city or ""))
  end
end
print(string.format("The list now holds %d leads.", total))
