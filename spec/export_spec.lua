-- client.leads:export_file: every lead through pagination to CSV or JSON
-- Lines, in constant memory, never leaving a half-written file behind.
local instantly = require "instantly"
local mock = require "instantly.mock"
local core = require "instantly.core"
local csv = require "instantly.workflows.csv"

local function tmp(ext)
  local p = os.tmpname()
  os.remove(p)
  return p .. (ext or "")
end

local function exists(p)
  local f = io.open(p)
  if f then f:close() end
  return f ~= nil
end

local function list_calls(log)
  local out = {}
  for _, r in ipairs(log) do
    if r.method == "POST" and r.path == "/api/v2/leads/list" then out[#out + 1] = r end
  end
  return out
end

describe("leads:export_file", function()
  local srv, client, campaign, expected

  setup(function()
    srv = assert(mock.start { seed = 1, rate_limits = false })
    client = instantly.new { api_key = srv.api_key, base_url = srv.url, rate_limit = false,
                             retry = { base = 0.01, cap = 0.02 } }
    campaign = client.campaigns:list {}.items[1]
    expected = {}
    for lead in client.leads:each { campaign = campaign.id } do expected[#expected + 1] = lead.email end
    assert.is_true(#expected > 300)
  end)

  teardown(function()
    srv:stop()
  end)

  before_each(function()
    srv:clear_faults()
    srv:clear_requests()
  end)

  it("writes every lead of a campaign to CSV, custom variables as columns", function()
    local path = tmp(".csv")
    local progress = {}
    local s = assert(client.leads:export_file { campaign_id = campaign.id, path = path, page_size = 50,
      on_progress = function(n) progress[#progress + 1] = n end })
    assert.equal(#expected, s.rows)
    assert.equal("csv", s.format)
    assert.equal(path, s.path)
    local calls = list_calls(srv:requests())
    assert.equal(s.pages, #calls)
    -- the mock, like the API, puts a cursor on the last page with data:
    -- one more (empty) page ends the export
    assert.equal(math.ceil(#expected / 50) + 1, #calls)
    assert.is_nil(calls[1].body.starting_after)
    for i = 2, #calls do assert.is_string(calls[i].body.starting_after) end
    assert.equal(campaign.id, calls[1].body.campaign)
    assert.equal(50, calls[1].body.limit)
    assert.equal(#expected, progress[#progress])
    local rows, header = assert(csv.parse(io.open(path, "rb"):read("a"), { header = true }))
    assert.equal("email", header[1])
    assert.equal("source", header[#header])    -- a custom variable of the seeded leads
    assert.equal(#expected, #rows)
    for i, row in ipairs(rows) do
      assert.equal(expected[i], row.email)
      assert.equal(campaign.id, row.campaign)
      assert.truthy(row.source == "csv" or row.source == "api")
    end
    assert.is_false(exists(path .. ".part"))
    assert.is_false(exists(path .. ".part-rows"))
    os.remove(path)
  end)

  it("writes JSON Lines, one decoded lead per line", function()
    local path = tmp(".jsonl")
    local s = assert(client.leads:export_file { campaign_id = campaign.id, path = path })
    assert.equal("jsonl", s.format)
    local n = 0
    for line in io.lines(path) do
      n = n + 1
      local lead = assert(core.json_decode(line))
      assert.equal(expected[n], lead.email)
      assert.is_table(lead.custom_variables, "custom variables under their one name")
    end
    assert.equal(#expected, n)
    os.remove(path)
  end)

  it("adds custom variables met late as new columns, earlier rows stay short", function()
    local list = assert(client.lead_lists:create { name = "export late columns" })
    local leads = {}
    for i = 1, 30 do
      leads[i] = { email = ("late%02d@export.test"):format(i), first_name = "N" .. i,
                   custom_variables = i > 20 and { tier = "gold" } or nil }
    end
    assert(client.leads:import { list_id = list.id, leads = leads })
    local path = tmp(".csv")
    local s = assert(client.leads:export_file { list_id = list.id, path = path, page_size = 10,
                                                csv = { sep = ";", eol = "\n", bom = true } })
    assert.equal(30, s.rows)
    local text = io.open(path, "rb"):read("a")
    assert.equal("\239\187\191email;first_name;", text:sub(1, 20))
    local rows, header = assert(csv.parse(text, { header = true, sep = ";" }))
    assert.equal("tier", header[#header])
    assert.is_nil(rows[1].tier)
    assert.equal("gold", rows[25].tier)
    -- the file imports back: lead fields map, read-only columns are ignored
    local list2 = assert(client.lead_lists:create { name = "re-import" })
    local back = assert(client.leads:import { list_id = list2.id, leads = path, csv = { sep = ";" } })
    assert.equal(30, back.uploaded)
    assert.same({}, back.invalid)
    local cols = {}
    for _, c in ipairs(back.ignored_columns) do cols[c] = true end
    assert.is_true(cols.id and cols.status and cols.list_id and cols.timestamp_created)
    os.remove(path)
  end)

  it("passes filters on to leads:list", function()
    local path = tmp(".jsonl")
    local s = assert(client.leads:export_file { path = path, search = "zzz-no-such-lead",
                                                params = { in_campaign = true } })
    assert.equal(0, s.rows)
    local body = list_calls(srv:requests())[1].body
    assert.equal("zzz-no-such-lead", body.search)
    assert.is_true(body.in_campaign)
    assert.equal("", io.open(path, "rb"):read("a"))
    os.remove(path)
    assert.has_error(function() client.leads:export_file { path = path, params = { limit = 5 } } end,
      "instantly: leads:export_file: params.limit is set by the export")
  end)

  it("writes only the columns asked for", function()
    local path = tmp(".csv")
    assert(client.leads:export_file { campaign_id = campaign.id, path = path, columns = { "email", "source" } })
    local f = io.open(path, "rb")
    assert.equal("email,source", f:read("l"):gsub("\r$", ""))
    local first = f:read("l"):gsub("\r$", "")
    f:close()
    assert.equal(expected[1], first:match("^([^,]+),"))
    os.remove(path)
  end)

  it("keeps memory flat while exporting every lead of the workspace", function()
    local path = tmp(".csv")
    collectgarbage()
    local base, peak = collectgarbage("count"), 0
    local s = assert(client.leads:export_file { path = path, on_progress = function()
      collectgarbage()
      peak = math.max(peak, collectgarbage("count") - base)
    end })
    assert.is_true(s.rows >= 2000)
    -- all leads at once would be several MB; one page is about 100 KB
    assert.is_true(peak < 1024, ("heap grew by %.0f KiB"):format(peak))
    os.remove(path)
  end)

  it("fails cleanly in the middle, leaving no file", function()
    local path = tmp(".csv")
    local pages = 0
    local none, err = client.leads:export_file { campaign_id = campaign.id, path = path, page_size = 20,
      on_progress = function()
        pages = pages + 1
        if pages == 3 then srv:fault { method = "POST", path = "/leads/list", status = 500 } end
      end }
    assert.is_nil(none)
    assert.equal(500, err.status)
    assert.equal(60, err.exported)
    assert.is_false(exists(path))
    assert.is_false(exists(path .. ".part"))
    assert.is_false(exists(path .. ".part-rows"))
  end)

  it("stops on a cursor that repeats", function()
    local path = tmp(".jsonl")
    local page = assert(client.leads:list { campaign = campaign.id, limit = 5 })
    srv:fault { method = "POST", path = "/leads/list", count = 3, status = 200,
                body = { items = { { email = "x@y.co" } }, next_starting_after = "same" } }
    local none, err = client.leads:export_file { campaign_id = campaign.id, path = path }
    assert.is_nil(none)
    assert.matches("cursor same twice", err.message)
    assert.is_false(exists(path))
    assert.is_table(page)
  end)

  it("raises on misuse", function()
    local L = client.leads
    assert.has_error(function() L:export_file { campaign_id = "a" } end,
      "instantly: leads:export_file: option 'path' is required")
    assert.has_error(function() L:export_file { path = "x", format = "xml" } end,
      "instantly: leads:export_file: format must be \"csv\" or \"jsonl\"")
    assert.has_error(function() L:export_file { path = "x", page_size = 500 } end,
      "instantly: leads:export_file: page_size must be between 1 and 100")
    assert.has_error(function() L:export_file { path = "x", campaign_id = "a", list_id = "b" } end,
      "instantly: leads:export_file: give campaign_id or list_id, not both")
    assert.has_error(function() L:export_file { path = "x", colums = {} } end,
      "instantly: leads:export_file: unknown option 'colums'")
    local none, err = L:export_file { path = "/nonexistent/dir/x.csv" }
    assert.is_nil(none)
    assert.equal("export", err.kind)
  end)

  describe("leads:export", function()
    it("is only the API call: a file export is export_file (one meaning per name)", function()
      assert.has_error(function()
        client.leads:export { campaign = campaign.id, path = tmp(".jsonl") }
      end)
      local ok, msg = pcall(client.leads.export, client.leads, { campaign = campaign.id, format = "jsonl" })
      assert.is_false(ok)
      assert.matches("unknown parameter 'format'", msg)
      for _, r in ipairs(srv:requests()) do assert.not_equal("/api/v2/leads/export", r.path) end
    end)

    it("without path or format is the API's POST /leads/export (a background job)", function()
      local job = assert(client.leads:export { campaign = campaign.id, app_connection_id = "conn-1" })
      assert.is_string(job.id)
      local calls = 0
      for _, r in ipairs(srv:requests()) do
        if r.method == "POST" and r.path == "/api/v2/leads/export" then
          calls = calls + 1
          assert.equal(campaign.id, r.body.campaign)
        end
      end
      assert.equal(1, calls)
      assert.equal(0, #list_calls(srv:requests()))
    end)
  end)
end)
