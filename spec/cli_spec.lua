-- The `instantly` CLI, run as a subprocess against the project's mock on
-- loopback: help at every level, typed flags, output formats, pagination,
-- exit codes, --dry-run, confirmation, the key never shown, progress only
-- on a terminal. A few breadth checks (every catalog operation) run the
-- CLI in-process, which is the same code without the fork.

local mock = require("instantly.mock")
local core = require("instantly.core")
local cli = require("instantly.cli")
local index = require("instantly.entities")

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

local srv

-- Run `instantly <args>`; returns {code, out, err}.
-- o.key / o.base: false to leave unset, a string to override.
-- o.stdin: a file for stdin. o.env: extra "K=V" words. o.tty: run under a
-- pseudo-terminal (script), stdout and stderr merged into out.
local function run(args, o)
  o = o or {}
  local env = { "LUA_PATH=" .. q(package.path), "LUA_CPATH=" .. q(package.cpath),
                "COLUMNS=" .. (o.columns or 100) }
  if o.key ~= false then env[#env + 1] = "INSTANTLY_API_KEY=" .. q(o.key or srv.api_key) end
  if o.base ~= false then env[#env + 1] = "INSTANTLY_BASE_URL=" .. q(o.base or srv.url) end
  for _, e in ipairs(o.env or {}) do env[#env + 1] = e end
  local base = "env -u INSTANTLY_API_KEY -u INSTANTLY_BASE_URL -u INSTANTLY_DEBUG " .. table.concat(env, " ")
    .. " lua5.4 bin/instantly " .. args
  local errf = os.tmpname()
  local cmd
  if o.tty then
    local inner = base .. (o.stderr_to_file and (" 2>" .. errf) or "")
    cmd = (o.input and ("printf " .. q(o.input) .. " | ") or "")
      .. "script -qec " .. q(inner) .. " /dev/null" .. (o.input and "" or " </dev/null")
  else
    cmd = base .. " 2>" .. errf .. " <" .. (o.stdin or "/dev/null")
  end
  local p = assert(io.popen(cmd .. "; echo \"exit=$?\""))
  local out = p:read("a")
  p:close()
  local code = tonumber(out:match("exit=(%d+)\n$"))
  out = out:gsub("exit=%d+\n$", "")
  local err = slurp(errf)
  os.remove(errf)
  return { code = code, out = out, err = err }
end

local function decode(s)
  local v, err = core.json_decode(s)
  assert(v ~= nil, "not JSON: " .. tostring(err) .. "\n" .. s)
  return v
end

local function tmpfile(text)
  local p = os.tmpname()
  local f = assert(io.open(p, "wb"))
  f:write(text)
  f:close()
  return p
end

local SCHEDULE = '{"schedules":[{"name":"Weekdays","timing":{"from":"09:00","to":"17:00"},'
  .. '"days":{"1":true,"2":true},"timezone":"Etc/GMT+12"}]}'

local function make_campaign(name)
  local r = run("campaigns create --json --name " .. q(name) .. " --campaign_schedule " .. q(SCHEDULE))
  assert(r.code == 0, r.err)
  return decode(r.out)
end

-- An in-process run with captured output.
local function inproc(argv, env)
  local out, err = {}, {}
  local function sink(t)
    return { write = function(self, ...) for _, s in ipairs({ ... }) do t[#t + 1] = tostring(s) end return self end,
             flush = function() end }
  end
  local code = cli.main(argv, { stdout = sink(out), stderr = sink(err) }, function(k)
    if k == "COLUMNS" then return "100" end
    return env and env[k] or nil
  end)
  return { code = code, out = table.concat(out), err = table.concat(err) }
end

describe("instantly CLI pieces", function()
  local params = require("instantly.cli.params")
  local output = require("instantly.cli.output")
  local chart = require("instantly.cli.chart")
  local progress = require("instantly.cli.progress")
  local json = cli.json_codec()

  describe("flag values are typed by the catalog", function()
    local rows = {
      { { type = "integer" }, "42", 42 },
      { { type = "integer", min = 1, max = 100 }, "0", nil, "--x: must be at least 1" },
      { { type = "integer" }, "4.5", nil, "--x: expected an integer, got '4.5'" },
      { { type = "number" }, "2.5", 2.5 },
      { { type = "number" }, "nan", nil, "--x: expected a number" },
      { { type = "boolean" }, "yes", true },
      { { type = "boolean" }, "off", false },
      { { type = "boolean" }, "maybe", nil, "--x: expected true or false, got 'maybe'" },
      { { type = "integer", enum = { 0, 1, -1 } }, "-1", -1 },
      { { type = "integer", enum = { 0, 1 } }, "2", nil, "--x: must be one of 0|1" },
      { { type = "string", enum = { "asc", "desc" } }, "desc", "desc" },
      { { type = "string", nullable = true }, "null", core.null },
      { { type = "string" }, "null", "null" },
      { { type = "object" }, '{"a":1}', { a = 1 } },
      { { type = "object" }, "[1]", nil, "--x: expected a JSON object" },
      { { type = "array", items = "string" }, { "a,b", " c " }, { "a", "b", "c" } },
      { { type = "array", items = "integer" }, { "1,2", "[3,4]" }, { 1, 2, 3, 4 } },
      { { type = "array", items = "integer" }, { "1,x" }, nil, "--x: expected an integer, got 'x'" },
      { { type = "array", items = "string", enum = { "a", "b" } }, { "a,c" }, nil, "--x: 'c' is not one of a|b" },
      { { type = "array", items = "object" }, { '{"e":1}', '[{"e":2}]' }, { { e = 1 }, { e = 2 } } },
      { { type = "array", items = "object" }, { "plain" }, nil, "--x: expected a JSON object or array" },
    }
    for i, r in ipairs(rows) do
      it("row " .. i .. ": " .. r[1].type .. " " .. (type(r[2]) == "table" and table.concat(r[2], " ") or r[2]),
        function()
          local def = setmetatable({ name = "x" }, { __index = r[1] })
          local v, err = params.coerce(def, r[2], json)
          if r[4] then
            assert.is_nil(v)
            assert.truthy(err:find(r[4], 1, true), err)
          else
            assert.are.same(r[3], v)
          end
        end)
    end

    it("bare booleans never swallow the next word", function()
      local bools = { ["--flag"] = true, ["--other-flag"] = true }
      assert.are.same({ "--flag=true", "ID" }, params.normalize_bools({ "--flag", "ID" }, bools))
      assert.are.same({ "--flag=false" }, params.normalize_bools({ "--flag", "false" }, bools))
      assert.are.same({ "--other-flag=false", "x" }, params.normalize_bools({ "--no-other-flag", "x" }, bools))
      assert.are.same({ "--", "--flag" }, params.normalize_bools({ "--", "--flag" }, bools))
    end)
  end)

  describe("tables", function()
    it("align columns, show enum labels and cut to the width", function()
      local rows = { { id = "a", name = "short", status = 1 }, { id = "bb", name = string.rep("x", 60), status = 0 } }
      local labels = { status = { [0] = "Draft", [1] = "Active" } }
      local t = output.table(rows, { "id", "name", "status" }, 40, labels, json)
      local lines = {}
      for l in t:gmatch("[^\n]+") do lines[#lines + 1] = l end
      -- 40 = ID (2) + NAME (28) + STATUS (6) + two gaps of 2
      assert.are.equal("ID  NAME" .. string.rep(" ", 24) .. "  STATUS", lines[1])
      assert.are.equal("a   short" .. string.rep(" ", 23) .. "  Active", lines[2])
      assert.are.equal("bb  " .. string.rep("x", 27) .. "…  Draft", lines[3])
    end)

    it("drop columns from the right rather than cut them to nothing", function()
      local rows = { { id = string.rep("i", 36), a = "aaaaaaaaaaaa", b = "bbbbbbbbbbbb" } }
      local t = output.table(rows, { "id", "a", "b" }, 50, nil, json)
      assert.are.equal("ID                                    A\n" .. string.rep("i", 36) .. "  aaaaaaaaaaaa\n", t)
    end)

    it("read enum labels from field descriptions", function()
      assert.are.same({ [0] = "Draft", [1] = "Active", [-99] = "Account Suspended" },
        output.enum_labels("0=Draft, 1=Active, -99=Account Suspended"))
      assert.is_nil(output.enum_labels("Campaign id"))
    end)
  end)

  it("charts scale the three series to the widest day", function()
    local c = chart.daily({ { date = "2026-01-02", sent = 10, opened = 5, replies = 1 },
                            { date = "2026-01-01", sent = 20, opened = 0, replies = 0 } }, 50)
    local lines = {}
    for l in c:gmatch("[^\n]+") do lines[#lines + 1] = l end
    -- (UTF-8 glyphs are several bytes: compare whole sequences, not classes)
    local bar1 = lines[2]:match("^2026%-01%-01 │(.-) +20/ 0/ 0$")
    local bar2 = lines[3]:match("^2026%-01%-02 │(.-) +10/ 5/ 1$")
    assert.truthy(bar1, lines[2])
    assert.truthy(bar2, lines[3])
    local rest1, full = bar1:gsub("░", "")
    assert.are.equal("", rest1)
    local function strip(str, glyph)
      local n = 0
      while str:sub(1, #glyph) == glyph do str, n = str:sub(#glyph + 1), n + 1 end
      return str, n
    end
    local rest2, r = strip(bar2, "█")
    local o, se
    rest2, o = strip(rest2, "▒")
    rest2, se = strip(rest2, "░")
    assert.are.equal("", rest2, "replied, then opened, then sent")
    assert.is_true(r >= 1 and o >= 1 and se >= 1)
    local _, half = bar2:gsub("[\xe2][\x96][\x91\x92\x88]", "")
    assert.are.equal(full // 2, half)
  end)

  it("progress bars draw only when enabled", function()
    local written = {}
    local stream = { write = function(_, ...) for _, s in ipairs({ ... }) do written[#written + 1] = s end end,
                     flush = function() end }
    local off = progress.new { stream = stream, enabled = false }
    off:update(1, 2)
    off:finish()
    assert.are.same({}, written)
    local on = progress.new { stream = stream, enabled = true, width = 40, label = "import", unit = "rows" }
    on:update(1, 4)
    on:update(1, 4)
    on:finish()
    local text = table.concat(written)
    local bar = text:match("^\r\27%[Kimport %[(#+%.+)%]  25%% 1/4 rows\n$")
    assert.truthy(bar, text)
    local _, hashes = bar:gsub("#", "")
    assert.are.equal(math.floor(#bar / 4 + 0.5), hashes)
    assert.is_true(#text - 4 <= 40)
  end)
end)

describe("instantly CLI", function()
  setup(function()
    srv = assert(mock.start { seed = 1, rate_limits = false })
  end)
  teardown(function()
    if srv then srv:stop() end
  end)
  before_each(function()
    srv:reset()
  end)

  describe("help", function()
    it("lists every entity at the top level", function()
      local r = run("--help")
      assert.are.equal(0, r.code)
      for _, name in ipairs(index.entities) do
        assert.truthy(r.out:find("\n   " .. name, 1, true), "missing entity " .. name)
      end
      assert.truthy(r.out:find("Exit codes: 0 success, 1 API error, 2 usage error, 3 transport error", 1, true))
    end)

    it("lists an entity's actions with their summaries", function()
      local r = run("leads --help")
      assert.are.equal(0, r.code)
      local leads = require("instantly.entities.leads")
      for _, op in ipairs(leads.operations) do
        assert.truthy(r.out:find(op.lua_method, 1, true), op.lua_method)
        assert.truthy(r.out:find(op.summary, 1, true), op.summary)
      end
      assert.truthy(r.out:find("import", 1, true))
    end)

    it("describes an action's parameters from the catalog", function()
      local r = run("leads add_many --help")
      assert.are.equal(0, r.code)
      assert.truthy(r.out:find("Usage: instantly leads add_many", 1, true))
      assert.truthy(r.out:find("POST /api/v2/leads/add", 1, true))
      assert.truthy(r.out:find("--leads <json>", 1, true))
      assert.truthy(r.out:find("--skip_if_in_workspace", 1, true))
      assert.truthy(r.out:find("required", 1, true))
    end)

    it("has help for every catalog operation", function()
      for _, name in ipairs(index.entities) do
        local e = require("instantly.entities." .. name)
        for _, op in ipairs(e.operations) do
          local r = inproc({ name, op.lua_method, "--help" })
          assert.are.equal(0, r.code, name .. " " .. op.lua_method)
          assert.truthy(r.out:find(op.summary, 1, true), name .. " " .. op.lua_method)
          for _, pp in ipairs(op.path_params) do
            assert.truthy(r.out:find("<" .. pp.name .. ">", 1, true), name .. " " .. op.lua_method .. " " .. pp.name)
          end
          for _, list in ipairs({ op.query or {}, op.body and op.body.fields or {} }) do
            for _, p in ipairs(list) do
              assert.truthy(r.out:find("--" .. p.name, 1, true), name .. " " .. op.lua_method .. " --" .. p.name)
            end
          end
        end
      end
    end)

    it("prints shell completion scripts covering every action and flag", function()
      local r = run("--completion bash", { key = false, base = false })
      assert.are.equal(0, r.code, r.err)
      local f = os.tmpname()
      local fh = assert(io.open(f, "w"))
      fh:write(r.out)
      fh:close()
      local p = assert(io.popen("bash -c " .. q("source " .. f
        .. "; COMP_WORDS=(instantly leads add_many --skip_if_in_w);"
        .. " COMP_CWORD=3; _instantly; echo \"${COMPREPLY[*]}\"; COMP_WORDS=(instantly webhook_ev);"
        .. " COMP_CWORD=1; _instantly; echo \"${COMPREPLY[*]}\"")))
      local out = p:read("a")
      p:close()
      os.remove(f)
      assert.truthy(out:find("--skip_if_in_workspace", 1, true), out)
      assert.truthy(out:find("webhook_events", 1, true), out)
      for _, shell in ipairs({ "zsh", "fish" }) do
        local z = run("--completion " .. shell, { key = false, base = false })
        assert.are.equal(0, z.code)
        assert.truthy(z.out:find("update_interest_status", 1, true), shell)
      end
      assert.are.equal(2, run("--completion tcsh").code)
    end)

    it("reaches every catalog operation: --dry-run forms its request", function()
      local UUID = "6e083e99-f4bd-4ab2-8b9e-e1b0ef24dc9e"
      local function sample(p)
        local item = p.type == "array" and (p.items or "string") or p.type
        local v
        if p.enum then
          v = tostring(p.enum[1])
        elseif item == "integer" or item == "number" then
          v = tostring(p.min or 1)
        elseif item == "boolean" then
          v = "true"
        elseif item == "object" then
          -- required objects the catalog describes need their own required fields
          v = ({ campaign_schedule = SCHEDULE, subsequence_schedule = SCHEDULE, body = '{"html":"<p>x</p>"}',
                 sequences = '[{"steps":[{"type":"email","delay":1,"variants":[{"subject":"s","body":"b"}]}]}]',
                 items = '[{"domain":"example.com"}]' })[p.name]
            or "{}"
        elseif p.format == "uuid" then
          v = UUID
        elseif p.format == "email" then
          v = "a@b.co"
        elseif p.format == "date" then
          v = "2026-01-01"
        elseif p.format == "date-time" then
          v = "2026-01-01T00:00:00Z"
        elseif p.format == "uri" then
          v = "https://example.com/hook"
        else
          v = "x"
        end
        return v
      end
      local env = { INSTANTLY_API_KEY = "dry-run-key-0123456789", INSTANTLY_BASE_URL = "http://127.0.0.1:9" }
      local n = 0
      for _, name in ipairs(index.entities) do
        local e = require("instantly.entities." .. name)
        for _, op in ipairs(e.operations) do
          local argv = { name, op.lua_method }
          for _, pp in ipairs(op.path_params) do argv[#argv + 1] = sample(pp) end
          for _, list in ipairs({ op.query or {}, op.body and op.body.fields or {} }) do
            for _, p in ipairs(list) do
              if p.required then
                argv[#argv + 1] = "--" .. p.name
                argv[#argv + 1] = sample(p)
              end
            end
          end
          argv[#argv + 1] = "--dry-run"
          local r = inproc(argv, env)
          local label = table.concat(argv, " ")
          assert.are.equal(0, r.code, label .. ": " .. r.err)
          local first = r.out:match("^([^\n]*)\n")
          local static = op.path:match("^([^{]*)")
          local want = op.method .. " http://127.0.0.1:9/api/v2" .. static
          assert.are.equal(want, first:sub(1, #want), label)
          assert.falsy(first:find("{", 1, true), first)
          assert.falsy(r.out:find(env.INSTANTLY_API_KEY, 1, true), "key shown")
          n = n + 1
        end
      end
      assert.are.equal(187, n)
    end)

    it("accepts slugs and kebab-case spellings", function()
      assert.are.equal(0, inproc({ "lead-lists", "--help" }).code)
      assert.are.equal(0, inproc({ "leads", "add-many", "--help" }).code)
    end)
  end)

  it("renders every read-only call without parameters, as a table and as JSON", function()
    local env = { INSTANTLY_BASE_URL = srv.url, INSTANTLY_API_KEY = srv.api_key }
    local n = 0
    for _, name in ipairs(index.entities) do
      local e = require("instantly.entities." .. name)
      for _, op in ipairs(e.operations) do
        local needs = #op.path_params > 0 or op.method ~= "GET"
        for _, p in ipairs(op.query or {}) do needs = needs or p.required end
        if not needs and op.response.kind ~= "text" then
          for _, mode in ipairs({ "--table", "--json", "--jsonl" }) do
            local r = inproc({ name, op.lua_method, mode }, env)
            assert.is_true(r.code == 0 or r.code == 1, name .. " " .. op.lua_method .. " " .. mode .. ": " .. r.err)
            assert.falsy(r.err:find("attempt to", 1, true), r.err)
            if r.code == 0 and mode == "--json" then decode(r.out) end
          end
          n = n + 1
        end
      end
    end
    assert.is_true(n > 20, "calls tried: " .. n)
  end)

  describe("usage errors exit 2 with one line on stderr", function()
    local cases = {
      { "leeds list", "unknown entity 'leeds' (did you mean 'leads'?)" },
      { "leads lst", "unknown action 'lst' for leads (did you mean 'list'?)" },
      { "campaigns list --bogus 1", "unknown option '--bogus'" },
      { "campaigns list --limit abc", "--limit: expected an integer, got 'abc'" },
      { "campaigns list --limit 500", "--limit: must be at most 100" },
      { "campaigns list --status 7", "--status: must be one of" },
      { "campaigns create --name x --daily_limit 1.5 --campaign_schedule {}", "--daily_limit: expected an integer" },
      { "campaigns create --name x --campaign_schedule '[1]'", "--campaign_schedule: expected a JSON object" },
      { "campaigns create --name x", "missing --campaign_schedule (required)" },
      { "campaigns get", "missing argument 'id'" },
      { "campaigns get ''", "instantly: campaigns:get: path parameter 'id' (argument #1) must not be empty" },
      { "campaigns get x --chart", "--chart is only for analytics campaign_daily and account_daily" },
      { "campaigns list --timeout soon", "--timeout: expected a number of seconds > 0, got 'soon'" },
      { "campaigns create --name x --campaign_schedule {} --data '{bad'", "--data" },
    }
    for _, c in ipairs(cases) do
      it(c[1], function()
        local r = run(c[1])
        assert.are.equal(2, r.code, r.err)
        assert.are.equal("", r.out)
        assert.truthy(r.err:find(c[2], 1, true), r.err)
        assert.truthy(r.err:match("^instantly: "), r.err)
        assert.truthy(r.err:match("^[^\n]*\n$"), "one line: " .. r.err)
      end)
    end

    it("without a key", function()
      local r = run("campaigns list", { key = false })
      assert.are.equal(2, r.code)
      assert.truthy(r.err:find("no API key", 1, true))
    end)
  end)

  describe("output", function()
    it("is pretty JSON when piped, a page with its cursor", function()
      make_campaign("A")
      make_campaign("B")
      local r = run("campaigns list --limit 1")
      assert.are.equal(0, r.code, r.err)
      local page = decode(r.out)
      assert.are.equal(1, #page.items)
      assert.is_string(page.next_starting_after)
      assert.truthy(r.out:find('\n  "items": [', 1, true), "indented")
    end)

    it("is JSON Lines with --jsonl", function()
      local before = #decode(run("campaigns list --all").out)
      make_campaign("A")
      make_campaign("B")
      local r = run("campaigns list --all --jsonl")
      assert.are.equal(0, r.code, r.err)
      local n = 0
      for line in r.out:gmatch("[^\n]+") do
        n = n + 1
        assert.is_string(decode(line).id)
      end
      assert.are.equal(before + 2, n)
    end)

    it("is an aligned table with --table, cut to COLUMNS", function()
      make_campaign("Zed: a campaign with a rather long name that will not fit in a narrow terminal at all")
      local r = run("campaigns list --all --table", { columns = 60 })
      assert.are.equal(0, r.code, r.err)
      local lines = {}
      for l in r.out:gmatch("[^\n]+") do
        if #lines == 0 or l:find("Zed", 1, true) then lines[#lines + 1] = l end
      end
      assert.are.equal(2, #lines)
      assert.truthy(lines[1]:match("^ID%s+NAME%s+STATUS"), lines[1])
      assert.truthy(lines[2]:find("Draft", 1, true), "status label from the schema")
      assert.truthy(lines[2]:find("…", 1, true), "cut marker")
      for _, l in ipairs(lines) do assert.is_true(utf8.len(l) <= 60, l) end
      -- columns line up: STATUS starts at the same column in both lines
      local col = lines[1]:find("STATUS", 1, true)
      assert.are.equal("Draft", lines[2]:sub(utf8.offset(lines[2], col), utf8.offset(lines[2], col) + 4))
    end)

    it("picks columns with --columns", function()
      make_campaign("Pick")
      local r = run("campaigns list --all --table --columns name,daily_limit")
      assert.are.equal(0, r.code, r.err)
      assert.truthy(r.out:match("^NAME%s+DAILY_LIMIT\n"), r.out)
      assert.truthy(r.out:match("\nPick%s*\n"), r.out)
    end)

    it("shows one record as key/value lines", function()
      local c = make_campaign("Record")
      local r = run("campaigns get " .. c.id .. " --table")
      assert.are.equal(0, r.code, r.err)
      assert.truthy(r.out:match("\nname%s+Record\n"), r.out)
      assert.truthy(r.out:match("^id%s+" .. c.id:gsub("%-", "%%-")), r.out)
    end)

    it("is a table on a terminal", function()
      make_campaign("Tty")
      local r = run("campaigns list", { tty = true })
      assert.are.equal(0, r.code)
      assert.truthy(r.out:find("NAME", 1, true), r.out)
      assert.falsy(r.out:find('"items"', 1, true))
    end)

    it("follows pagination with --all", function()
      local before = #decode(run("campaigns list --all").out)
      for i = 1, 5 do make_campaign("C" .. i) end
      srv:clear_requests()
      local r = run("campaigns list --limit 2 --all --jsonl")
      assert.are.equal(0, r.code, r.err)
      local names = {}
      for line in r.out:gmatch("[^\n]+") do names[#names + 1] = decode(line).name end
      assert.are.equal(before + 5, #names)
      local gets = 0
      for _, req in ipairs(srv:requests()) do
        if req.method == "GET" and req.path:match("^/api/v2/campaigns") then gets = gets + 1 end
      end
      assert.is_true(gets >= 3, "three pages at least, got " .. gets)
      local all = decode(run("campaigns list --limit 2 --all").out)
      assert.are.equal(before + 5, #all)
    end)
  end)

  describe("typed flags", function()
    it("send arrays from repeated flags and comma lists, booleans bare or negated", function()
      local r = run("accounts enable_warmup --emails a@x.io,b@x.io --emails c@x.io --include_all_emails"
        .. " --dry-run")
      assert.are.equal(0, r.code, r.err)
      local body = decode(r.out:match("\n\n(.*)$"))
      assert.are.same({ "a@x.io", "b@x.io", "c@x.io" }, body.emails)
      assert.is_true(body.include_all_emails)
      r = run("campaigns sending_status 6e083e99-f4bd-4ab2-8b9e-e1b0ef24dc9e --no-with_ai_summary --dry-run")
      assert.are.equal(0, r.code, r.err)
      assert.truthy(r.out:find("with_ai_summary=false", 1, true), r.out)
      r = run("campaigns update 6e083e99-f4bd-4ab2-8b9e-e1b0ef24dc9e --stop_on_reply=no --daily_limit null"
        .. " --pl_value 2.5 --dry-run")
      body = decode(r.out:match("\n\n(.*)$"))
      assert.is_false(body.stop_on_reply)
      assert.are.equal(core.null, body.daily_limit)
      assert.are.equal(2.5, body.pl_value)
    end)

    it("take objects as JSON or @file, and whole bodies from --data", function()
      local f = tmpfile(SCHEDULE)
      local r = run("campaigns create --name FromFile --campaign_schedule @" .. f .. " --json")
      assert.are.equal(0, r.code, r.err)
      assert.are.equal("Weekdays", decode(r.out).campaign_schedule.schedules[1].name)
      local d = tmpfile('{"name": "FromData", "daily_limit": 7, "campaign_schedule": ' .. SCHEDULE .. '}')
      r = run("campaigns create --data @" .. d .. " --daily_limit 9 --json")
      assert.are.equal(0, r.code, r.err)
      local c = decode(r.out)
      assert.are.equal("FromData", c.name)
      assert.are.equal(9, c.daily_limit, "flags override --data")
      r = run("campaigns create --data - --json", { stdin = d })
      assert.are.equal(0, r.code, r.err)
      assert.are.equal(7, decode(r.out).daily_limit)
      os.remove(f)
      os.remove(d)
    end)

    it("take arrays of objects as JSON", function()
      local r = run("leads add_many --campaign_id 6e083e99-f4bd-4ab2-8b9e-e1b0ef24dc9e"
        .. " --leads '{\"email\":\"a@x.io\"}' --leads '[{\"email\":\"b@x.io\"}]' --dry-run")
      assert.are.equal(0, r.code, r.err)
      local body = decode(r.out:match("\n\n(.*)$"))
      assert.are.equal(2, #body.leads)
      assert.are.equal("b@x.io", body.leads[2].email)
    end)
  end)

  describe("exit codes", function()
    it("1 for an API error, with the reason on one line", function()
      local r = run("campaigns get 6e083e99-f4bd-4ab2-8b9e-e1b0ef24dc9e")
      assert.are.equal(1, r.code)
      assert.are.equal("", r.out)
      assert.truthy(r.err:match("^instantly: GET /api/v2/campaigns/[%w%-]+: HTTP 404[^\n]*\n$"), r.err)
    end)

    it("1 for a rejected key, and the key is not shown", function()
      local key = "sk-wrong-0123456789abcdef-SECRET"
      local r = run("campaigns list", { key = key })
      assert.are.equal(1, r.code)
      assert.truthy(r.err:find("401", 1, true), r.err)
      assert.falsy((r.err .. r.out):find(key, 1, true))
      assert.falsy((r.err .. r.out):find("SECRET", 1, true))
    end)

    it("3 when the server cannot be reached", function()
      local socket = require("socket")
      local s = assert(socket.bind("127.0.0.1", 0))
      local _, port = s:getsockname()
      s:close()
      local r = run("campaigns list", { base = "http://127.0.0.1:" .. port })
      assert.are.equal(3, r.code, r.err)
      assert.truthy(r.err:find("transport", 1, true), r.err)
    end)
  end)

  describe("safety", function()
    it("--dry-run prints the request, redacts the key and sends nothing", function()
      local key = "sk-live-abcdefghijklmnop-SECRET"
      srv:clear_requests()
      local r = run("campaigns create --name Dry --campaign_schedule " .. q(SCHEDULE) .. " --dry-run", { key = key })
      assert.are.equal(0, r.code, r.err)
      assert.truthy(r.out:match("^POST " .. srv.url:gsub("%p", "%%%0") .. "/api/v2/campaigns\n"), r.out)
      assert.truthy(r.out:lower():find("\nauthorization: bearer ", 1, true), r.out)
      assert.falsy(r.out:find(key, 1, true))
      assert.falsy(r.out:find("SECRET", 1, true))
      assert.are.equal("Dry", decode(r.out:match("\n\n(.*)$")).name)
      local d = run("campaigns delete 6e083e99-f4bd-4ab2-8b9e-e1b0ef24dc9e --dry-run")
      assert.are.equal(0, d.code, d.err)
      assert.truthy(d.out:match("^DELETE "), d.out)
      assert.are.same({}, srv:requests())
    end)

    it("refuses a destructive operation without --yes when not on a terminal", function()
      local c = make_campaign("Keep")
      srv:clear_requests()
      local r = run("campaigns delete " .. c.id)
      assert.are.equal(2, r.code)
      assert.truthy(r.err:find("pass --yes", 1, true), r.err)
      assert.are.same({}, srv:requests())
      r = run("campaigns delete " .. c.id .. " --yes --json")
      assert.are.equal(0, r.code, r.err)
      assert.are.equal(1, #srv:requests())
      assert.are.equal(1, run("campaigns get " .. c.id).code)
    end)

    it("asks on a terminal, and only 'y' goes ahead", function()
      local c = make_campaign("Ask")
      local r = run("campaigns delete " .. c.id, { tty = true, input = "n\n" })
      assert.are.equal(2, r.code)
      assert.truthy(r.out:find("Continue? [y/N]", 1, true), r.out)
      assert.are.equal(0, run("campaigns get " .. c.id).code, "still there")
      r = run("campaigns delete " .. c.id, { tty = true, input = "y\n" })
      assert.are.equal(0, r.code, r.out)
      assert.are.equal(1, run("campaigns get " .. c.id).code, "gone")
    end)

    it("reads the key from --api-key-file", function()
      local f = tmpfile(srv.api_key .. "\n")
      local r = run("campaigns list --api-key-file " .. f, { key = "wrong-key-000000000000" })
      assert.are.equal(0, r.code, r.err)
      os.remove(f)
      r = run("campaigns list --api-key-file /nonexistent/key")
      assert.are.equal(2, r.code)
    end)
  end)

  describe("long work", function()
    local CSV = "examples/data/leads.csv"

    local function first_campaign()
      return decode(run("campaigns create --json --name Import --campaign_schedule " .. q(SCHEDULE)).out)
    end

    it("leads import prints a summary and no progress when stderr is not a terminal", function()
      local c = first_campaign()
      local r = run("leads import " .. c.id .. " " .. CSV .. " --batch_size 50 --json")
      assert.are.equal(0, r.code, r.err)
      assert.are.equal("", r.err)
      local s = decode(r.out)
      assert.are.equal(243, s.rows)
      assert.is_true(s.uploaded > 200)
      assert.is_true(s.batches >= 5)
      local rejects = os.tmpname()
      local t = run("leads import " .. c.id .. " " .. CSV .. " --table --skip_if_in_campaign --rejects " .. rejects)
      assert.are.equal(0, t.code, t.err)
      assert.truthy(t.out:match("^import: 243 rows read"), t.out)
      assert.truthy(t.out:find("row 243 (line 244): missing email", 1, true), t.out)
      local lines = {}
      for l in io.lines(rejects) do lines[#lines + 1] = l end
      os.remove(rejects)
      assert.are.equal(2, #lines, "header and the row without an email")
      assert.truthy(lines[2]:find("NoEmail", 1, true), lines[2])
    end)

    it("leads import draws a progress bar on a terminal", function()
      local c = first_campaign()
      local r = run("leads import " .. c.id .. " " .. CSV .. " --batch_size 50", { tty = true })
      assert.are.equal(0, r.code, r.out)
      assert.truthy(r.out:find("\r\27[Kimport [", 1, true), r.out)
      assert.truthy(r.out:find("100% 243/243 rows", 1, true) or r.out:find("100% 243/243", 1, true), r.out)
      assert.truthy(r.out:find("import: 243 rows read", 1, true), r.out)
    end)

    it("leads import wants a target and a readable file", function()
      assert.are.equal(2, run("leads import " .. CSV).code)
      assert.are.equal(2, run("leads import 6e083e99-f4bd-4ab2-8b9e-e1b0ef24dc9e /nonexistent.csv").code)
    end)

    it("leads export --out writes a CSV, progress only on a terminal", function()
      local lists = decode(run("lead_lists list --all").out)
      local list = lists[1]
      local out = os.tmpname()
      local r = run("leads export --list_id " .. list.id .. " --out " .. out .. " --json")
      assert.are.equal(0, r.code, r.err)
      assert.are.equal("", r.err)
      local s = decode(r.out)
      assert.is_true(s.rows > 0)
      local n = -1
      for _ in io.lines(out) do n = n + 1 end
      assert.are.equal(s.rows, n)
      local t = run("leads export --list_id " .. list.id .. " --out " .. out, { tty = true })
      assert.are.equal(0, t.code, t.out)
      assert.truthy(t.out:find("\r\27[Kexport " .. s.rows .. " leads", 1, true), t.out)
      assert.truthy(t.out:find("wrote " .. s.rows .. " leads to " .. out, 1, true), t.out)
      os.remove(out)
      assert.are.equal(2, run("leads export --app_connection_id x --out " .. out).code)
    end)

    it("--wait follows a background job to its end", function()
      srv:set { job_steps = 1 }
      local r = run("accounts enable_warmup --emails tom@mockmail.co --wait --json")
      assert.are.equal(0, r.code, r.err)
      local job = decode(r.out)
      assert.are.equal("success", job.status)
      assert.are.equal("", r.err, "no progress when stderr is not a terminal")
      srv:set { job_steps = 2 }
      local t = run("accounts disable_warmup --emails tom@mockmail.co --wait", { tty = true })
      assert.are.equal(0, t.code, t.out)
      assert.truthy(t.out:find("\r\27[Kaccounts disable_warmup [", 1, true), t.out)
      assert.truthy(t.out:find("100% (success)", 1, true), t.out)
      assert.are.equal(2, run("campaigns list --wait").code, "only for job-returning actions")
    end)

    it("analytics campaign_daily --chart draws sent/opened/replied per day", function()
      local r = run("analytics campaign_daily --chart", { columns = 70 })
      assert.are.equal(0, r.code, r.err)
      local lines = {}
      for l in r.out:gmatch("[^\n]+") do lines[#lines + 1] = l end
      assert.truthy(lines[1]:find("sent", 1, true) and lines[1]:find("replied", 1, true), lines[1])
      local days = 0
      for _, l in ipairs(lines) do
        if l:match("^%d%d%d%d%-%d%d%-%d%d │") then
          days = days + 1
          assert.truthy(l:match("%d+/%s*%d+/%s*%d+$"), l)
        end
        assert.is_true(utf8.len(l) <= 70, l)
      end
      assert.is_true(days > 0)
      local a = run("analytics account_daily --chart", { columns = 70 })
      assert.are.equal(0, a.code, a.err)
      local seen = {}
      for d in a.out:gmatch("\n(%d%d%d%d%-%d%d%-%d%d) │") do
        assert.is_nil(seen[d], "one bar per day: " .. d)
        seen[d] = true
      end
      assert.truthy(next(seen), a.out)
    end)
  end)

  it("--verbose logs requests on stderr, --workspace sends x-as-workspace", function()
    srv:clear_requests()
    local child = srv:state().sub_workspaces[1].id -- the mock refuses ids that are not sub-workspaces
    local r = run("campaigns list --limit 1 --verbose --workspace " .. child)
    assert.are.equal(0, r.code, r.err)
    assert.truthy(r.err:match("^> GET " .. srv.url:gsub("%p", "%%%0") .. "/api/v2/campaigns%?limit=1\n< 200 "), r.err)
    assert.falsy(r.err:find(srv.api_key, 1, true))
    local log = srv:requests()
    assert.are.equal(1, #log)
    assert.are.equal(child, log[1].headers["x-as-workspace"])
    assert.are.equal(2, run("campaigns list --timeout 0").code)
  end)

  it("says why it waits before a retry", function()
    srv:fault { method = "GET", path = "/campaigns", status = 429, retry_after = 1, count = 1 }
    local r = run("campaigns list --limit 1 --verbose --jsonl")
    assert.are.equal(0, r.code, r.err)
    assert.truthy(r.err:find("\ninstantly: GET /api/v2/campaigns: HTTP 429 Too Many Requests", 1, true), r.err)
    assert.truthy(r.err:find("; retrying in 1.0s\n> GET ", 1, true), r.err)
    assert.truthy(r.err:find("(attempt 2)", 1, true), r.err)
  end)

  it("--mock runs a command against a mock started for it", function()
    local r = run("--mock campaigns create --name M --campaign_schedule " .. q(SCHEDULE) .. " --json",
      { key = false, base = false })
    assert.are.equal(0, r.code, r.err)
    assert.are.equal("M", decode(r.out).name)
  end)
end)
