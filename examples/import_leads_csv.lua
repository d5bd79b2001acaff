#!/usr/bin/env lua5.4
-- import_leads_csv.lua - import a CSV of leads into a new lead list, with
-- a progress bar, then read them back.
--
-- Shows: `client.leads:import{...}` (CSV columns mapped to lead fields,
-- unknown columns kept as custom variables, rows without an email
-- reported with their row number, batches of up to 1000 sent several at a
-- time, a resumable checkpoint), the import summary, and paging through
-- the result with `client.leads:each`.
--
-- Against the local mock (what `make test` does):
--   make BUILD=build && sh tools/run-examples.sh import_leads_csv
-- Against the real API (creates a lead list and adds the leads to it):
--   INSTANTLY_API_KEY=... lua5.4 examples/import_leads_csv.lua [file.csv]
-- The default file is examples/data/leads.csv (addresses on the reserved
-- .example domains).

local instantly = require("instantly")
local progress = require("instantly.cli.progress")

local here = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")) or "."
local path = arg and arg[1] or (here .. "/data/leads.csv")

local client = instantly.new {}

-- 1. A list to import into (a list, unlike a campaign, sends nothing).
local list = assert(client.lead_lists:create { name = "Imported " .. os.date("!%Y-%m-%d %H:%M") })
print(string.format("Created lead list %q (%s)", list.name, list.id))

-- 2. The import: a progress bar on stderr when it is a terminal.
local bar = progress.new { label = "import", unit = "rows" }
local checkpoint = os.tmpname()
os.remove(checkpoint) -- the import creates it; kept only if the run fails
local summary, err = client.leads:import {
  leads = path,
  list_id = list.id,
  skip_if_in_list = true,
  batch_size = 100,
  checkpoint = checkpoint,
  on_progress = function(s) bar:update(s.rows, nil, s.uploaded .. " uploaded") end,
}
bar:finish()
if not summary then
  io.stderr:write("import failed: ", tostring(err), "\n")
  io.stderr:write("run it again to resume from ", checkpoint, "\n")
  os.exit(1)
end
print(tostring(summary))
for i, bad in ipairs(summary.invalid) do
  if i > 5 then break end
  print(string.format("  row %d (line %d): %s", bad.row, bad.line, bad.reason))
end
if not summary.ok then
  for _, b in ipairs(summary.failed_batches) do
    io.stderr:write(string.format("  rows %d-%d failed: %s\n", b.first_row, b.last_row, tostring(b.error)))
  end
  os.exit(1)
end

-- 3. Read a few back, with a custom variable from the CSV's "city" column.
local shown, total = 0, 0
for lead in client.leads:each { list_id = list.id, limit = 100 } do
  total = total + 1
  if shown < 5 then
    shown = shown + 1
    local city = type(lead.payload) == "table" and lead.payload.city or ""
    print(string.format("  %-40s %-12s %-14s %s", lead.email, tostring(lead.first_name or ""),
      tostring(lead.company_name or ""), tostring(city)))
  end
end
print(string.format("The list now holds %d leads.", total))
