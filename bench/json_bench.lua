-- json_bench.lua - instantly.core's JSON codec against lua-cjson, measured
-- in the same process on the same documents:
--   decode: a 100-campaign GET /campaigns page (~200 KB, nested schedules
--           and sequences), generated deterministically;
--   encode: a 1000-lead POST /leads/add body.
-- Prints MB/s for each side, the ratio (cjson time / ours) and whether the
-- row meets its target (issue 14: decode 2x, encode 2.5x); CPU time, best
-- of seven interleaved rounds, so a busy machine skews both sides alike.
--   LUA_CPATH='./build/?.so;;' lua5.4 bench/json_bench.lua [--check]
-- --check exits 1 when a row misses its target.
--   ... bench/json_bench.lua --run decode|encode ours|cjson N
-- makes N calls of one side and nothing else, for instruction counts:
--   valgrind --tool=callgrind lua5.4 bench/json_bench.lua --run encode ours 20
local core = require "instantly.core"
local cjson = require "cjson"

local check = arg[1] == "--check"
local A = core.array

-- Deterministic PRNG (LCG), so every run measures the same bytes.
local seed = 7
local function rand(lo, hi)
  seed = (seed * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
  return lo + ((seed >> 33) % (hi - lo + 1))
end
local WORDS = { "quick", "follow", "up", "pricing", "demo", "team", "growth", "pipeline", "Q3", "intro",
  "café", "naïve", "résumé", "—", "“hello”", "reply", "calendar", "link", "bonus", "offer" }
local function words(n)
  local t = {}
  for i = 1, n do t[i] = WORDS[rand(1, #WORDS)] end
  return table.concat(t, " ")
end
local function uuid()
  return ("%08x-%04x-4%03x-8%03x-%012x"):format(rand(0, 0x7fffffff), rand(0, 0xffff), rand(0, 0xfff),
    rand(0, 0xfff), rand(0, 0x7fffffff) * 65536 + rand(0, 0xffff))
end
local function stamp()
  return ("2026-%02d-%02dT%02d:%02d:%02d.%03dZ"):format(rand(1, 12), rand(1, 28), rand(0, 23), rand(0, 59),
    rand(0, 59), rand(0, 999))
end

local function campaign()
  local steps = A {}
  for s = 1, rand(1, 3) do
    local variants = A {}
    for v = 1, rand(1, 2) do
      variants[v] = {
        subject = "Re: " .. words(rand(3, 7)) .. " {{firstName}}",
        body = "<p>Hi {{firstName}},</p>\n<p>" .. words(rand(5, 12)) .. "</p>\n<p>\"" .. words(5)
          .. "\"</p>\n<p>Best,<br>{{sendingAccountFirstName}}</p>",
        v_disabled = rand(0, 4) == 0,
      }
    end
    steps[s] = { type = "email", delay = rand(1, 5), delay_unit = "days", pre_delay = 0,
      pre_delay_unit = "minutes", variants = variants }
  end
  local emails = A {}
  for i = 1, rand(1, 5) do emails[i] = ("sender%d@outreach%d.example.com"):format(i, rand(1, 99)) end
  return {
    id = uuid(), name = "Campaign " .. words(3), status = rand(0, 4),
    organization = uuid(), timestamp_created = stamp(), timestamp_updated = stamp(),
    campaign_schedule = {
      start_date = rand(0, 1) == 0 and core.null or "2026-07-01", end_date = core.null,
      schedules = A { { name = "Business hours", timing = { from = "09:00", to = "17:30" },
        days = { ["0"] = false, ["1"] = true, ["2"] = true, ["3"] = true, ["4"] = true, ["5"] = true,
          ["6"] = false }, timezone = "America/Chicago" } },
    },
    sequences = A { { steps = steps } },
    email_list = emails, email_tag_list = A {}, daily_limit = rand(20, 500), email_gap = rand(5, 20),
    random_wait_max = rand(1, 10), stop_on_reply = true, stop_on_auto_reply = rand(0, 1) == 1,
    link_tracking = false, open_tracking = rand(0, 1) == 1, text_only = false, daily_max_leads = rand(10, 100),
    prioritize_new_leads = false, match_lead_esp = false, stop_for_company = false, insert_unsubscribe_header = true,
    allow_risky_contacts = false, disable_bounce_protect = false, pl_value = rand(0, 100000) / 100,
    is_evergreen = false, cc_list = A {}, bcc_list = A {},
  }
end

local page = { items = A {}, next_starting_after = uuid() }
for i = 1, 100 do page.items[i] = campaign() end
local page_text = assert(core.json_encode(page))

local leads = A {}
for i = 1, 1000 do
  leads[i] = {
    email = ("lead%04d@company%d.example.org"):format(i, rand(1, 500)),
    first_name = WORDS[rand(1, #WORDS)], last_name = "Smith-" .. i, company_name = "Company " .. words(2),
    phone = ("+1 555 %03d %04d"):format(rand(0, 999), rand(0, 9999)), website = "https://example.org/" .. i,
    personalization = words(rand(8, 16)), lt_interest_status = rand(0, 3),
    custom_variables = { industry = WORDS[rand(1, #WORDS)], employees = rand(1, 5000), score = rand(0, 1000) / 10,
      linkedin = "https://linkedin.example/in/" .. i },
  }
end
local body = { campaign_id = uuid(), skip_if_in_workspace = true, skip_if_in_campaign = true, leads = leads }
local body_bytes = #assert(core.json_encode(body))

-- Calls per round so that one round of fn takes about 0.2 s of CPU.
local function calibrate(fn)
  local n = 1
  repeat
    local t0 = os.clock()
    for _ = 1, n do fn() end
    if os.clock() - t0 >= 0.2 then return n end
    n = n * 2
  until false
end

-- Best CPU seconds per call for both sides, rounds interleaved so that a
-- busy spell on a shared machine hits both alike.
local function measure_pair(ours, theirs)
  local n1, n2 = calibrate(ours), calibrate(theirs)
  local best1, best2 = math.huge, math.huge
  for _ = 1, 7 do
    collectgarbage()
    local t0 = os.clock()
    for _ = 1, n1 do ours() end
    best1 = math.min(best1, (os.clock() - t0) / n1)
    collectgarbage()
    t0 = os.clock()
    for _ = 1, n2 do theirs() end
    best2 = math.min(best2, (os.clock() - t0) / n2)
  end
  return best1, best2
end

local rows = {
  { "decode 100-campaign page", #page_text, 2.0,
    function() return core.json_decode(page_text) end,
    function() return cjson.decode(page_text) end },
  { "encode 1000-lead body", body_bytes, 2.5,
    function() return core.json_encode(body) end,
    function() return cjson.encode(body) end },
}

if arg[1] == "--run" then
  local row = assert(({ decode = rows[1], encode = rows[2] })[arg[2]], "decode or encode")
  local fn = assert(({ ours = row[4], cjson = row[5] })[arg[3]], "ours or cjson")
  for _ = 1, assert(math.tointeger(tonumber(arg[4])), "a count") do fn() end
  return
end

local ok = true
print(("%-26s %9s %12s %12s %8s %8s"):format("json", "bytes", "ours MB/s", "cjson MB/s", "ratio", "target"))
for _, r in ipairs(rows) do
  local ours, theirs = measure_pair(r[4], r[5])
  local ratio = theirs / ours
  local met = ratio >= r[3]
  print(("%-26s %9d %12.1f %12.1f %7.2fx %5.1fx %s"):format(r[1], r[2], r[2] / ours / 1e6, r[2] / theirs / 1e6,
    ratio, r[3], met and "met" or "MISSED"))
  ok = ok and met
end
if check and not ok then os.exit(1) end
