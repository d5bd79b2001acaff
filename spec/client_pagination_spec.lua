-- Pagination against the mock's seeded workspace: every lead exactly once
-- through POST /leads/list (cursor in the body), constant memory, pages
-- by hand, GET-list iterators, and a failure mid-way that surfaces.
local H = require "support.client_helper"
local instantly = require "instantly"

local srv, client

H.mock_fixture({ rate_limits = false }, function(s)
  srv = s
  client = H.mock_client(srv)
end)

describe("pagination", function()
  it("leads:each yields every seeded lead exactly once, in constant memory", function()
    local seen, n = {}, 0
    collectgarbage("collect")
    local base = collectgarbage("count")
    local peak = base
    for lead in client.leads:each { limit = 100 } do
      n = n + 1
      assert.is_nil(seen[lead.id], "lead " .. tostring(lead.id) .. " seen twice")
      seen[lead.id] = true
      assert.equal(client.leads, instantly.entity_of(lead))
      if n % 100 == 0 then
        collectgarbage("collect")
        local now = collectgarbage("count")
        if now > peak then peak = now end
      end
    end
    assert.is_true(n >= 1900, "expected the ~2,000 seeded leads, got " .. n)
    -- The seen-set grows by one string key per lead; what the iterator keeps
    -- must not: allow the set (~130 bytes a lead) plus a few pages.
    local budget = n * 0.2 + 2048
    assert.is_true(peak - base < budget,
      ("memory grew by %.0f KiB for %d leads (budget %.0f KiB)"):format(peak - base, n, budget))
    -- Paging went through the body of POST /leads/list.
    local log = srv:requests()
    local pages = 0
    for _, r in ipairs(log) do
      assert.equal("POST", r.method)
      assert.equal("/api/v2/leads/list", r.decoded_path)
      assert.equal(100, r.body.limit)
      if pages > 0 then assert.is_string(r.body.starting_after) end
      pages = pages + 1
    end
    assert.is_true(pages >= n // 100)
  end)

  it("the iterator's own memory stays flat (nothing kept per item)", function()
    local counts = {}
    local n = 0
    for _ in client.leads:each { limit = 100 } do
      n = n + 1
      if n % 500 == 0 then
        collectgarbage("collect")
        counts[#counts + 1] = collectgarbage("count")
      end
    end
    assert.is_true(#counts >= 3)
    -- From the first sample to the last: less than 256 KiB of growth
    -- (a page of 100 leads is far less; a leak of all leads is far more).
    assert.is_true(counts[#counts] - counts[1] < 256,
      ("grew %.0f KiB"):format(counts[#counts] - counts[1]))
  end)

  it("pages by hand with list and next", function()
    local page = assert(client.campaigns:list { limit = 2 })
    local total, pages = 0, 0
    local ids = {}
    while page do
      pages = pages + 1
      for _, c in ipairs(page.items) do
        assert.is_nil(ids[c.id])
        ids[c.id] = true
        total = total + 1
      end
      local err
      page, err = page:next()
      assert.is_nil(err)
      assert.is_true(pages < 1000)
    end
    local n = 0
    for _ in client.campaigns:each { limit = 2 } do n = n + 1 end
    assert.equal(n, total)
    assert.is_true(total > 2, "the seed has more than one page of campaigns")
  end)

  it("a failure mid-way ends the loop with the error in it.err, never truncating silently", function()
    local n = 0
    local it = client.leads:each { limit = 100 }
    for _ in it do
      n = n + 1
      if n == 150 then
        srv:fault { method = "POST", path = "/leads/list", status = 400, message = "bad page", count = 1 }
      end
    end
    local err = it.err
    assert.is_true(instantly.is_error(err))
    assert.equal("http", err.kind)
    assert.equal(400, err.status)
    assert.equal(200, n, "the two good pages were delivered before the failure")
  end)

  it("all{} collects every item, or nil, err: a failed page or more than max items", function()
    local leads = assert(client.leads:all { limit = 100 })
    assert.is_true(#leads >= 1900)
    local ids = {}
    for _, l in ipairs(leads) do assert.is_nil(ids[l.id]); ids[l.id] = true end
    local none, err = client.leads:all { limit = 100, max = 150 }
    assert.is_nil(none)
    assert.equal("limit", err.kind)
    assert.matches("more than 150 items", tostring(err))
    srv:fault { method = "POST", path = "/leads/list", status = 400, message = "bad page", count = 1 }
    none, err = client.leads:all { limit = 100 }
    assert.is_nil(none)
    assert.equal(400, err.status)
    assert.has_error(function() client.leads:all { max = 0 } end,
      "instantly: leads:list: 'max' must be an integer >= 1")
  end)

  it("a GET list iterator passes the cursor in the query", function()
    local n = 0
    for _ in client.accounts:each { limit = 3 } do n = n + 1 end
    assert.is_true(n > 0)
    local log = srv:requests()
    for i, r in ipairs(log) do
      assert.equal("GET", r.method)
      assert.equal("3", r.query.limit)
      if i > 1 then assert.is_string(r.query.starting_after) end
    end
  end)
end)
