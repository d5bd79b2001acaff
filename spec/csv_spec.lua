-- The CSV reader and writer: RFC 4180 cases, chunk boundaries, errors with
-- their line numbers, streaming in bounded memory, and round trips.
local csv = require("instantly.workflows.csv")
local core = require("instantly.core")

local FIX = "spec/fixtures/csv/"

-- A chunk source that hands out `text` `size` bytes at a time.
local function chunks(text, size)
  local pos = 1
  return function()
    if pos > #text then return nil end
    local s = text:sub(pos, pos + size - 1)
    pos = pos + size
    return s
  end
end

local function read_all(r)
  local rows, lines = {}, {}
  while true do
    local row, line = r:read()
    if row == nil then
      assert(line == nil, tostring(line))
      return rows, lines
    end
    rows[#rows + 1], lines[#lines + 1] = row, line
  end
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

describe("csv reader", function()
  local AWKWARD = {
    { Email = "ann@example.com", ["First Name"] = "Ann", last_name = "Lee", COMPANY = "Acme, Inc.",
      Notes = "plain", Score = "1" },
    { Email = "bob@example.com", ["First Name"] = "Bob", last_name = "O'Neil", COMPANY = 'The "Best" Co',
      Notes = "line one\r\nline two", Score = "2" },
    { Email = "cy@example.com", ["First Name"] = "", last_name = "", COMPANY = "Zed",
      Notes = "multi\nline\nnote", Score = "" },
    { Email = "d\u{e9}sir\u{e9}e@example.com", ["First Name"] = "D\u{e9}sir\u{e9}e", last_name = "M\u{fc}ller",
      COMPANY = "\u{6771}\u{4eac}", Notes = "\u{201c}unicode\u{201d}", Score = "3" },
    { Email = "eve@example.com", ["First Name"] = " Eve ", last_name = "Smith", COMPANY = "  padded  ",
      Notes = '"', Score = "4" },
    { Email = "fay@example.com", ["First Name"] = "Fay", last_name = "Ray", COMPANY = "a,b,c",
      Notes = 'ends with quote"', Score = "5" },
  }
  local AWKWARD_LINES = { 2, 3, 5, 9, 10, 11 }

  it("reads the awkward fixture the same at every chunk size", function()
    local text = slurp(FIX .. "awkward.csv")
    for _, size in ipairs({ 1, 2, 3, 5, 7, 13, 64, 65536 }) do
      local r = csv.reader(chunks(text, size), { header = true })
      local rows, lines = read_all(r)
      assert.same(AWKWARD, rows, "chunk size " .. size)
      assert.same(AWKWARD_LINES, lines, "chunk size " .. size)
      assert.same({ "Email", "First Name", "last_name", "COMPANY", "Notes", "Score" }, r.header)
      assert.equal(1, r.header_line)
      assert.equal(6, r.rows_read)
      r:close()
    end
  end)

  it("streams a file handle in chunks of chunk_size", function()
    local f = assert(io.open(FIX .. "awkward.csv", "rb"))
    local reads, biggest = 0, 0
    local handle = { read = function(_, n)
      reads = reads + 1
      biggest = math.max(biggest, n)
      return f:read(n)
    end }
    local r = csv.reader(handle, { header = true, chunk_size = 16 })
    assert.same(AWKWARD, (read_all(r)))
    f:close()
    assert.equal(16, biggest)
    assert.is_true(reads > 10)
  end)

  it("opens a path and iterates with rows()", function()
    local r = assert(csv.open(FIX .. "awkward.csv", { header = true }))
    local emails = {}
    for row, line in r:rows() do emails[#emails + 1] = line .. ":" .. row.Email end
    r:close()
    r:close() -- idempotent
    assert.equal("2:ann@example.com", emails[1])
    assert.equal("11:fay@example.com", emails[6])
  end)

  it("reports a missing file as nil, err", function()
    local r, err = csv.open(FIX .. "no-such-file.csv")
    assert.is_nil(r)
    assert.is_true(csv.is_error(err))
    assert.matches("no%-such%-file%.csv", tostring(err))
  end)

  -- input, expected records (no header); each case also runs byte by byte
  local CASES = {
    { "", {} },
    { "a", { { "a" } } },
    { "a,b\n", { { "a", "b" } } },
    { "a,b\r\n", { { "a", "b" } } },
    { "a,b\r\nc,d", { { "a", "b" }, { "c", "d" } } },
    { "a\rb\r", { { "a" }, { "b" } } },               -- bare CR ends a line too
    { "\r\n\n\r\n", {} },                            -- blank lines only
    { '""', { { "" } } },                            -- one empty quoted field is a record
    { "a,", { { "a", "" } } },
    { ",", { { "", "" } } },
    { ",,\n", { { "", "", "" } } },
    { '"a""b"', { { 'a"b' } } },
    { '""""', { { '"' } } },
    { '"a,b",c', { { "a,b", "c" } } },
    { '"a\r\nb"\r\nc', { { "a\r\nb" }, { "c" } } },
    { '"a\rb"', { { "a\rb" } } },
    { "x\239\187\191y", { { "x\239\187\191y" } } },  -- a BOM after the start is data
    { "\239\187\191", {} },
    { "\239\187\191a", { { "a" } } },
    { "\239\187", { { "\239\187" } } },              -- half a BOM is data
    { "\239b", { { "\239b" } } },
    { " a , b ", { { " a ", " b " } } },
    { '"a"\n"b"\n', { { "a" }, { "b" } } },
  }

  for i, case in ipairs(CASES) do
    it(("parses case %d: %q"):format(i, case[1]), function()
      for _, size in ipairs({ 1, 2, 1000 }) do
        local rows = read_all(csv.reader(chunks(case[1], size)))
        assert.same(case[2], rows, "chunk size " .. size)
      end
    end)
  end

  it("gives the same records or the same error whatever the chunk boundaries", function()
    -- Random texts over the bytes that matter: valid and malformed alike.
    local rng = 987654321
    local function rand(n) rng = (rng * 1103515245 + 12345) % 2147483648; return rng % n + 1 end
    local BYTES = { "a", "b", ",", '"', '"', "\r", "\n", "\r\n", " ", "\239\187\191" }
    for _ = 1, 300 do
      local t = {}
      for k = 1, rand(40) do t[k] = BYTES[rand(#BYTES)] end
      local text = table.concat(t)
      local function run(size, lazy)
        local r = csv.reader(chunks(text, size), { lazy_quotes = lazy })
        local out = {}
        while true do
          local row, err = r:read()
          if row == nil then
            out[#out + 1] = err and { err.reason, err.line } or "end"
            return out
          end
          out[#out + 1] = row
        end
      end
      for _, lazy in ipairs({ false, true }) do
        local whole = run(#text + 1, lazy)
        for _, size in ipairs({ 1, 2, 3 }) do
          assert.same(whole, run(size, lazy), ("%q in chunks of %d"):format(text, size))
        end
      end
    end
  end)

  it("keeps blank lines as records when asked", function()
    assert.same({ { "a" }, { "" }, { "b" } }, (csv.parse("a\n\nb\n", { skip_blank_lines = false })))
  end)

  it("reads other separators", function()
    assert.same({ { "a", "b,c", "d;e" } }, (csv.parse('a;b,c;"d;e"', { sep = ";" })))
    assert.same({ { "a", "b" } }, (csv.parse("a\tb", { sep = "\t" })))
  end)

  it("names the line where an unterminated quote opened", function()
    local r = assert(csv.open(FIX .. "unterminated.csv", { header = true }))
    local row = r:read()
    assert.equal("ok@example.com", row.email)
    local none, err = r:read()
    assert.is_nil(none)
    assert.is_true(csv.is_error(err))
    assert.equal("csv", err.kind)
    assert.equal(3, err.line)
    assert.equal(2, err.row)
    assert.equal("unterminated quoted field", err.reason)
    assert.equal("instantly: csv: " .. FIX .. "unterminated.csv:3: unterminated quoted field", tostring(err))
    assert.equal(FIX .. "unterminated.csv:3: unterminated quoted field", err.message)
    assert.is_true(require("instantly").is_error(err))
    -- the failure is sticky: nothing after it is made up
    local again, err2 = r:read()
    assert.is_nil(again)
    assert.equal(err, err2)
    r:close()
  end)

  it("rejects a stray quote with its line, or keeps it with lazy_quotes", function()
    local rows, err = csv.parse(slurp(FIX .. "stray_quote.csv"), { header = true, name = "stray" })
    assert.is_nil(rows)
    assert.equal(3, err.line)
    assert.matches("^instantly: csv: stray:3: quote inside an unquoted field", tostring(err))
    rows = assert(csv.parse(slurp(FIX .. "stray_quote.csv"), { header = true, lazy_quotes = true }))
    assert.equal('5" screens', rows[2].company)
  end)

  it("rejects text after a closing quote", function()
    local rows, err = csv.parse('a,b\n"x"y,z\n')
    assert.is_nil(rows)
    assert.equal(2, err.line)
    assert.equal("unexpected character after a closing quote", err.reason)
    assert.same({ { 'x"y"z' } }, (csv.parse('"x"y"z"', { lazy_quotes = true })))
  end)

  it("delivers the records before an error found in the same chunk", function()
    for _, size in ipairs({ 1, 4, 1000 }) do
      local r = csv.reader(chunks('a\nb\n"x"y\nc\n', size))
      assert.same({ "a" }, (r:read()))
      assert.same({ "b" }, (r:read()))
      local none, err = r:read()
      assert.is_nil(none)
      assert.equal(3, err.line)
      assert.equal(3, err.row)
      assert.equal(err, select(2, r:read()))
    end
  end)

  it("raises from rows() on malformed input", function()
    local r = csv.reader(chunks('a\n"b', 100))
    local it = r:rows()
    assert.same({ "a" }, (it()))
    assert.has_error(function() it() end)
  end)

  it("treats rows longer than the header as recoverable errors", function()
    local r = csv.reader(chunks("a,b\n1,2\n3,4,5\n6,7,,\n8\n", 100), { header = true })
    assert.same({ a = "1", b = "2" }, (r:read()))
    local none, err = r:read()
    assert.is_nil(none)
    assert.is_true(err.recoverable)
    assert.equal(3, err.line)
    assert.equal(2, err.row)
    assert.same({ "3", "4", "5" }, err.fields)
    assert.equal("3 fields, but the header names 2 columns", err.reason)
    assert.same({ a = "6", b = "7" }, (r:read()))   -- empty extra fields are fine
    assert.same({ a = "8" }, (r:read()))            -- short rows leave columns out
    assert.is_nil(r:read())
  end)

  it("gives repeated header names distinct keys and accepts a header list", function()
    assert.same({ { n = "1", n_2 = "2", n_3 = "3" } }, (csv.parse("n,n,n\n1,2,3", { header = true })))
    assert.same({ { x = "1", y = "2" } }, (csv.parse("1,2", { header = { "x", "y" } })))
  end)

  it("bounds the size of one record", function()
    local rows, err = csv.parse('a,"' .. ("x"):rep(100) .. '"\n', { max_record_bytes = 50 })
    assert.is_nil(rows)
    assert.equal("record is larger than max_record_bytes", err.reason)
    assert.equal(1, err.line)
  end)

  -- Issue 11 item 5: 32 MB of commas was one record of 33 million
  -- empty fields (+768 MB). Each field now costs 24 bytes of the limit.
  it("counts fields, not only their bytes, against max_record_bytes", function()
    local rows, err = csv.parse((","):rep(99) .. "\n", { max_record_bytes = 100 * 24 - 1 })
    assert.is_nil(rows)
    assert.equal("record is larger than max_record_bytes", err.reason)
    rows = assert(csv.parse((","):rep(99) .. "\n", { max_record_bytes = 100 * 24 }))
    assert.equal(100, #rows[1])
    rows = assert(csv.parse('"' .. ("x"):rep(76) .. '"\n', { max_record_bytes = 100 }))
    assert.equal(76, #rows[1][1])
    assert.is_nil((csv.parse('"' .. ("x"):rep(77) .. '"\n', { max_record_bytes = 100 })))
  end)

  it("refuses 32 MB of commas at the default limit, early and with its line", function()
    local p = core.csv_parser()
    local chunk = (","):rep(65536)
    local fed, recs, _, msg, line = 0
    repeat
      recs, _, msg, line = p:feed(chunk)
      fed = fed + #chunk
    until msg or recs == nil or fed >= 32 * 2 ^ 20
    if recs == nil then msg, line = _, msg end -- nil, message, line
    assert.equal("record is larger than max_record_bytes", msg)
    assert.equal(1, line)
    -- 64 MiB at 24 bytes a field: refused within the first 2.8 million
    assert.is_true(fed <= 64 * 2 ^ 20 / 24 + 65536, ("fed %d bytes before refusing"):format(fed))
    p:close()
  end)

  it("streams in bounded memory", function()
    -- 200,000 generated rows (~11 MB) never exist as one string or table.
    local n, total = 0, 0
    local function gen()
      if n >= 200000 then return nil end
      local t = {}
      for i = 1, 1000 do
        n = n + 1
        t[i] = ('lead%d@example.com,"Name, %d",Company %d\n'):format(n, n, n)
      end
      local s = table.concat(t)
      total = total + #s
      return s
    end
    collectgarbage()
    local base = collectgarbage("count")
    local r = csv.reader(gen)
    local rows, peak = 0, 0
    for row in r:rows() do
      rows = rows + 1
      if rows % 20000 == 0 then
        collectgarbage()
        peak = math.max(peak, collectgarbage("count") - base)
      end
      if rows == 123456 then assert.same({ "lead123456@example.com", "Name, 123456", "Company 123456" }, row) end
    end
    assert.equal(200000, rows)
    assert.is_true(total > 10e6)
    assert.is_true(peak < 2048, ("live memory grew to %.0f KiB"):format(peak))
  end)

  it("finishes a read when its source closes the reader, then is closed", function()
    -- As a finalizer may close a reader in the middle of a read, at a
    -- known point: the read returns its row, and the reader closes after.
    local r
    local parts = { "a,b", "\nc,d\n" }
    r = csv.reader(function()
      local s = table.remove(parts, 1)
      if s == "\nc,d\n" then r:close() end
      return s
    end)
    assert.same({ "a", "b" }, (r:read()))
    assert.has_error(function() r:read() end, "attempt to use a closed CSV reader")
    assert.matches("closed", tostring(r._parser))
  end)

  it("raises on misuse", function()
    assert.has_error(function() csv.reader(42) end,
      "bad argument 'src' to 'csv.reader' (file handle or function expected, got number)")
    assert.has_error(function() csv.reader(chunks("", 1), { heder = true }) end,
      "unknown option 'heder' to 'csv.reader'")
    assert.has_error(function() csv.reader(chunks("", 1), { sep = ",," }) end,
      "bad argument #2 to 'csv.reader' (option 'sep' must be one byte other than CR or LF)")
    assert.has_error(function() csv.reader(chunks("", 1), { chunk_size = 0 }) end,
      "bad option 'chunk_size' to 'csv.reader' (positive integer expected)")
    assert.has_error(function() csv.open(FIX .. "awkward.csv", { sep = "\n" }) end,
      "bad argument #2 to 'csv.open' (option 'sep' must be one byte other than CR or LF)")
    assert.has_error(function() csv.parse(nil) end,
      "bad argument 'text' to 'csv.parse' (string expected, got nil)")
    local r = csv.reader(chunks("", 1))
    r:close()
    assert.has_error(function() r:read() end, "attempt to use a closed CSV reader")
  end)
end)

describe("core.csv_parser options", function()
  local rows = {
    { { sep = ",," }, "option 'sep' must be one byte other than CR or LF" },
    { { quote = "\n" }, "option 'quote' must be one byte other than CR or LF" },
    { { sep = 1 }, "option 'sep' must be a string, got number" },
    { { sep = ";", quote = ";" }, "options 'sep' and 'quote' must be different bytes" },
    { { lazy_quotes = "yes" }, "option 'lazy_quotes' must be a boolean, got string" },
    { { skip_blank_lines = 0 }, "option 'skip_blank_lines' must be a boolean, got number" },
    { { max_record_bytes = 0 }, "option 'max_record_bytes' must be a positive integer" },
    { { max_record_bytes = 1.5 }, "option 'max_record_bytes' must be a positive integer" },
    { { max_record_bytes = "9" }, "option 'max_record_bytes' must be a positive integer" },
    { { heder = true }, "unknown option 'heder'" },
    { { true }, "unknown option key (a number)" },
  }
  for i, row in ipairs(rows) do
    it("refuses case " .. i .. ": " .. row[2], function()
      assert.has_error(function() core.csv_parser(row[1]) end,
        "bad argument #1 to 'csv_parser' (" .. row[2] .. ")")
    end)
  end

  it("refuses a non-table", function()
    assert.has_error(function() core.csv_parser(5) end,
      "bad argument #1 to 'csv_parser' (table expected, got number)")
  end)
end)

describe("csv writer", function()
  it("quotes only what needs quoting", function()
    local ROWS = {
      { { "a", "b" }, "a,b" },
      { { "a,b", "c" }, '"a,b",c' },
      { { 'say "hi"' }, '"say ""hi"""' },
      { { "two\nlines", "cr\rhere" }, '"two\nlines","cr\rhere"' },
      { { " lead", "trail\t", "in side" }, '" lead","trail\t",in side' },
      { { 1, 2.5, true, false }, "1,2.5,true,false" },
      { { "" }, "" },
      { { "\u{e9}t\u{e9}" }, "\u{e9}t\u{e9}" },
    }
    for _, case in ipairs(ROWS) do
      assert.equal(case[2] .. "\r\n", csv.format({ case[1] }))
    end
    assert.equal("a,,c", core.csv_format({ "a", nil, "c" }, 3))
    assert.equal("a;b,c", core.csv_format({ "a", "b,c" }, 2, ";"))
  end)

  it("writes keyed rows under a header, nil and null as empty", function()
    local out = csv.format({
      { email = "a@x.io", first_name = "Ann", score = 3 },
      { email = "b@x.io", score = core.null },
      {},
    }, { header = { "email", "first_name", "score" }, eol = "\n" })
    assert.equal("email,first_name,score\na@x.io,Ann,3\nb@x.io,,\n,,\n", out)
  end)

  it("round-trips awkward values through a file", function()
    local rng = 12345
    local function rand(n) rng = (rng * 1103515245 + 12345) % 2147483648; return rng % n + 1 end
    local ALPHABET = { "a", "Z", " ", ",", ";", '"', "\n", "\r", "\r\n", "\t", "\u{e9}", "\u{1f600}", "x", "0" }
    local rows = {}
    for i = 1, 500 do
      local row = {}
      for j = 1, rand(6) do
        local t = {}
        for k = 1, rand(8) - 1 do t[k] = ALPHABET[rand(#ALPHABET)] end
        row[j] = table.concat(t)
      end
      if #row == 1 and row[1] == "" then row[1] = "x" end -- a lone empty field is a blank line
      rows[i] = row
    end
    for _, sep in ipairs({ ",", ";", "\t" }) do
      local path = os.tmpname()
      local w = assert(csv.writer(path, { sep = sep, bom = true }))
      for _, row in ipairs(rows) do assert(w:write(row)) end
      assert.equal(500, w.rows_written)
      assert(w:close())
      local r = assert(csv.open(path, { sep = sep, chunk_size = 97 }))
      local back = read_all(r)
      r:close()
      os.remove(path)
      assert.same(rows, back)
    end
  end)

  it("writes to any object with write()", function()
    local parts = {}
    local sink = { write = function(_, ...) for _, s in ipairs({ ... }) do parts[#parts + 1] = s end return true end }
    local w = csv.writer(sink, { header = { "a" } })
    w:write({ "1" }):write({ "2" })
    assert(w:close())
    assert.equal("a\r\n1\r\n2\r\n", table.concat(parts))
  end)

  it("writes a row whole when a field's __tostring writes another row", function()
    -- The same re-entry as a finalizer writing in the middle of a write,
    -- but at a known point: the inner write used to refill the fields
    -- the outer one was formatting, then clear them.
    local out = {}
    local w = csv.writer({ write = function(_, line) out[#out + 1] = line return true end }, { eol = "\n" })
    local nested = setmetatable({}, { __tostring = function()
      w:write({ "i1", "i2", "i3", "i4", "i5" })
      return "mid"
    end })
    assert.equal(w, w:write({ 1, 2, nested, 4, 5, 6 }))
    assert.same({ "i1,i2,i3,i4,i5", "1,2,mid,4,5,6" }, out)
    assert.equal(w, w:write({ "a", "b" }))
    assert.equal("a,b", out[3])
  end)

  it("raises on misuse", function()
    local sink = { write = function() return true end }
    assert.has_error(function() csv.writer(sink, { eol = "\r" }) end,
      "bad option 'eol' to 'csv.writer' (\"\\r\\n\" or \"\\n\" expected)")
    assert.has_error(function() csv.writer(sink, { header = {} }) end,
      "bad option 'header' to 'csv.writer' (non-empty array of names expected)")
    assert.has_error(function() csv.writer(sink, { sep = '"' }) end,
      "bad option 'sep' to 'csv.writer' (one byte other than a quote, CR or LF expected)")
    assert.has_error(function() csv.writer(12) end,
      "bad argument 'dst' to 'csv.writer' (path or handle expected, got number)")
    local w = csv.writer(sink)
    assert.has_error(function() w:write({ "a", {} }) end, "bad field 2 to 'write' (table cannot be a CSV field)")
    assert.has_error(function() w:write("a,b") end, "bad argument 'row' to 'write' (table expected, got string)")
    w:close()
    assert.has_error(function() w:write({ "a" }) end, "attempt to use a closed CSV writer")
    local none, err = csv.writer("/nonexistent-dir/x.csv")
    assert.is_nil(none)
    assert.is_true(csv.is_error(err))
  end)
end)

-- Finalizers run at any allocation, so one may close or use a parser,
-- reader or writer in the middle of its own call. Each scenario runs in a
-- fresh lua5.4 (a small heap: whether a finalizer runs inside the call
-- does not depend on busted's heap) and doubles its work until one has;
-- the script's last line is "during <n> <counts...>".
describe("csv and finalizers in the middle of a call", function()
  local out -- of the last run, for the assertions' messages
  local function fresh(script)
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(script)
    f:close()
    local p = assert(io.popen(("LUA_PATH='%s' LUA_CPATH='%s' lua5.4 %s 2>&1")
      :format(package.path:gsub("'", ""), package.cpath:gsub("'", ""), path)))
    out = p:read("a")
    local ok = p:close()
    os.remove(path)
    assert(ok, out)
    local counts = {}
    for n in assert(out:match("during ([%d ]+)\n$"), out):gmatch("%d+") do counts[#counts + 1] = tonumber(n) end
    assert.is_true(counts[1] > 0, "no finalizer ran inside a call: the spec proves nothing\n" .. out)
    return table.unpack(counts)
  end

  -- Lua text: rows(n) -> the CSV text of n records of NF fields, and
  -- want(i, j), the j-th field of record i.
  local ROWS = [[
    local NF = 20
    local function want(i, j) return ("r%d_f%d_%s"):format(i, j, ("x"):rep(j)) end
    local function rows(n)
      local lines = {}
      for i = 1, n do
        local t = {}
        for j = 1, NF do t[j] = want(i, j) end
        lines[i] = table.concat(t, ",")
      end
      return table.concat(lines, "\n") .. "\n"
    end
    local function bad_records(recs, n)
      local bad = #recs == n and 0 or 1
      for i = 1, #recs do
        if #recs[i] ~= NF or recs[i][1] ~= want(i, 1) or recs[i][NF] ~= want(i, NF) then bad = bad + 1 end
      end
      return bad
    end
    local function junk(k, fn)
      for _ = 1, k do setmetatable({}, { __gc = fn }) end
    end
    local function numrow(i) -- numbers: each field a new string when written
      local t = {}
      for j = 1, NF do t[j] = i * 1000 + j + 0.5 end
      return t
    end
  ]]

  it("a parser closed during its feed returns that feed's records whole, then is closed", function()
    local during, bad, closed = fresh(ROWS .. [[
      local core = require "instantly.core"
      local during, bad, closed, busy = 0, 0, 0, false
      for round = 0, 7 do
        local n = 200 << round
        local text = rows(n)
        local p = core.csv_parser()
        collectgarbage("incremental", 10, 400)
        junk(50, function() if busy then during = during + 1 end p:close() end)
        busy = true
        local recs = p:feed(text)
        busy = false
        collectgarbage("incremental", 200, 100)
        bad = bad + bad_records(recs, n)
        local ok, err = pcall(p.feed, p, "a,b\n")
        if not ok and err:find("attempt to use a closed CSV parser", 1, true)
          and tostring(p) == "instantly.CsvParser (closed)" then closed = closed + 1 end
        if during > 0 then break end
      end
      collectgarbage()
      io.write("during ", during, " ", bad, " ", closed, "\n")
    ]])
    assert.is_true(during > 0, out)
    assert.equal(0, bad, out)
    assert.equal(1, closed, out)
  end)

  it("a finalizer's feed or finish on a parser in the middle of a feed raises, and changes nothing", function()
    local during, bad, refused, after = fresh(ROWS .. [[
      local core = require "instantly.core"
      local during, bad, refused, after, busy = 0, 0, 0, 0, false
      for round = 0, 7 do
        local n = 200 << round
        local text = rows(n)
        local p = core.csv_parser()
        collectgarbage("incremental", 10, 400)
        local k = 0
        junk(50, function()
          if not busy then return end
          during = during + 1
          k = k + 1
          local ok, err
          if k % 2 == 0 then ok, err = pcall(p.feed, p, "q,w\nbb,cc,dd") else ok, err = pcall(p.finish, p) end
          if not ok and err:find("attempt to use a busy CSV parser", 1, true) then refused = refused + 1 end
        end)
        busy = true
        local recs = p:feed(text)
        busy = false
        collectgarbage("incremental", 200, 100)
        bad = bad + bad_records(recs, n)
        -- and the parser goes on from where the outer feed left it
        local more = p:feed("tail,end\n")
        if #more == 1 and more[1][1] == "tail" and #more[1] == 2 and p:line() == n + 2 then after = after + 1 end
        p:close()
        if during > 0 then break end
      end
      collectgarbage()
      io.write("during ", during, " ", bad, " ", refused, " ", after, "\n")
    ]])
    assert.equal(0, bad, out)
    assert.equal(during, refused, out)
    assert.equal(1, after, out)
  end)

  it("a reader closed during a read returns that read's row, then is closed with its file", function()
    -- Records of about 400 bytes read 64 bytes at a time: most reads
    -- take several chunks, so a close in the middle of one used to cut
    -- the read short (a read error), or free the file under its own read.
    local _, bad, closed = fresh(ROWS .. [[
      local csv = require "instantly.workflows.csv"
      local path = os.tmpname()
      local f = assert(io.open(path, "wb"))
      f:write(rows(400))
      f:close()
      local during, bad, closed, busy = 0, 0, 0, false
      for round = 1, 60 do
        local r = assert(csv.open(path, { chunk_size = 64 }))
        local file = r._file
        collectgarbage("incremental", round % 3 == 0 and 0 or 10, 100 + round)
        junk(20 + round % 7, function() if busy then during = during + 1 end r:close() end)
        local i = 0
        while true do
          busy = true
          local ok, row, line = pcall(r.read, r)
          busy = false
          if not ok then
            if row:find("attempt to use a closed CSV reader", 1, true) and io.type(file) == "closed file" then
              closed = closed + 1
            else
              bad = bad + 1
            end
            break
          end
          if row == nil then bad = bad + (line and 1 or 0) break end
          i = i + 1
          if #row ~= NF or row[1] ~= want(i, 1) or row[NF] ~= want(i, NF) then bad = bad + 1 end
        end
        r:close()
        collectgarbage("incremental", 200, 100)
      end
      os.remove(path)
      collectgarbage()
      io.write("during ", during, " ", bad, " ", closed, "\n")
    ]])
    assert.equal(0, bad, out)
    assert.is_true(closed > 0, out)
  end)

  it("a finalizer's read in the middle of a read raises; no row is lost or repeated", function()
    local during, bad, refused = fresh(ROWS .. [[
      local csv = require "instantly.workflows.csv"
      local during, bad, refused, busy = 0, 0, 0, false
      for round = 0, 5 do
        local n = 100 << round
        local text, pos = rows(n), 1
        local r = csv.reader(function()
          local s = text:sub(pos, pos + 99)
          pos = pos + 100
          if s ~= "" then return s end
        end)
        collectgarbage("incremental", 10, 400)
        junk(200, function()
          if not busy then return end
          during = during + 1
          local ok, err = pcall(r.read, r)
          if not ok and err:find("attempt to use a busy CSV reader", 1, true) then refused = refused + 1 end
        end)
        local i = 0
        while true do
          busy = true
          local row = r:read()
          busy = false
          if not row then break end
          i = i + 1
          if #row ~= NF or row[1] ~= want(i, 1) or row[NF] ~= want(i, NF) then bad = bad + 1 end
        end
        if i ~= n then bad = bad + 1 end
        collectgarbage("incremental", 200, 100)
        if during > 0 then break end
      end
      collectgarbage()
      io.write("during ", during, " ", bad, " ", refused, "\n")
    ]])
    assert.equal(0, bad, out)
    assert.equal(during, refused, out)
  end)

  it("a finalizer's write in the middle of a write leaves the outer row whole", function()
    local during, bad, inner = fresh(ROWS .. [[
      local csv = require "instantly.workflows.csv"
      local out = {}
      local w = csv.writer({ write = function(_, line) out[#out + 1] = line return true end }, { eol = "\n" })
      local during, busy = 0, false
      local n = 0
      for round = 1, 400 do
        collectgarbage("incremental", round % 3 == 0 and 0 or 10, 100 + round)
        junk(5, function()
          if not busy then return end
          during = during + 1
          local t = {}
          for j = 1, NF do t[j] = "i" end
          w:write(t)
        end)
        local t = numrow(round)
        busy = true
        w:write(t)
        busy = false
        n = round
        if during > 20 then break end
      end
      collectgarbage("incremental", 200, 100)
      local bad, inner, i = 0, 0, 0
      for _, line in ipairs(out) do
        if line:sub(1, 2) == "i," then
          inner = inner + 1
        else
          i = i + 1
          if line ~= table.concat(numrow(i), ",") then bad = bad + 1 end
        end
      end
      if i ~= n then bad = bad + 1 end
      io.write("during ", during, " ", bad, " ", inner, "\n")
    ]])
    assert.equal(0, bad, out)
    assert.equal(during, inner, out)
  end)

  it("a writer closed during a write writes that row, then closes its file", function()
    local _, bad, closed = fresh(ROWS .. [[
      local csv = require "instantly.workflows.csv"
      local path = os.tmpname()
      local during, bad, closed, busy = 0, 0, 0, false
      for round = 1, 400 do
        local w = assert(csv.writer(path, { eol = "\n" }))
        local file = w._f
        local in_write = false
        collectgarbage("incremental", round % 3 == 0 and 0 or 10, 100 + round)
        junk(5, function()
          if busy then during, in_write = during + 1, true end
          w:close()
        end)
        local n = 0
        for i = 1, 50 do
          local t = numrow(i)
          busy = true
          local ok, res = pcall(w.write, w, t)
          busy = false
          if not ok then
            if not res:find("attempt to use a closed CSV writer", 1, true) then bad = bad + 1 print(res) end
            break
          end
          if res ~= w then bad = bad + 1 print(res) break end
          n = i
        end
        -- closed in the middle of a write: that write closed the file
        if in_write then
          if io.type(file) == "closed file" then closed = closed + 1 else bad = bad + 1 end
        end
        w:close()
        local lines = 0
        for line in io.lines(path) do
          lines = lines + 1
          if not line:match("^" .. lines .. "001%.5,") then bad = bad + 1 end
        end
        if lines ~= n then bad = bad + 1 print("round", round, "lines", lines, "rows", n) end
        collectgarbage("incremental", 200, 100)
        if during > 20 then break end
      end
      os.remove(path)
      io.write("during ", during, " ", bad, " ", closed, "\n")
    ]])
    assert.equal(0, bad, out)
    assert.is_true(closed > 0, out)
  end)
end)
