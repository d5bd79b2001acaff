--- RFC 4180 CSV reading and writing, streaming and in constant memory.
--
-- The byte-level work (quotes, embedded separators and line breaks, CRLF,
-- a UTF-8 byte order mark, records split across reads) is done by the C
-- parser in `instantly.core`; this module adds sources and sinks (paths,
-- file handles, chunk functions), header rows and error values.
--
-- Reading errors follow the SDK rule: a malformed file is an expected
-- failure, so `reader:read()` returns `nil, err` where `err` is a table
-- (an `instantly.Error` of kind `"csv"`: `reason`, `line`, `row`, `source`)
-- printing as `"instantly: csv: leads.csv:7: unterminated quoted field"`. Misuse (a bad option) raises.
--
-- @module instantly.csv
-- @usage
-- local csv = require("instantly.workflows.csv")
-- local r = assert(csv.open("leads.csv", {header = true}))
-- for row, line in r:rows() do print(line, row.Email) end
-- r:close()
--
-- local w = assert(csv.writer("out.csv", {header = {"email", "first_name"}}))
-- w:write{email = "a@b.co", first_name = "Ann"}
-- w:close()

local core = require("instantly.core")
local Err = require("instantly.request.error")

local type, pairs, ipairs, setmetatable, tostring, error, pcall, select =
  type, pairs, ipairs, setmetatable, tostring, error, pcall, select
local io_open, concat, math_type = io.open, table.concat, math.type
local csv_parser, csv_format = core.csv_parser, core.csv_format

local M = {}

local DEFAULT_CHUNK = 64 * 1024

-- -------------------------------------------------------------- errors

-- CSV errors are instantly.Error values of kind "csv". `message` names
-- the place first ("leads.csv:7: unterminated quoted field"), so the
-- error prints as "instantly: csv: leads.csv:7: ..."; `reason` is the
-- bare text, `source`, `line` and `row` the place.
local function csv_error(source, reason, line, extra)
  local where = source or "csv"
  if line then where = where .. ":" .. line end
  local e = Err.new { kind = "csv", source = source, reason = reason, line = line,
                      message = where .. ": " .. tostring(reason) }
  if extra then for k, v in pairs(extra) do e[k] = v end end
  return e
end

--- Make a CSV error value (for layers that find problems in CSV input).
-- @tparam string|nil source file name shown in the message
-- @tparam string reason
-- @tparam[opt] integer line
-- @treturn instantly.Error of kind "csv"
function M.new_error(source, reason, line)
  return csv_error(source, reason, line)
end

--- Is `v` a CSV error (an `instantly.Error` of kind "csv")?
-- @param v any value
-- @treturn boolean
function M.is_error(v)
  return Err.is(v) and v.kind == "csv"
end

---------------------------------------------------------------- options

local function check_opts(fname, opts, known)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(("bad argument 'opts' to '%s' (table expected, got %s)"):format(fname, type(opts)), 3)
  end
  for k in pairs(opts) do
    if not known[k] then
      error(("unknown option '%s' to '%s'"):format(tostring(k), fname), 3)
    end
  end
  return opts
end

local READER_OPTS = {
  header = true, sep = true, lazy_quotes = true, skip_blank_lines = true,
  max_record_bytes = true, chunk_size = true, name = true,
}

local WRITER_OPTS = { header = true, sep = true, eol = true, bom = true, write_header = true }

-- null-like values (core.null from JSON) are written as empty fields.
local null = core.null

---------------------------------------------------------------- reader

local Reader = {}
Reader.__index = Reader
Reader.__name = "instantly.CsvReader"

-- Turns a source into a function returning the next chunk or nil.
local function chunk_source(src, size)
  local t = type(src)
  if t == "function" then
    return src
  end
  if (t == "userdata" or t == "table") and src.read then
    return function()
      local s, err = src:read(size)
      if s == nil and err then error(err, 0) end
      return s
    end
  end
  return nil
end

