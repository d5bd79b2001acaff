-- instantly.enums: constants and labels generated from the catalog.
local enums = require "instantly.enums"
local catalog = require "instantly.entities"

describe("instantly.enums", function()
  it("is reachable from the main module", function()
    assert.equal(enums, require("instantly").enums)
  end)

  it("names values after the catalog's descriptions", function()
    assert.equal(1, enums.campaign.status.active)
    assert.equal(2, enums.campaign.status.paused)
    assert.equal(-99, enums.campaign.status.account_suspended)
    assert.equal(1, enums.lead.interest_status.interested)
    assert.equal(-4, enums.lead.interest_status.no_show)
    assert.equal(0, enums.lead.lt_interest_status.out_of_office)
    assert.equal(3, enums.account.status.maintenance)
    assert.equal("FILTER_VAL_CONTACTED", enums.lead.filter.contacted)
    assert.equal("lead_no_show", enums.webhook.event_type.lead_no_show)
  end)

  it("labels values and returns nil for unknown ones", function()
    assert.equal("Paused", enums.label("campaign.status", 2))
    assert.equal("Meeting Booked", enums.label("lead.interest_status", 2))
    assert.is_nil(enums.label("campaign.status", 77))
    assert.is_nil(enums.label("campaign.status", "2"))
    assert.equal("paused", enums.name("campaign.status", 2))
    assert.is_true(enums.is("lead.filter", "FILTER_VAL_REPLIED"))
    assert.is_false(enums.is("lead.filter", "FILTER_VAL_NOPE"))
  end)

  it("has the schedule day keys and the timezone list", function()
    assert.equal("0", enums.campaign.days.sunday)
    assert.equal("6", enums.campaign.days.saturday)
    assert.equal("Monday", enums.label("campaign.days", "1"))
    local tz = enums.values("campaign.timezone")
    assert.equal("Etc/GMT+12", tz[1])
    assert.equal("America/Chicago", enums.campaign.timezone.america_chicago)
    assert.equal("Etc/GMT-12", enums.campaign.timezone.etc_gmt_minus_12)
    assert.is_nil(enums.label("campaign.timezone", "America/New_York"))
    -- values() hands out a copy
    tz[1] = "x"
    assert.equal("Etc/GMT+12", enums.values("campaign.timezone")[1])
  end)

  it("raises on a name, field or entity that does not exist", function()
    assert.has_error(function() return enums.campaign.status.actve end,
      "instantly.enums: campaign.status has no 'actve' (known: account_suspended, accounts_unhealthy, active, " ..
      "bounce_protect, completed, draft, paused, running_subsequences)")
    assert.has_error(function() return enums.campaign.colour end)
    assert.has_error(function() return enums.campain end)
    assert.has_error(function() enums.label("campaign.colour", 1) end, "instantly.enums.label: no enum 'campaign.colour'")
    assert.has_error(function() enums.label(nil, 1) end)
    assert.has_error(function() enums.campaign.status.active = 5 end)
    local n = 0
    for name, v in pairs(enums.campaign.status) do
      n = n + 1
      assert.equal(v, enums.campaign.status[name])
    end
    assert.equal(8, n)
  end)

  it("covers every labelled enum of every entity schema", function()
    -- Each schema enum whose description names its values is reachable.
    for _, n in ipairs(catalog.entities) do
      local def = require("instantly.entities." .. n)
      local ent = def.name:lower():gsub("[^%w]+", "_"):gsub("^_+", ""):gsub("_+$", "")
      for _, f in ipairs(def.fields) do
        if f.enum and f.description and f.description:find(tostring(f.enum[1]) .. "=", 1, true) then
          local path = ent .. "." .. f.name
          for _, v in ipairs(f.enum) do
            if f.description:find(tostring(v) .. "=", 1, true) then
              assert.is_true(enums.is(path, v), path .. " lacks " .. tostring(v))
            end
          end
        end
      end
    end
  end)
end)
