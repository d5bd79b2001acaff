-- The CLI details a new user hit (issue 10), and the CLI's shape (issue
-- 15): import --dry-run checks the whole file and sends nothing, negative
-- numbers and enum names as flag values, an interrupted import says how
-- to resume, page hints only when there is a next page and shell-quoted,
-- unknown --columns refused, no doubled prefixes, the mock loaded only for
-- --mock, and functions short enough to read.

local mock = require("instantly.mock")
local core = require("instantly.core")
local cli = require("instantly.cli")

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function tmpfile(text)
  local p = os.tmpname()
  local f = assert(io.open(p, "wb"))
  f:write(text)
  f:close()
  return p
end

local srv

local function env()
  return "env -u INSTANTLY_DEBUG LUA_PATH=" .. q(package.path) .. " LUA_CPATH=" .. q(package.cpath)
    .. " INSTANTLY_API_KEY=" .. q(srv.api_key) .. " INSTANTLY_BASE_URL=" .. q(srv.url) .. " COLUMNS=100"
end

-- Run `instantly <args>`; {code, out, err}.
local function run(args)
  local errf = os.tmpname()
  local p = assert(io.popen(env() .. " lua5.4 bin/instantly " .. args .. " 2>" .. errf
    .. " </dev/null; echo \"exit=$?\""))
  local out = p:read("a")
  p:close()
  local code = tonumber(out:match("exit=(%d+)\n$"))
  out = out:gsub("exit=%d+\n$", "")
  local err = slurp(errf) or ""
  os.remove(errf)
  return { code = code, out = out, err = err }
end

local function decode(s)
  local v, err = core.json_decode(s)
  assert(v ~= nil, "not JSON: " .. tostring(err) .. "\n" .. s)
  return v
end

local CSV = "examples/data/leads.csv"
local BAD_CSV_TEXT = 'email,first_name\nann@acme.example,Ann\n"bob@acme.example,Bob\n'