--- Make a reader over a source.
-- @param src a file handle (anything with `:read(n)`), or a function
--   returning successive chunks (strings) and nil at the end. For a path,
--   use @{open}.
-- @tparam[opt] table opts
--   `header` (boolean, default false: the first record names the columns
--   and rows come back keyed by those names; or an array of names to use
--   for a file without a header row),
--   `sep` (one byte, default ","), `lazy_quotes` (accept stray quotes as
--   data, default false), `skip_blank_lines` (default true),
--   `max_record_bytes` (default 64 MiB), `chunk_size` (bytes per read,
--   default 64 KiB), `name` (shown in errors, default "csv").
-- @return a reader
function M.reader(src, opts)
  opts = check_opts("csv.reader", opts, READER_OPTS)
  local size = opts.chunk_size or DEFAULT_CHUNK
  if math_type(size) ~= "integer" or size < 1 then
    error("bad option 'chunk_size' to 'csv.reader' (positive integer expected)", 2)
  end
  local next_chunk = chunk_source(src, size)
  if not next_chunk then
    error(("bad argument 'src' to 'csv.reader' (file handle or function expected, got %s)"):format(type(src)), 2)
  end
  local header = opts.header
  if header ~= nil and type(header) ~= "boolean" and type(header) ~= "table" then
    error("bad option 'header' to 'csv.reader' (boolean or array of names expected)", 2)
  end
  if opts.name ~= nil and type(opts.name) ~= "string" then
    error("bad option 'name' to 'csv.reader' (string expected)", 2)
  end
  local parser_opts = {
    sep = opts.sep, lazy_quotes = opts.lazy_quotes,
    skip_blank_lines = opts.skip_blank_lines, max_record_bytes = opts.max_record_bytes,
  }
  local ok, parser = pcall(csv_parser, parser_opts)
  if not ok then -- the core's options are its argument #1, here they are #2
    error((parser:gsub("^bad argument #1 to '[%w_.]*csv_parser'", "bad argument #2 to 'csv.reader'")), 2)
  end
  local self = setmetatable({
    _next_chunk = next_chunk,
    _parser = parser,
    _recs = {}, _lines = {}, _pos = 1,
    _eof = false, _busy = false,
    _want_header = header == true,
    source = opts.name or "csv",
    header = type(header) == "table" and header or nil,
    rows_read = 0,     -- data records returned so far (the header excluded)
  }, Reader)
  if self.header then self:_index_header() end
  return self
end

--- Open a CSV file for reading.
-- @tparam string path
-- @tparam[opt] table opts as for @{reader}; `name` defaults to the path
-- @return a reader, or nil and an error when the file cannot be opened
function M.open(path, opts)
  if type(path) ~= "string" then
    error(("bad argument 'path' to 'csv.open' (string expected, got %s)"):format(type(path)), 2)
  end
  local f, err = io_open(path, "rb")
  if not f then return nil, csv_error(path, err) end
  opts = check_opts("csv.open", opts, READER_OPTS)
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.name = o.name or path
  local ok, r = pcall(M.reader, f, o)
  if not ok then
    f:close()
    error((tostring(r):gsub("'csv%.reader'", "'csv.open'")), 2)
  end
  r._file = f
  return r
end

-- Row keys: the header names, a repeated name getting "_2", "_3", ...
function Reader:_index_header()
  local keys, seen = {}, {}
  for i, name in ipairs(self.header) do
    if type(name) ~= "string" then
      error(("bad header name %d (string expected, got %s)"):format(i, type(name)), 3)
    end
    local key, k = name, 1
    while seen[key] do
      k = k + 1
      key = name .. "_" .. k
    end
    seen[key] = true
    keys[i] = key
  end
  self._names = keys
end

