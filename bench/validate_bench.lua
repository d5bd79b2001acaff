-- validate_bench.lua - what checking a request costs: a 1000-lead
-- POST /leads/add body (the shape of bench/transport/gen_bodies.lua),
-- routed by instantly.request.validate strict (checked while encoded, one
-- walk: core.shape_encode) and off (then encoded), instantly.core's
-- json_encode of the same body for scale, the compiled test of each
-- parameter followed by json_encode (two walks, as calls did before), and
-- the walker alone (how every value was checked before the tests were
-- compiled).
-- CPU time per body, best of seven interleaved rounds, so a busy machine
-- skews every row alike.
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' lua5.4 bench/validate_bench.lua [rounds]
local core = require "instantly.core"
local validate = require "instantly.request.validate"
local leads_def = require "instantly.entities.leads"

local REPS = tonumber(arg[1]) or 20

local op
for _, o in ipairs(leads_def.operations) do if o.lua_method == "add_many" then op = o end end
local checker = validate.compile(op)

local leads = {}
for i = 1, 1000 do
  leads[i] = {
    email = ("lead%04d@prospect-%03d.example"):format(i, i % 250),
    first_name = ("First%04d"):format(i), last_name = ("Last%04d"):format(i),
    company_name = ("Prospect %03d Inc"):format(i % 250), phone = ("+1-555-%04d"):format(i),
    website = ("https://prospect-%03d.example"):format(i % 250),
    personalization = "Loved your recent post on scaling outbound.",
    custom_variables = { industry = "SaaS", employees = tostring(10 + i % 500), source = "webinar" },
  }
end
-- through the codec, as a caller that reads leads from JSON would hold them
local body = core.json_decode(core.json_encode {
  campaign_id = "6be302d5-0065-4065-a2c3-0019f33cf101", skip_if_in_workspace = true, leads = leads })

local rows = {
  -- what a call does: route checks the body while encoding it
  { "strict", function()
      local _, _, err, _, text = validate.route(checker, body, "strict")
      assert(err == nil and text, err)
    end },
  { "off+encode", function()
      local _, sent = validate.route(checker, body, "off")
      core.json_encode(sent)
    end },
  { "json_encode", function() core.json_encode(body) end },
  -- how a call did it before: the compiled test of each parameter, then
  -- the encoder's own walk
  { "tests+encode", function()
      for k, v in pairs(body) do assert(validate.accepts(checker.params[k])(v)) end
      core.json_encode(body)
    end },
  { "walker alone", function()
      local _, probs = validate.walk(checker.params.leads, body.leads, { "leads" })
      assert(#probs == 0)
    end },
}

local best = {}
for _ = 1, 7 do
  for i, row in ipairs(rows) do
    local t0 = os.clock()
    for _ = 1, REPS do row[2]() end
    local ms = (os.clock() - t0) / REPS * 1000
    if not best[i] or ms < best[i] then best[i] = ms end
  end
end

for i, row in ipairs(rows) do
  io.write(("%-14s %7.3f ms per 1000-lead body\n"):format(row[1], best[i]))
end
local cost = best[1] - best[2]
io.write(("checking in a call (strict - off+encode): %.3f ms, %.2f of json_encode\n"):format(
  cost, cost / best[3]))
io.write(("checking before (tests+encode - json_encode): %.3f ms, %.2f of json_encode\n"):format(
  best[4] - best[3], (best[4] - best[3]) / best[3]))