describe("instantly CLI, first contact", function()
  local campaign

  setup(function()
    srv = assert(mock.start { rate_limits = false })
    campaign = decode(run("campaigns list --limit 1 --jsonl").out)
  end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() srv:reset() end)

  describe("leads import --dry-run", function()
    it("reads and checks every row, prints the summary with reasons, sends nothing", function()
      local since = #srv:requests()
      local rejects = os.tmpname()
      os.remove(rejects)
      local r = run("leads import " .. campaign.id .. " " .. CSV .. " --dry-run --table --rejects " .. rejects)
      assert.are.equal(0, r.code, r.err)
      assert.truthy(r.out:find("dry run: 243 rows, 242 valid, 1 rejected, 1 batch; nothing sent", 1, true), r.out)
      assert.truthy(r.out:find("row 243 (line 244): missing email", 1, true), r.out)
      assert.falsy(r.out:find("POST", 1, true), "no request is printed")
      assert.falsy(r.out:find("@", 1, true), "no lead (request body) is printed")
      assert.is_nil(slurp(rejects), "no rejects file is written")
      assert.are.equal(since, #srv:requests(), "nothing reached the server")
    end)

    it("gives the summary as JSON too", function()
      local s = decode(run("leads import " .. campaign.id .. " " .. CSV .. " --dry-run --json").out)
      assert.is_true(s.dry_run)
      assert.are.same({ 243, 242, 1, 0 }, { s.rows, s.valid, s.invalid_count, s.uploaded })
    end)

    it("fails on a malformed CSV like the real run", function()
      local bad = tmpfile(BAD_CSV_TEXT)
      local dry = run("leads import " .. campaign.id .. " " .. bad .. " --dry-run")
      local real = run("leads import " .. campaign.id .. " " .. bad)
      os.remove(bad)
      assert.are.equal(1, dry.code, dry.err)
      assert.are.equal(real.code, dry.code)
      assert.are.equal(real.err, dry.err)
      assert.truthy(dry.err:find(":3: unterminated quoted field", 1, true), dry.err)
      assert.are.equal("", dry.out)
    end)

    it("takes the file alone with --list_id", function()
      local r = run("leads import --list_id 00000000-0000-4000-8000-000000000001 " .. CSV .. " --dry-run --table")
      assert.are.equal(0, r.code, r.err)
      assert.truthy(r.out:find("243 rows", 1, true), r.out)
    end)
  end)

  describe("flag values", function()
    it("a negative number is a value, not an unknown option", function()
      local r = run("campaigns update " .. campaign.id .. " --daily_limit -5 --dry-run")
      assert.are.equal(0, r.code, r.err)
      assert.truthy(r.out:find('{"daily_limit":-5}', 1, true), r.out)
      local lim = run("campaigns list --limit -5")
      assert.are.equal(2, lim.code)
      assert.truthy(lim.err:find("--limit", 1, true), lim.err)
      assert.falsy(lim.err:find("unknown option", 1, true), lim.err)
    end)

    it("an enum value may be given by the name the catalog gives it", function()
      local by_number = decode(run("campaigns list --status 1 --json").out)
      local by_name = decode(run("campaigns list --status active --json").out)
      local mixed = decode(run("campaigns list --status Active --json").out)
      assert.is_true(#by_number.items > 0)
      assert.are.same(by_number.items, by_name.items)
      assert.are.same(by_number.items, mixed.items)
      local r = run("campaigns list --status bogus")
      assert.are.equal(2, r.code)
      assert.truthy(r.err:find("by name: account_suspended", 1, true), r.err)
      assert.truthy(r.err:find("running_subsequences", 1, true), r.err)
    end)

    it("an unknown --columns name is an error", function()
      local r = run("campaigns list --table --columns id,nosuch")
      assert.are.equal(2, r.code)
      assert.truthy(r.err:find("--columns: unknown column 'nosuch'", 1, true), r.err)
      assert.are.equal("", r.out)
      local ok = run("campaigns list --table --columns id,name")
      assert.are.equal(0, ok.code, ok.err)
    end)
  end)

  describe("page hints", function()
    it("say 'more' only when a next page has items", function()
      local all = decode(run("campaigns list --all --json").out)
      local n = #all
      assert.is_true(n >= 2)
      local last = run("campaigns list --table --limit " .. n)
      assert.are.equal(0, last.code, last.err)
      assert.falsy(last.err:find("more:", 1, true), last.err)
      local mid = run("campaigns list --table --limit " .. (n - 1))
      assert.truthy(mid.err:find("more: --starting_after ", 1, true), mid.err)
    end)

    it("shell-quote a cursor that the shell would split", function()
      local r = run("accounts list --table --limit 1")
      local cursor = r.err:match("more: %-%-starting_after (.-) or %-%-all")
      assert.truthy(cursor, r.err)
      assert.truthy(cursor:find("&", 1, true), "account cursors hold an &: " .. cursor)
      assert.are.equal("'", cursor:sub(1, 1))
      -- the hint, pasted back, is the next page
      local next_page = run("accounts list --json --limit 1 --starting_after " .. cursor)
      assert.are.equal(0, next_page.code, next_page.err)
      local first = decode(run("accounts list --json --limit 1").out)
      assert.are_not.equal(first.items[1].email, decode(next_page.out).items[1].email)
    end)
  end)

  describe("errors", function()
    it("name a file or a kind once", function()
      assert.are.equal("instantly: a.csv: No such file or directory",
        cli.error_line("instantly: a.csv: a.csv: No such file or directory"))
      assert.are.equal("instantly: checkpoint x.ckpt: unreadable",
        cli.error_line("instantly: checkpoint: checkpoint x.ckpt: unreadable"))
      assert.are.equal("instantly: GET /x: HTTP 404", cli.error_line("instantly: GET /x: HTTP 404"))
      local r = run("leads import " .. campaign.id .. " nofile.csv")
      assert.are.equal(2, r.code)
      assert.are.equal("instantly: cannot read nofile.csv: No such file or directory\n", r.err)
      local ck = tmpfile("garbage")
      local c = run("leads import " .. campaign.id .. " " .. CSV .. " --checkpoint " .. ck)
      os.remove(ck)
      assert.are.equal(1, c.code)
      assert.truthy(c.err:find("^instantly: checkpoint: " .. ck:gsub("%p", "%%%0") .. ": unreadable"), c.err)
    end)
  end)

  describe("an interrupted import", function()
    -- SIGINT while a batch is in flight: every batch is held 0.5 s by the
    -- mock, the signal is sent once the first batch has been answered.
    local function interrupted(extra)
      srv:fault { path = "/leads/add", delay = 0.5, count = 1000 }
      local p = assert(io.popen("sh -c 'echo $$; exec " .. env():gsub("'", "'\\''")
        .. " lua5.4 bin/instantly leads import " .. campaign.id .. " " .. CSV
        .. " --batch_size 10 --concurrency 1 --table " .. extra .. "' 2>&1"))
      local pid = p:read("l")
      -- wait (bounded) until the mock has answered one batch
      for _ = 1, 100 do
        local n = 0
        for _, r in ipairs(srv:requests()) do if r.path:find("/leads/add", 1, true) then n = n + 1 end end
        if n >= 2 then break end
        os.execute("sleep 0.1")
      end
      os.execute("kill -INT " .. pid)
      local out = p:read("a")
      local _, _, code = p:close()
      return code, out
    end

    it("without a checkpoint, says to run again with --skip_if_in_campaign", function()
      local code, out = interrupted("")
      assert.are.equal(130, code, out)
      assert.truthy(out:find("import stopped after %d+ rows; to resume"), out)
      assert.truthy(out:find("instantly leads import " .. campaign.id .. " " .. CSV
        .. " --batch_size 10 --concurrency 1 --table --skip_if_in_campaign", 1, true), out)
    end)

    it("with a checkpoint, says to run the same command", function()
      local ck = os.tmpname()
      os.remove(ck)
      local code, out = interrupted("--checkpoint " .. ck)
      os.remove(ck)
      assert.are.equal(130, code, out)
      assert.truthy(out:find("run the same command again", 1, true), out)
      assert.truthy(out:find("--checkpoint " .. ck, 1, true), out)
    end)
  end)
end)

describe("instantly CLI, shape", function()
  it("loads the mock (and LuaSocket) only for --mock", function()
    local probe = [[
      local cli = require("instantly.cli")
      local sink = { write = function(self) return self end, flush = function() end }
      cli.main(%s, { stdout = sink, stderr = sink }, function() return nil end)
      io.write(tostring(package.loaded["instantly.mock"] ~= nil), " ", tostring(package.loaded.socket ~= nil))
    ]]
    local function loaded(argv)
      local p = assert(io.popen("LUA_PATH=" .. q(package.path) .. " LUA_CPATH=" .. q(package.cpath)
        .. " lua5.4 -e " .. q(probe:format(argv))))
      local out = p:read("a")
      p:close()
      return out
    end
    assert.are.equal("false false", loaded('{ "--dry-run", "campaigns", "list" }'))
    assert.are.equal("false false", loaded('{ "campaigns", "--help" }'))
    assert.are.equal("true true", loaded('{ "--mock", "workspaces", "get" }'))
  end)

  it("keeps every function of lua/instantly/cli/ to about a screen (65 lines)", function()
    local p = assert(io.popen("ls lua/instantly/cli/*.lua"))
    for path in p:lines() do
      local n, start, name = 0, nil, nil
      for line in io.lines(path) do
        n = n + 1
        if line:match("^local function ") or line:match("^function ") then
          start, name = n, line
        elseif line:match("^end") and start then
          assert(n - start + 1 <= 65, ("%s:%d: %s is %d lines"):format(path, start, name, n - start + 1))
          start = nil
        end
      end
    end
    p:close()
  end)
end)