-- Refills the record queue; false at the end of input, or nil, err. A
-- syntax error found in a chunk is held until the records before it have
-- been read.
function Reader:_fill()
  while true do
    if self._pending then
      local p = self._pending
      self._pending = nil
      self._failed = csv_error(self.source, p[1], p[2], { row = self.rows_read + 1 })
      return nil, self._failed
    end
    if self._eof then return false end
    local ok, chunk = pcall(self._next_chunk)
    if not ok then
      self._failed = csv_error(self.source, "read error: " .. tostring(chunk))
      return nil, self._failed
    end
    local recs, lines, emsg, eline
    if chunk == nil then
      self._eof = true
      recs, lines, emsg, eline = self._parser:finish()
    else
      if type(chunk) ~= "string" then
        error(("CSV source returned %s, string or nil expected"):format(type(chunk)), 3)
      end
      recs, lines, emsg, eline = self._parser:feed(chunk)
    end
    if not recs then
      self._failed = csv_error(self.source, lines, emsg, { row = self.rows_read + 1 })
      return nil, self._failed
    end
    if emsg then
      self._pending = { emsg, eline }
      self._eof = true
    end
    if #recs > 0 then
      self._recs, self._lines, self._pos = recs, lines, 1
      return true
    end
  end
end

-- The next raw record (array of strings) and its line, or false at the end.
function Reader:_next_record()
  if self._failed then return nil, self._failed end
  local pos = self._pos
  if pos > #self._recs then
    local more, err = self:_fill()
    if not more then return more, err end
    pos = 1
  end
  self._pos = pos + 1
  return self._recs[pos], self._lines[pos]
end

--- Read the next row.
-- Without a header a row is an array of strings; with one it is a table
-- keyed by column name (columns beyond the row's end are absent; a name
-- repeated in the header gets "_2", "_3"... as its key). A row
-- with more non-empty fields than the header has names is reported as
-- `nil, err` with `err.recoverable = true`: reading may go on.
-- @return row, line (the line the record starts on); nil at the end;
--   or nil, err
function Reader:read()
  if self._closed then error("attempt to use a closed CSV reader", 2) end
  if self._busy then error("attempt to use a busy CSV reader (a read is running)", 2) end
  self._busy = true
  local ok, row, line = pcall(self._read, self)
  self._busy = false
  if self._closed then self:_release() end
  if not ok then error(row, 0) end
  return row, line
end

