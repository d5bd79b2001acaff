-- client.leads:import: CSV mapping, invalid rows with their numbers, dedupe
-- counts, batch limits, streaming, concurrency, faults and resuming from a
-- checkpoint (checked against the mock's request log).
local instantly = require "instantly"
local mock = require "instantly.mock"
local core = require "instantly.core"
local bulk = require "instantly.workflows.bulk"

local FIX = "spec/fixtures/csv/"

local function tmp()
  local p = os.tmpname()
  os.remove(p)
  return p
end

-- Writes a CSV of n generated leads; `bad` maps row numbers to raw lines.
local function write_csv(path, n, prefix, bad)
  local f = assert(io.open(path, "wb"))
  f:write("email,first_name,last_name,company_name,Plan\r\n")
  for i = 1, n do
    f:write(bad and bad[i] or ("%s%d@import.test,First%d,Last%d,\"Company %d, Ltd\",gold\r\n"):format(
      prefix, i, i, i, i))
  end
  f:close()
  return path
end

local function adds(log)
  local out = {}
  for _, r in ipairs(log) do
    if r.method == "POST" and r.path == "/api/v2/leads/add" then out[#out + 1] = r end
  end
  return out
end

local function first_emails(log)
  local seen = {}
  for _, r in ipairs(adds(log)) do
    local e = r.body.leads[1].email
    seen[e] = (seen[e] or 0) + 1
  end
  return seen
end

describe("leads:import", function()
  local srv, client, campaign, list

  setup(function()
    srv = assert(mock.start { seed = 1, rate_limits = false })
    client = instantly.new { api_key = srv.api_key, base_url = srv.url, rate_limit = false,
                             retry = { base = 0.01, cap = 0.02 } }
  end)

  teardown(function()
    srv:stop()
  end)

  before_each(function()
    srv:reset()
    campaign = client.campaigns:list {}.items[4]
    list = client.lead_lists:list {}.items[1]
  end)

  it("maps CSV headers to lead fields and reports invalid rows by number", function()
    local s = assert(client.leads:import { campaign_id = campaign.id, leads = FIX .. "leads_import.csv" })
    assert.equal(8, s.rows)
    assert.equal(4, s.valid)
    assert.same({
      { row = 3, line = 5, reason = "missing email" },
      { row = 4, line = 6, reason = 'invalid email "not-an-email"' },
      { row = 5, line = 7, reason = "lt_interest_status 7 is not one of the allowed values" },
      { row = 6, line = 8, reason = "13 fields, but the header names 12 columns" },
    }, s.invalid)
    assert.equal(4, s.invalid_count)
    assert.equal(3, s.uploaded)
    assert.equal(1, s.duplicates)   -- ann twice in one batch
    assert.equal(1, s.api.duplicate_email_count)
    assert.same({ "Status" }, s.ignored_columns)
    assert.is_true(s.ok)
    assert.equal(1, s.batches)
    local sent = adds(srv:requests())
    assert.equal(1, #sent)
    local body = sent[1].body
    assert.equal(campaign.id, body.campaign_id)
    assert.same({
      email = "ann@import.test", first_name = "Ann", last_name = "Lee", company_name = "Acme, Inc.",
      job_title = "CEO", phone = "+1 555 0100", website = "https://acme.test",
      personalization = 'Loved your talk on "scaling"', lt_interest_status = 1,
      custom_variables = { favourite_color = "blue", Notes = "two\r\nlines" },
    }, body.leads[1])
    assert.same({ email = "bob@import.test", first_name = "Bob", last_name = "Stone", company_name = "Globex",
                  custom_variables = { favourite_color = "green" } }, body.leads[2])
    assert.equal(-1, body.leads[4].lt_interest_status)
    assert.equal("x,y", body.leads[4].custom_variables.Notes)
    assert.matches("^import: 8 rows read, 3 uploaded, 1 duplicates skipped, 4 invalid", tostring(s))
  end)

  it("writes rejected rows to a CSV that can be fixed and imported again", function()
    local rej = tmp()
    local s = assert(client.leads:import { campaign_id = campaign.id, leads = FIX .. "leads_import.csv",
                                           rejects = rej })
    assert.equal(rej, s.rejects)
    local csv = require("instantly.workflows.csv")
    local rows, header = assert(csv.parse(io.open(rej, "rb"):read("a"), { header = true }))
    assert.equal("Email", header[1])
    assert.same({ "import_row", "import_line", "import_error" }, { header[13], header[14], header[15] })
    assert.equal(4, #rows)
    assert.equal("not-an-email", rows[2].Email)
    assert.equal("4", rows[2].import_row)
    assert.equal("6", rows[2].import_line)
    assert.equal('invalid email "not-an-email"', rows[2].import_error)
    assert.equal("13 fields, but the header names 12 columns", rows[4].import_error)
    os.remove(rej)
    assert(client.leads:import { list_id = list.id, rejects = rej,
                                 leads = { { company_name = "X" }, { email = "ok@import.test" } } })
    rows = assert(require("instantly.workflows.csv").parse(io.open(rej, "rb"):read("a"), { header = true }))
    assert.same({ { lead = '{"company_name":"X"}', import_row = "1", import_line = "",
                    import_error = "needs an email, first_name or last_name" } }, rows)
    os.remove(rej)
  end)

  it("checks everything and sends nothing in a dry run", function()
    local path = write_csv(tmp(), 2500, "dry", { [7] = "bad-address,x,y,z,gold\r\n" })
    local ck = tmp()
    local s = assert(client.leads:import { campaign_id = campaign.id, leads = path, dry_run = true, checkpoint = ck })
    assert.is_true(s.dry_run)
    assert.equal(2500, s.rows)
    assert.equal(2499, s.valid)
    assert.equal(1, s.invalid_count)
    assert.equal(3, s.batches)
    assert.equal(0, s.batches_sent)
    assert.equal(0, s.uploaded)
    assert.equal(0, #adds(srv:requests()))
    assert.is_nil(io.open(ck))
    os.remove(path)
  end)

  it("counts leads skipped as duplicates on a second run", function()
    local path = write_csv(tmp(), 1500, "dup")
    local s1 = assert(client.leads:import { campaign_id = campaign.id, leads = path, skip_if_in_campaign = true })
    assert.equal(1500, s1.uploaded)
    assert.equal(0, s1.duplicates)
    local s2 = assert(client.leads:import { campaign_id = campaign.id, leads = path, skip_if_in_campaign = true })
    assert.equal(1500, s2.rows)
    assert.equal(0, s2.uploaded)
    assert.equal(1500, s2.duplicates)
    assert.equal(1500, s2.skipped)
    local sent = adds(srv:requests())
    assert.is_true(sent[#sent].body.skip_if_in_campaign)
    os.remove(path)
  end)

  it("never sends more than 1000 leads in one request", function()
    local path = write_csv(tmp(), 2500, "big")
    local s = assert(client.leads:import { campaign_id = campaign.id, leads = path, concurrency = 2 })
    assert.equal(2500, s.uploaded)
    assert.equal(3, s.batches_sent)
    local sizes = {}
    for _, r in ipairs(adds(srv:requests())) do sizes[#sizes + 1] = #r.body.leads end
    table.sort(sizes)
    assert.same({ 500, 1000, 1000 }, sizes)
    srv:clear_requests()
    s = assert(client.leads:import { list_id = list.id, leads = path, batch_size = 300, concurrency = 3 })
    assert.equal(9, s.batches_sent)
    for _, r in ipairs(adds(srv:requests())) do assert.is_true(#r.body.leads <= 300) end
    os.remove(path)
    assert.has_error(function() client.leads:import { list_id = list.id, leads = {}, batch_size = 1001 } end,
      "instantly: leads:import: batch_size must be between 1 and 1000")
  end)

  it("takes arrays and iterators; a list lead needs an email or a name", function()
    local s = assert(client.leads:import { list_id = list.id, verify = true, leads = {
      { email = "a@import.test", FirstName = "A", custom_variables = { score = 3 } },
      { first_name = "Only" },
      { company_name = "Nameless Inc" },
      { email = "b@import.test", tier = "gold", vip = true },
      "not a table",
      { email = "c@import.test", nested = { x = 1 } },
    } })
    assert.equal(6, s.rows)
    assert.equal(3, s.uploaded)
    assert.same({
      { row = 3, reason = "needs an email, first_name or last_name" },
      { row = 5, reason = "a lead must be a table, got string" },
      { row = 6, reason = 'custom variable "nested" must be a string, number, boolean or null, got table' },
    }, s.invalid)
    local body = adds(srv:requests())[1].body
    assert.is_true(body.verify_leads_on_import)
    assert.same({ email = "a@import.test", first_name = "A", custom_variables = { score = 3 } }, body.leads[1])
    assert.same({ email = "b@import.test", custom_variables = { tier = "gold", vip = true } }, body.leads[3])

    local n = 0
    s = assert(client.leads:import { campaign_id = campaign.id, batch_size = 40, leads = function()
      n = n + 1
      if n > 100 then return nil end
      return { email = ("it%d@import.test"):format(n) }
    end })
    assert.equal(100, s.uploaded)
    assert.equal(3, s.batches_sent)
  end)

  it("streams a large CSV in bounded memory", function()
    local path = write_csv(tmp(), 30000, "mem")
    collectgarbage()
    local base, peak = collectgarbage("count"), 0
    local s = assert(client.leads:import { campaign_id = campaign.id, leads = path, concurrency = 4,
      on_progress = function()
        collectgarbage()
        peak = math.max(peak, collectgarbage("count") - base)
      end })
    assert.equal(30000, s.uploaded)
    -- 30,000 leads held at once would take well over 20 MB of Lua heap;
    -- the import keeps the JSON bodies of the batches in flight (~330 KB each).
    assert.is_true(peak < 8 * 1024, ("heap grew by %.0f KiB"):format(peak))
    os.remove(path)
  end)

  it("sends batches concurrently", function()
    local D = 1.0
    srv:fault { method = "POST", path = "/leads/add", delay = D, count = 4 }
    local path = write_csv(tmp(), 400, "conc")
    local s = assert(client.leads:import { campaign_id = campaign.id, leads = path, batch_size = 100,
                                           concurrency = 4 })
    assert.equal(400, s.uploaded)
    local sent = adds(srv:requests())
    assert.equal(4, #sent)
    table.sort(sent, function(a, b) return a.time < b.time end)
    assert.is_true(sent[4].time - sent[1].time < D, "the four batches did not overlap")
    os.remove(path)
  end)

  it("reports a failed batch, then a resumed run sends only that batch", function()
    local path = write_csv(tmp(), 500, "fault")
    local ck = tmp()
    local s = assert(client.leads:import { campaign_id = campaign.id, leads = path, batch_size = 100,
      concurrency = 1, checkpoint = ck, on_progress = function(sum)
        -- the checkpoint on disk is whole after every batch
        local st = assert(bulk.load_checkpoint(ck))
        local recorded = 0
        for _ in pairs(st.batches) do recorded = recorded + 1 end
        assert.equal(sum.batches_sent, recorded)
        if sum.batches == 2 then srv:fault { method = "POST", path = "/leads/add", status = 500, count = 1 } end
      end })
    assert.is_false(s.ok)
    assert.equal(1, #s.failed_batches)
    local fb = s.failed_batches[1]
    assert.equal(3, fb.batch)
    assert.equal(201, fb.first_row)
    assert.equal(300, fb.last_row)
    assert.equal(100, fb.rows)
    assert.equal(500, fb.error.status)
    assert.equal(400, s.uploaded)
    assert.is_nil(io.open(ck .. ".tmp"))

    local s2 = assert(client.leads:import { campaign_id = campaign.id, leads = path, batch_size = 100,
                                            concurrency = 4, checkpoint = ck })
    assert.is_true(s2.ok)
    assert.equal(4, s2.resumed_batches)
    assert.equal(1, s2.batches_sent)
    assert.equal(100, s2.uploaded)      -- this run: the one batch it sent
    assert.equal(500, s2.total.uploaded) -- in total: the first run's counts carried over
    assert.equal(500, s2.rows)
    -- Every batch reached the server once, except the one that failed.
    local seen = first_emails(srv:requests())
    for b = 1, 5 do
      assert.equal(b == 3 and 2 or 1, seen[("fault%d@import.test"):format((b - 1) * 100 + 1)])
    end
    -- and the campaign holds each lead once
    local n = 0
    for lead in client.leads:each { campaign = campaign.id } do
      if lead.email:match("^fault") then n = n + 1 end
    end
    assert.equal(500, n)
    -- a finished checkpoint makes a third run a no-op with the same totals
    srv:clear_requests()
    local s3 = assert(client.leads:import { campaign_id = campaign.id, leads = path, batch_size = 100,
                                            checkpoint = ck })
    assert.equal(0, #adds(srv:requests()))
    assert.equal(0, s3.uploaded)
    assert.equal(500, s3.total.uploaded)
    assert.equal(5, s3.resumed_batches)
    assert.matches("in total 500 uploaded", tostring(s3))
    os.remove(path)
    os.remove(ck)
  end)

  it("resumes a run that was killed half-way without sending a batch twice", function()
    local path = write_csv(tmp(), 600, "kill")
    local ck = tmp()
    local script = tmp() .. ".lua"
    local f = assert(io.open(script, "w"))
    f:write([[
      local instantly = require "instantly"
      local c = instantly.new { api_key = arg[1], base_url = arg[2], rate_limit = false }
      c.leads:import { campaign_id = arg[3], leads = arg[4], checkpoint = arg[5], batch_size = 100,
        concurrency = 1, on_progress = function(s)
          if s.batches_sent == 2 then os.exit(9, false) end -- killed: no cleanup at all
        end }
      os.exit(0)
    ]])
    f:close()
    local q = function(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
    local cmd = ("LUA_PATH=%s LUA_CPATH=%s lua5.4 %s %s %s %s %s %s"):format(q(package.path), q(package.cpath),
      q(script), q(srv.api_key), q(srv.url), q(campaign.id), q(path), q(ck))
    local ok, how, code = os.execute(cmd)
    assert.is_nil(ok)
    assert.equal("exit", how)
    assert.equal(9, code)
    os.remove(script)
    local st = assert(bulk.load_checkpoint(ck))
    assert.is_table(st.batches["1"])
    assert.is_table(st.batches["2"])
    assert.is_nil(st.batches["3"])

    local s = assert(client.leads:import { campaign_id = campaign.id, leads = path, checkpoint = ck,
                                           batch_size = 100, concurrency = 3 })
    assert.equal(2, s.resumed_batches)
    assert.equal(4, s.batches_sent)
    assert.equal(400, s.uploaded)
    assert.equal(600, s.total.uploaded)
    local seen = first_emails(srv:requests())
    for b = 1, 6 do assert.equal(1, seen[("kill%d@import.test"):format((b - 1) * 100 + 1)], "batch " .. b) end
    assert.equal(6, #adds(srv:requests()))
    os.remove(path)
    os.remove(ck)
  end)

  it("refuses a checkpoint that does not match the input", function()
    local path = write_csv(tmp(), 200, "ck")
    local ck = tmp()
    assert(client.leads:import { campaign_id = campaign.id, leads = path, batch_size = 100, checkpoint = ck })
    local none, err = client.leads:import { list_id = list.id, leads = path, batch_size = 100, checkpoint = ck }
    assert.is_nil(none)
    assert.equal("checkpoint", err.kind)
    assert.matches("belongs to another import", err.message)
    write_csv(path, 200, "changed")
    none, err = client.leads:import { campaign_id = campaign.id, leads = path, batch_size = 100, checkpoint = ck }
    assert.is_nil(none)
    assert.matches("batch 1 %(rows 1%-100%) differs", err.message)
    local g = assert(io.open(ck, "w"))
    g:write("{not json")
    g:close()
    none, err = client.leads:import { campaign_id = campaign.id, leads = path, checkpoint = ck }
    assert.is_nil(none)
    assert.matches("unreadable", err.message)
    os.remove(path)
    os.remove(ck)
  end)

  it("stops early when no batch can succeed", function()
    local path = write_csv(tmp(), 3000, "gone")
    local none, err = client.leads:import { campaign_id = "00000000-0000-4000-8000-000000000000", leads = path,
                                            batch_size = 100, concurrency = 2 }
    assert.is_nil(none)
    assert.equal(404, err.status)
    assert.is_true(#err.summary.failed_batches <= 2)
    assert.is_true(#adds(srv:requests()) <= 2)
    os.remove(path)
  end)

  it("stops at malformed CSV, naming the line, with the counts so far", function()
    local bad = { [150] = 'broken@import.test,"never closed,x,y,z\r\n' }
    local path = write_csv(tmp(), 200, "mal", bad)
    local none, err = client.leads:import { campaign_id = campaign.id, leads = path, batch_size = 100 }
    assert.is_nil(none)
    assert.equal("csv", err.kind)
    -- the quote opened on line 151 swallows the line break; the next
    -- quote (line 152) cannot close it
    assert.equal(152, err.line)
    assert.matches("opened on line 151", err.message)
    assert.equal(100, err.summary.uploaded)
    assert.equal(149, err.summary.rows)
    os.remove(path)
  end)

  it("reads CSV options and explicit column mappings", function()
    local path = tmp()
    local f = assert(io.open(path, "wb"))
    f:write("\239\187\191Work E-mail;Given;Drop me;Score\n")
    f:write("x@import.test;Xena;secret;9\n")
    f:close()
    local s = assert(client.leads:import { campaign_id = campaign.id, leads = path, csv = { sep = ";" },
      columns = { ["Work E-mail"] = "email", Given = "first_name", ["Drop me"] = false, Score = "lead_score" } })
    assert.equal(1, s.uploaded)
    assert.same({ email = "x@import.test", first_name = "Xena", custom_variables = { lead_score = "9" } },
      adds(srv:requests())[1].body.leads[1])
    os.remove(path)
  end)

  it("reads from a CSV reader the caller made", function()
    local csv = require "instantly.workflows.csv"
    local r = csv.reader(io.open(FIX .. "leads_import.csv", "rb"), { chunk_size = 7 })
    local s = assert(client.leads:import { campaign_id = campaign.id, leads = r })
    assert.equal(8, s.rows)
    assert.equal(3, s.uploaded)
    assert.has_error(function()
      client.leads:import { campaign_id = campaign.id, leads = csv.reader(io.open(FIX .. "leads_import.csv"),
        { header = true }) }
    end, "instantly: leads:import: pass a reader made without the header option")
  end)

  it("ignores unnamed columns and tells duplicates apart by number", function()
    local path = tmp()
    local f = assert(io.open(path, "wb"))
    f:write("Email,Notes,Notes,,\n")
    f:write("n@import.test,first,second,,\n")
    f:close()
    local none, err = client.leads:import { campaign_id = campaign.id, leads = path }
    assert.is_nil(none)
    assert.equal('columns 2 ("Notes") and 3 ("Notes") both map to custom variable "Notes"', err.reason)
    local s = assert(client.leads:import { campaign_id = campaign.id, leads = path,
                                           columns = { [3] = "Notes 2" } })
    assert.same({ "column 4", "column 5" }, s.ignored_columns)
    assert.same({ email = "n@import.test", custom_variables = { Notes = "first", ["Notes 2"] = "second" } },
      adds(srv:requests())[1].body.leads[1])
    os.remove(path)
  end)

  it("returns nil, err for an unreadable file", function()
    local none, err = client.leads:import { campaign_id = campaign.id, leads = "/nonexistent/leads.csv" }
    assert.is_nil(none)
    assert.equal("csv", err.kind)
  end)

  describe("for syncs", function()
    it("on_change = \"refuse\" (the default) refuses a changed file, naming the file once", function()
      local path, ck = write_csv(tmp(), 150, "grow"), tmp()
      assert(client.leads:import { campaign_id = campaign.id, leads = path, batch_size = 100, checkpoint = ck })
      write_csv(path, 230, "grow")    -- the CRM export grew: batch 2 now holds 100 rows, not 50
      srv:clear_requests()
      local none, err = client.leads:import { campaign_id = campaign.id, leads = path, batch_size = 100,
                                              checkpoint = ck, on_change = "refuse" }
      assert.is_nil(none)
      assert.equal("checkpoint", err.kind)
      assert.equal(ck .. ": batch 2 (rows 101-200) differs from the one recorded: the input changed since " ..
        "the checkpoint was written; pass on_change = \"restart\" to send from there, or delete it", err.message)
      assert.equal("instantly: checkpoint: " .. err.message, tostring(err))
      assert.is_nil(tostring(err):find("checkpoint: checkpoint", 1, true))
      assert.equal(0, #adds(srv:requests()))
      assert.equal(1, err.summary.resumed_batches)
      os.remove(path)
      os.remove(ck)
    end)

    it("on_change = \"restart\" sends from the first batch that differs and rewrites the checkpoint", function()
      local path, ck = write_csv(tmp(), 150, "regrow"), tmp()
      local s1 = assert(client.leads:import { campaign_id = campaign.id, leads = path, batch_size = 100,
                                              checkpoint = ck, skip_if_in_campaign = true })
      assert.equal(150, s1.uploaded)
      write_csv(path, 230, "regrow")
      srv:clear_requests()
      local s = assert(client.leads:import { campaign_id = campaign.id, leads = path, batch_size = 100,
                                             checkpoint = ck, on_change = "restart", skip_if_in_campaign = true })
      assert.equal(2, s.restarted_at)
      assert.equal(1, s.resumed_batches)
      assert.equal(2, s.batches_sent)
      assert.equal(80, s.uploaded)          -- this run: rows 151-230 are new
      assert.equal(50, s.duplicates)        -- rows 101-150 were sent again and skipped by the API
      -- in total: batch 1 (resumed), batch 2's first upload (forgotten, but
      -- carried) and this run's 80
      assert.equal(230, s.total.uploaded)
      assert.equal(50, s.total.duplicates)
      local st = assert(bulk.load_checkpoint(ck))
      assert.equal("100:regrow101@import.test:regrow200@import.test", st.batches["2"].fp)
      assert.is_true(st.complete)
      assert.equal(2, #adds(srv:requests()))
      os.remove(path)
      os.remove(ck)
    end)

    it("on_change = \"restart\" starts over with a checkpoint of another import", function()
      local path, ck = write_csv(tmp(), 20, "other"), tmp()
      assert(client.leads:import { campaign_id = campaign.id, leads = path, checkpoint = ck })
      local none, err = client.leads:import { list_id = list.id, leads = path, checkpoint = ck }
      assert.is_nil(none)
      assert.equal(ck .. ": it belongs to another import (campaign_id:" .. campaign.id .. ", batch_size 1000); " ..
        "pass on_change = \"restart\" to start over, or delete it", err.message)
      local s = assert(client.leads:import { list_id = list.id, leads = path, checkpoint = ck, on_change = "restart" })
      assert.equal(1, s.restarted_at)
      assert.equal(20, s.uploaded)
      assert.equal("list_id:" .. list.id, assert(bulk.load_checkpoint(ck)).target)
      os.remove(path)
      os.remove(ck)
    end)

    it("on_batch gets every sent row with its row number and the id the API created", function()
      local path = write_csv(tmp(), 250, "ids", { [3] = "not-an-email,x,y,z,gold\r\n" })
      local seen, responses = {}, 0
      local s = assert(client.leads:import { campaign_id = campaign.id, leads = path, batch_size = 100,
        on_batch = function(rows, res)
          responses = responses + 1
          assert.is_table(res.created_leads)
          for _, r in ipairs(rows) do
            assert.is_nil(seen[r.row], "row " .. r.row .. " twice")
            seen[r.row] = r
          end
        end })
      assert.equal(3, responses)
      assert.equal(249, s.uploaded)
      assert.is_nil(seen[3])                 -- invalid: never sent
      local ids = {}
      for lead in client.leads:each { campaign = campaign.id } do ids[lead.email] = lead.id end
      for row = 1, 250 do
        if row ~= 3 then
          local r = assert(seen[row], "row " .. row)
          assert.equal(("ids%d@import.test"):format(row), r.email)
          assert.equal(row + 1, r.line)
          assert.equal(ids[r.email], r.id)
          assert.is_string(r.id)
        end
      end
      -- a lead skipped as a duplicate is reported without an id
      local again = {}
      assert(client.leads:import { campaign_id = campaign.id, leads = { { email = "ids1@import.test" } },
        skip_if_in_campaign = true, on_batch = function(rows) again = rows end })
      assert.same({ { row = 1, email = "ids1@import.test" } }, again)
      os.remove(path)
    end)

    it("records a batch only after on_batch took its ids; an error there stops the import", function()
      local path, ck = write_csv(tmp(), 300, "hook"), tmp()
      local calls = 0
      local ok, msg = pcall(client.leads.import, client.leads, { campaign_id = campaign.id, leads = path,
        batch_size = 100, concurrency = 1, checkpoint = ck, skip_if_in_campaign = true,
        on_batch = function(rows)
          calls = calls + 1
          if calls == 2 then error("CRM is down") end
          assert.equal((calls - 1) * 100 + 1, rows[1].row)
        end })
      assert.is_false(ok)
      assert.matches("CRM is down", msg)
      local st = assert(bulk.load_checkpoint(ck))
      assert.is_table(st.batches["1"])
      assert.is_nil(st.batches["2"])       -- its ids never reached the CRM: sent again next time
      local firsts = {}
      local s = assert(client.leads:import { campaign_id = campaign.id, leads = path, batch_size = 100,
        concurrency = 1, checkpoint = ck, skip_if_in_campaign = true,
        on_batch = function(rows) firsts[#firsts + 1] = rows[1].row end })
      assert.same({ 101, 201 }, firsts)
      assert.equal(1, s.resumed_batches)
      assert.equal(100, s.duplicates)      -- batch 2 had reached the API the first time
      -- in total: what the checkpoint knows (batch 2's first upload was never recorded)
      assert.equal(200, s.total.uploaded)
      assert.equal(100, s.total.duplicates)
      os.remove(path)
      os.remove(ck)
    end)

    it("shows the column mapping in a dry run and warns about near-miss headers", function()
      local path = tmp()
      local f = assert(io.open(path, "wb"))
      f:write("E-mail,Personalization Line,Company Size,Emial,Phon,Status,City\r\n")
      f:write("a@import.test,Hi,50,valid,555,1,Paris\r\n")
      f:close()
      local s = assert(client.leads:import { campaign_id = campaign.id, leads = path, dry_run = true })
      local by = {}
      for _, m in ipairs(s.columns) do by[m.header] = m end
      assert.same({ "field", "email" }, { by["E-mail"].kind, by["E-mail"].name })
      assert.same({ "field", "personalization" }, { by["Personalization Line"].kind, by["Personalization Line"].name })
      assert.same({ "custom", "company_size" }, { by["Company Size"].kind, by["Company Size"].name })
      assert.matches('"Company Size" becomes custom variable "company_size"', by["Company Size"].warning)
      assert.matches("did you mean lead field phone", by.Phon.warning)
      assert.matches('column 4 "Emial" becomes custom variable "Emial"; did you mean lead field email%?',
        by.Emial.warning)
      assert.equal("ignore", by.Status.kind)
      assert.is_nil(by.City.warning)
      assert.equal(3, #s.warnings)
      local text = tostring(s)
      assert.matches("^import dry run: 1 rows read, 1 valid, 0 invalid, 1 batch to send\ncolumns:\n", text)
      assert.matches('"Personalization Line"%s+%-> lead field personalization', text)
      assert.matches('"Company Size"%s+%-> custom variable "company_size"  %(warning%)', text)
      assert.matches("\nwarning: column 5 \"Phon\"", text)
      -- an explicit mapping is taken as written, without a warning
      s = assert(client.leads:import { campaign_id = campaign.id, leads = path, dry_run = true,
                                        columns = { ["Company Size"] = "Company Size", Phon = "phone", [4] = false } })
      assert.equal(0, #s.warnings)
      os.remove(path)
    end)

    it("raises on a bad policy", function()
      assert.has_error(function()
        client.leads:import { campaign_id = "a", leads = {}, checkpoint = "x", on_change = "append" }
      end, 'instantly: leads:import: on_change must be "refuse" or "restart", got "append"')
      assert.has_error(function()
        client.leads:import { campaign_id = "a", leads = {}, on_change = "restart" }
      end, "instantly: leads:import: on_change needs a checkpoint")
    end)

    it("takes the lead fields from the catalog and fails loudly when they are missing", function()
      local columns = require "instantly.workflows.bulk.columns"
      assert.is_table(columns.LEAD_FIELDS.email)
      assert.is_table(columns.LEAD_FIELDS.personalization)
      local def = { operations = { { method = "POST", path = "/leads/add", body = { fields = { { name = "x" } } } } } }
      assert.has_error(function() columns.lead_fields_of(def) end,
        "instantly.bulk: the catalog has no POST /leads/add with a 'leads' array of fields; " ..
        "regenerate lua/instantly/entities from the catalog")
    end)
  end)

  it("knows what column names mean", function()
    local CASES = {
      { "Email", "field", "email" }, { "E-mail", "field", "email" }, { "email address", "field", "email" },
      { "First Name", "field", "first_name" }, { "first_name", "field", "first_name" },
      { "FIRSTNAME", "field", "first_name" }, { "Last Name", "field", "last_name" },
      { "Company", "field", "company_name" }, { "company_name", "field", "company_name" },
      { "Title", "field", "job_title" }, { "Phone", "field", "phone" }, { "URL", "field", "website" },
      { "Status", "ignore", "status" }, { "id", "ignore", "id" },
      { "timestamp_created", "ignore", "timestamp_created" },
      { " Favourite Color ", "custom", "favourite_color" }, { "Personalization Line", "field", "personalization" },
      { "Company Size", "custom", "company_size" }, { "lead_score", "custom", "lead_score" },
      { "Industry", "custom", "Industry" },
    }
    for _, c in ipairs(CASES) do
      local kind, name = bulk.column_meaning(c[1])
      assert.equal(c[2], kind, c[1])
      assert.equal(c[3], name, c[1])
    end
    for _, e in ipairs({ "a@b.co", "first.last+tag@sub.example.org" }) do assert.is_true(bulk.is_email(e), e) end
    for _, e in ipairs({ "a@b", "a@@b.co", "a b@c.co", "@b.co", "a@.b.co", "a@b..co", "a@b.c" }) do
      assert.is_false(bulk.is_email(e), e)
    end
  end)

  it("checks addresses and trims cells exactly as the plain patterns do", function()
    -- the fast versions against the pattern-based ones they replaced, on
    -- every short string over an alphabet of the bytes that matter, and
    -- on the length limits
    local function ref_email(s)
      if type(s) ~= "string" or #s > 320 then return false end
      local loc, dom = s:match("^([^@%s]+)@([^@%s]+)$")
      if not loc or #loc > 64 then return false end
      if not dom:find(".", 1, true) or dom:find("..", 1, true) then return false end
      if dom:sub(1, 1) == "." or dom:sub(-1) == "." or dom:sub(1, 1) == "-" then return false end
      if loc:sub(1, 1) == "." or loc:sub(-1) == "." or loc:find("..", 1, true) then return false end
      return dom:match("%.[^%.]+$") ~= nil and #dom:match("%.([^%.]+)$") >= 2
    end
    local function ref_trim(s) return (s:match("^%s*(.-)%s*$")) end
    local columns = require "instantly.workflows.bulk.columns"
    local function each(alphabet, max, fn)
      local function go(prefix, depth)
        fn(prefix)
        if depth == max then return end
        for _, c in ipairs(alphabet) do go(prefix .. c, depth + 1) end
      end
      go("", 0)
    end
    local checked = 0
    each({ "a", "b", ".", "@", "-", " ", "\t" }, 6, function(s)
      checked = checked + 1
      if bulk.is_email(s) ~= ref_email(s) then error(("is_email(%q): %s, expected %s"):format(s,
        tostring(bulk.is_email(s)), tostring(ref_email(s)))) end
    end)
    assert.is_true(checked > 100000)
    local long = {
      ("a"):rep(64) .. "@b.co", ("a"):rep(65) .. "@b.co", "a@" .. ("b"):rep(314) .. ".co",
      "a@" .. ("b"):rep(315) .. ".co", "a@" .. ("b"):rep(316) .. ".co",
      "a@b.c\0o", "\0@b.co", "é@b.co", "a@b.cé", "a@-b.co", "a@b-.co",
      "a\v@b.co", "a@b.co\r",
    }
    for _, s in ipairs(long) do assert.equal(ref_email(s), bulk.is_email(s), s) end
    for _, v in ipairs({ 1, {}, true }) do assert.is_false(bulk.is_email(v)) end
    assert.is_false(bulk.is_email(nil))
    each({ " ", "\t", "\n", "\v", "\f", "\r", "a", "\1", "\31", "\128", "\255" }, 4, function(s)
      local got, want = columns.trim(s), ref_trim(s)
      if got ~= want then error(("trim(%q): %q, expected %q"):format(s, got, want)) end
    end)
  end)

  it("raises on misuse", function()
    local L = client.leads
    assert.has_error(function() L:import() end, "instantly: leads:import: expects a table of options, got nil")
    assert.has_error(function() L:import { leads = {} } end,
      "instantly: leads:import: give exactly one of campaign_id and list_id")
    assert.has_error(function() L:import { campaign_id = "a", list_id = "b", leads = {} } end,
      "instantly: leads:import: give exactly one of campaign_id and list_id")
    assert.has_error(function() L:import { campaign_id = "a" } end,
      "instantly: leads:import: option 'leads' must be an array, an iterator function or a CSV path, got nothing")
    assert.has_error(function() L:import { campaign_id = "a", leads = {}, batchsize = 5 } end,
      "instantly: leads:import: unknown option 'batchsize'")
    assert.has_error(function() L:import { campaign_id = "a", leads = {}, concurrency = 0 } end,
      "instantly: leads:import: concurrency must be between 1 and 64")
    assert.has_error(function() L:import { campaign_id = "a", leads = {}, on_progress = true } end,
      "instantly: leads:import: option 'on_progress' must be a function, got boolean")
    assert.has_error(function() L:import { campaign_id = "a", leads = {}, csv = { sep = ";" } } end,
      "instantly: leads:import: option 'csv' applies only when 'leads' is a CSV path")
    assert.is_table(core)
  end)
end)
