-- gen_bodies.lua DIR - writes the canned JSON the transport benchmark
-- serves and sends, shaped like the Instantly API V2:
--   DIR/workspace.json     ~350 B   GET /api/v2/workspaces/current
--   DIR/campaigns.json     ~200 KB  GET /api/v2/campaigns (a page of 100)
--   DIR/campaigns_N.json            the same with N = 10, 100, 1000 items
--                                   (served for x-bench-page: N, the scaling rows)
--   DIR/leads_body.json    ~300 KB  POST /api/v2/leads/add (1000 leads)
-- Deterministic, so every run measures the same bytes.
local dir = assert(arg[1], "usage: lua5.4 gen_bodies.lua DIR")

local function q(s) return '"' .. s .. '"' end

local function uuid(n)
  return ("%08x-%04x-4%03x-a%03x-%012x"):format(n * 2654435761 % 4294967296, n % 65536, n % 4096, n * 7 % 4096,
    n * 1103515245 % 281474976710656)
end

local function write(name, text)
  local f = assert(io.open(dir .. "/" .. name, "wb"))
  f:write(text)
  f:close()
  return #text
end

local workspace = table.concat({
  '{"id":', q(uuid(1)), ',"name":"Acme Outbound","owner":', q(uuid(2)),
  ',"plan_id":"pid_hg_v1",',
  '"org_client_domain":"mail.acme-outbound.example",',
  '"timestamp_created":"2025-01-14T09:21:33.482Z","timestamp_updated":"2025-06-02T17:45:10.109Z",',
  '"plan_id_crm":null,"add_on_features":["unibox","crm"],"default_opportunity_value":1500}',
})

local body_text = ("Hi {{firstName}},\\n\\nI noticed {{companyName}} is hiring for sales roles. "
  .. "We help teams like yours book more meetings with less manual prospecting. "):rep(2)
  .. "\\n\\nWorth a quick chat next week?\\n\\n{{sendingAccountFirstName}}"

local function campaign(i)
  local steps = {}
  for s = 1, 3 do
    steps[s] = table.concat({
      '{"type":"email","delay":', tostring(s == 1 and 0 or 2), ',"variants":[{"subject":',
      q(("Quick question about {{companyName}} (%d)"):format(s)), ',"body":', q(body_text), "}]}",
    })
  end
  return table.concat({
    '{"id":', q(uuid(100 + i)), ',"name":', q(("Q3 outbound wave %03d"):format(i)),
    ',"status":', tostring(i % 4), ',"pl_value":500,"is_evergreen":false,',
    '"campaign_schedule":{"start_date":"2025-07-01","end_date":null,"schedules":[{"name":"Weekdays",',
    '"timing":{"from":"09:00","to":"17:30"},"days":{"1":true,"2":true,"3":true,"4":true,"5":true},',
    '"timezone":"America/Chicago"}]},"sequences":[{"steps":[', table.concat(steps, ","), "]}],",
    '"email_gap":10,"random_wait_max":5,"text_only":false,"email_list":[',
    q(("sdr%d@acme-outbound.example"):format(i % 7)), ",", q(("bdr%d@acme-outbound.example"):format(i % 5)),
    '],"daily_limit":', tostring(50 + i), ',"stop_on_reply":true,"link_tracking":false,',
    '"open_tracking":true,"stop_on_auto_reply":true,"daily_max_leads":200,"prioritize_new_leads":false,',
    '"match_lead_esp":false,"stop_for_company":false,"insert_unsubscribe_header":true,',
    '"allow_risky_contacts":false,"disable_bounce_protect":false,"cc_list":[],"bcc_list":[],',
    '"organization":', q(uuid(1)), ',"timestamp_created":"2025-06-', ("%02d"):format(i % 28 + 1),
    'T10:00:00.000Z","timestamp_updated":"2025-07-', ("%02d"):format(i % 28 + 1), 'T12:30:00.000Z"}',
  })
end

local function page(n)
  local items = {}
  for i = 1, n do items[i] = campaign(i) end
  return '{"items":[' .. table.concat(items, ",") .. '],"next_starting_after":' .. q(uuid(200)) .. "}"
end
local campaigns = page(100)
for _, n in ipairs({ 10, 100, 1000 }) do write(("campaigns_%d.json"):format(n), page(n)) end

local leads = {}
for i = 1, 1000 do
  leads[i] = table.concat({
    '{"email":', q(("lead%04d@prospect-%03d.example"):format(i, i % 250)),
    ',"first_name":', q(("First%04d"):format(i)), ',"last_name":', q(("Last%04d"):format(i)),
    ',"company_name":', q(("Prospect %03d Inc"):format(i % 250)),
    ',"phone":', q(("+1-555-%04d"):format(i)), ',"website":', q(("https://prospect-%03d.example"):format(i % 250)),
    ',"personalization":', q("Loved your recent post on scaling outbound."),
    ',"custom_variables":{"industry":"SaaS","employees":"', tostring(10 + i % 500), '","source":"webinar"}}',
  })
end
local leads_body = '{"campaign_id":' .. q(uuid(101)) .. ',"skip_if_in_workspace":true,"leads":['
  .. table.concat(leads, ",") .. "]}"

io.write(("bodies: workspace %d B, campaigns %d B, leads body %d B\n"):format(
  write("workspace.json", workspace), write("campaigns.json", campaigns), write("leads_body.json", leads_body)))
