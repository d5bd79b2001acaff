--- What the CLI needs to know about its terminal.
-- Whether a standard stream is a terminal and how wide it is, asked of the
-- shell (`test -t`, `stty size`) so the CLI needs no C helper of its own.
-- Answers are cached per process.
-- @module instantly.cli.term

local M = {}

local tty_cache = {}

--- Is file descriptor `fd` (0, 1 or 2) a terminal?
function M.isatty(fd)
  if tty_cache[fd] == nil then
    local ok = os.execute("test -t " .. math.tointeger(fd))
    tty_cache[fd] = ok == true
  end
  return tty_cache[fd]
end

--- Forget cached answers (tests).
function M.reset()
  tty_cache = {}
end

local function popen_number(cmd, pattern)
  local p = io.popen("{ " .. cmd .. "; } 2>/dev/null")
  if not p then return nil end
  local out = p:read("a") or ""
  p:close()
  return tonumber(out:match(pattern))
end

--- Width of the terminal in columns: COLUMNS, then `stty size`, then
-- `tput cols`, then 80.
function M.width(getenv)
  getenv = getenv or os.getenv
  local w = tonumber(getenv("COLUMNS") or "")
  if w and w >= 20 then return math.floor(w) end
  w = popen_number("stty size </dev/tty", "^%s*%d+%s+(%d+)")
  if w and w >= 20 then return w end
  w = popen_number("tput cols", "(%d+)")
  if w and w >= 20 then return w end
  return 80
end

--- Display width of a string (UTF-8 code points; bytes if invalid).
function M.len(s)
  return utf8.len(s) or #s
end

--- Cut `s` to at most `n` columns, marking the cut with "…".
function M.cut(s, n)
  if M.len(s) <= n then return s end
  if n <= 0 then return "" end
  if n == 1 then return "…" end
  if not utf8.len(s) then return s:sub(1, n - 1) .. "…" end
  local stop = utf8.offset(s, n)
  return s:sub(1, stop - 1) .. "…"
end

return M