-- The work of read. The source's reads, the parser and the rows allocate,
-- so a finalizer may run in the middle and use this reader: the reader is
-- busy meanwhile (read). A read from the finalizer raises instead of
-- taking records out of turn, and a close only marks the reader closed;
-- read closes the parser and the file once this is over (a file closed in
-- the middle of its own read is freed under that read). Running under
-- pcall, an error cannot leave the reader busy for good.
function Reader:_read()
  local rec, line = self:_next_record()
  if not rec then return nil, line end
  if self._want_header then
    self._want_header = false
    local names = {}
    for i, v in ipairs(rec) do names[i] = v:match("^%s*(.-)%s*$") end
    self.header = names
    self:_index_header()
    self.header_line = line
    return self:_read()
  end
  self.rows_read = self.rows_read + 1
  local names = self._names
  if not names then return rec, line end
  local n = #names
  local row = {}
  for i = 1, #rec do
    local name = names[i]
    if name then
      row[name] = rec[i]
    elseif rec[i] ~= "" then
      return nil, csv_error(self.source, ("%d fields, but the header names %d columns"):format(#rec, n), line,
        { row = self.rows_read, recoverable = true, fields = rec })
    end
  end
  return row, line
end

--- Was the reader made with the `header` option (a header row, or names)?
-- @treturn boolean
function Reader:has_header()
  return self._want_header or self.header ~= nil
end

--- Iterate over the rows: `for row, line in reader:rows() do ... end`.
-- Unlike @{Reader:read} the iterator raises on malformed input, as
-- `io.lines` does on a read error.
function Reader:rows()
  return function()
    local row, line = self:read()
    if row == nil and line ~= nil then error(line, 2) end
    return row, line
  end
end

-- Closes the parser and the file @{open} opened.
function Reader:_release()
  self._parser:close()
  if self._file then
    self._file:close()
    self._file = nil
  end
end

--- Close the reader (and its file when @{open} opened it). Idempotent.
-- A close from a finalizer that runs in the middle of a @{Reader:read}
-- waits until that read is over: the read returns its row, and the reader
-- is closed after it.
function Reader:close()
  if self._closed then return end
  self._closed = true
  if not self._busy then self:_release() end
end
Reader.__close = Reader.close
Reader.__gc = Reader.close

--- Parse a whole CSV string.
-- @tparam string text
-- @tparam[opt] table opts as for @{reader} (without chunk_size)
-- @return array of rows, or nil, err
function M.parse(text, opts)
  if type(text) ~= "string" then
    error(("bad argument 'text' to 'csv.parse' (string expected, got %s)"):format(type(text)), 2)
  end
  opts = check_opts("csv.parse", opts, READER_OPTS)
  local done = false
  local r = M.reader(function()
    if done then return nil end
    done = true
    return text
  end, opts)
  local rows = {}
  while true do
    local row, err = r:read()
    if row == nil then
      r:close()
      if err then return nil, err end
      return rows, r.header
    end
    rows[#rows + 1] = row
  end
end

---------------------------------------------------------------- writer

local Writer = {}
Writer.__index = Writer
Writer.__name = "instantly.CsvWriter"

--- Make a writer.
-- @param dst a path (the file is created or truncated) or anything with
--   `:write(s)` (a file handle, or a table collecting strings).
-- @tparam[opt] table opts
--   `header` (array of column names: written as the first line unless
--   `write_header = false`, and rows may then be tables keyed by name),
--   `sep` (default ","), `eol` (default "\r\n" as RFC 4180 says; "\n" is
--   fine), `bom` (write a UTF-8 BOM first so spreadsheet programs detect
--   the encoding; default false).
-- @return a writer, or nil and an error when a path cannot be opened
function M.writer(dst, opts)
  opts = check_opts("csv.writer", opts, WRITER_OPTS)
  local sep = opts.sep or ","
  if type(sep) ~= "string" or #sep ~= 1 or sep == '"' or sep == "\r" or sep == "\n" then
    error("bad option 'sep' to 'csv.writer' (one byte other than a quote, CR or LF expected)", 2)
  end
  local eol = opts.eol or "\r\n"
  if eol ~= "\r\n" and eol ~= "\n" then
    error("bad option 'eol' to 'csv.writer' (\"\\r\\n\" or \"\\n\" expected)", 2)
  end
  local header = opts.header
  if header ~= nil then
    if type(header) ~= "table" or #header == 0 then
      error("bad option 'header' to 'csv.writer' (non-empty array of names expected)", 2)
    end
    for i, name in ipairs(header) do
      if type(name) ~= "string" then
        error(("bad option 'header' to 'csv.writer' (name %d is a %s)"):format(i, type(name)), 2)
      end
    end
  end
  local f, owned
  if type(dst) == "string" then
    local err
    f, err = io_open(dst, "wb")
    if not f then return nil, csv_error(dst, err) end
    owned = true
  elseif (type(dst) == "userdata" or type(dst) == "table") and dst.write then
    f = dst
  else
    error(("bad argument 'dst' to 'csv.writer' (path or handle expected, got %s)"):format(type(dst)), 2)
  end
  local self = setmetatable({
    _f = f, _owned = owned, _sep = sep, _eol = eol, _header = header,
    _scratch = {}, rows_written = 0, _busy = false,
  }, Writer)
  if opts.bom then f:write("\239\187\191") end
  if header and opts.write_header ~= false then
    f:write(csv_format(header, #header, sep), eol)
  end
  return self
end

-- The work of write, under pcall (see write): gathers the fields of `row`
-- into `fields`, formats them, hands the scratch table back cleared and
-- writes the line. Returns what the file's write returns.
local function emit(self, row, fields)
  local header, n = self._header
  if header and row[1] == nil then
    n = #header
    for i = 1, n do
      local v = row[header[i]]
      if v == null then v = nil end
      fields[i] = v
    end
  else
    n = #row
    for i = 1, n do
      local v = row[i]
      if v == null then v = nil end
      fields[i] = v
    end
  end
  local line = csv_format(fields, n, self._sep)
  for i = 1, n do fields[i] = nil end
  self._scratch = fields
  return self._f:write(line, self._eol)
end

--- Write one row: an array of values, or (with a header) a table keyed by
-- column name. nil and JSON null are empty fields; numbers and booleans are
-- written as text. Fields are quoted only when they need it.
-- @return the writer (so calls chain), or nil, err on a write error
function Writer:write(row)
  -- (type first: calling a C function may run the collector, and so a
  -- finalizer that closes this writer; after the closed check nothing
  -- calls or allocates until the writer is busy)
  local rt = type(row)
  if self._closed then error("attempt to use a closed CSV writer", 2) end
  if rt ~= "table" then
    error(("bad argument 'row' to 'write' (table expected, got %s)"):format(rt), 2)
  end
  -- Busy from here on: a close from a finalizer waits until the row is
  -- written (see close), and the one pcall makes sure no error leaves the
  -- writer busy. A write from a finalizer is busy inside this
  -- one: it leaves the close to the outermost write. The scratch table is
  -- taken while in use, so that such a write gets a table of its own
  -- instead of refilling, then clearing, the fields being formatted (after
  -- an error it is dropped with what it holds).
  local outer = self._busy
  self._busy = true
  local fields = self._scratch or {}
  self._scratch = nil
  local ok, w, err = pcall(emit, self, row, fields)
  self._busy = outer
  local cok, cerr = true, nil
  if self._closed and not outer and not self._released then cok, cerr = self:_release() end
  if not ok then
    -- csv_format's refusal of a field (raised at emit's line), as this
    -- method's, at the caller
    local field = type(w) == "string" and w:match("^.-csv%.lua:%d+: (bad field %d+ to 'csv_format' .*)$")
    if field then error((field:gsub("'csv_format'", "'write'", 1)), 2) end
    error(w, 0)
  end
  if not w then return nil, csv_error(nil, tostring(err)) end
  self.rows_written = self.rows_written + 1
  if not cok then return nil, cerr end
  return self
end

--- Flush buffered output to the file.
function Writer:flush()
  if self._f.flush then return self._f:flush() end
  return true
end

-- Closes the file when @{writer} opened it: true, or nil, err.
function Writer:_release()
  self._released = true
  if self._owned then
    local ok, err = self._f:close()
    if not ok then return nil, csv_error(nil, tostring(err)) end
  end
  return true
end

--- Close the writer, closing the file only when @{writer} opened it.
-- Idempotent. A close from a finalizer that runs in the middle of a
-- @{Writer:write} waits until that row is written (and a failure of the
-- final flush is then that write's nil, err).
-- @return true, or nil, err when the final flush fails
function Writer:close()
  if self._closed then return true end
  self._closed = true
  if self._busy then return true end
  return self:_release()
end
Writer.__close = Writer.close
Writer.__gc = function(w) if w._owned and not w._released then w._closed, w._released = true, true; w._f:close() end end

--- Format rows as one CSV string.
-- @tparam table rows array of rows (arrays, or keyed tables with `header`)
-- @tparam[opt] table opts as for @{writer}
-- @treturn string
function M.format(rows, opts)
  if type(rows) ~= "table" then
    error(("bad argument 'rows' to 'csv.format' (table expected, got %s)"):format(type(rows)), 2)
  end
  local parts = {}
  local sink = { write = function(_, ...)
    for i = 1, select("#", ...) do parts[#parts + 1] = select(i, ...) end
    return true
  end }
  local w = M.writer(sink, opts)
  for _, row in ipairs(rows) do w:write(row) end
  return concat(parts)
end

M.Reader, M.Writer = Reader, Writer
return M
