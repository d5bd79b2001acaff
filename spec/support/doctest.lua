-- doctest.lua - find and run the fenced code blocks of Markdown pages.
-- The convention (HELPERS.md, docs/testing.md): ```lua and ```sh blocks run
-- from the repository root against a mock named by INSTANTLY_BASE_URL /
-- INSTANTLY_API_KEY, with the tree's LUA_PATH/LUA_CPATH and bin/ on PATH;
-- an info string with the word `no-run` skips a block; every other
-- language (```text for output samples) is not run.

local M = {}

local RUNNABLE = { lua = true, sh = true }

--- The fenced blocks of a Markdown text: array of {lang, skip, line, code}.
-- `line` is the line number of the opening fence. An unclosed fence is an
-- error (it would silently swallow the rest of the page).
function M.blocks(text, name)
  local out, cur, n = {}, nil, 0
  for line in (text .. (text:sub(-1) == "\n" and "" or "\n")):gmatch("([^\n]*)\n") do
    n = n + 1
    if cur then
      if line:match("^" .. cur.fence .. "%s*$") then
        cur.code = table.concat(cur.lines, "\n") .. "\n"
        cur.lines, cur.fence = nil, nil
        out[#out + 1] = cur
        cur = nil
      else
        cur.lines[#cur.lines + 1] = line
      end
    else
      local fence, info = line:match("^(```+)%s*(.-)%s*$")
      if fence then
        local words = {}
        for w in info:gmatch("%S+") do words[#words + 1] = w end
        local skip = false
        for i = 2, #words do if words[i] == "no-run" then skip = true end end
        cur = { lang = words[1] or "", skip = skip, line = n, lines = {}, fence = fence }
      end
    end
  end
  if cur then error(("%s:%d: unclosed code fence"):format(name or "?", cur.line), 2) end
  return out
end

--- Should this block run?
function M.runnable(b)
  return RUNNABLE[b.lang] == true and not b.skip
end

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

--- Run one block from `root` with env (a table of NAME = value); returns
-- ok, output (stdout and stderr together). The block runs in a process
-- group of its own: whatever it leaves running when it ends is stopped,
-- and the block fails (a doc must not leave a server behind).
function M.run(b, root, env, timeout)
  local file = os.tmpname()
  local out, pidf = file .. ".out", file .. ".pid"
  local f = assert(io.open(file, "w"))
  f:write(b.code)
  f:close()
  local vars = {}
  for k, v in pairs(env) do vars[#vars + 1] = k .. "=" .. q(v) end
  table.sort(vars)
  local interp = b.lang == "lua" and "lua5.4" or "sh -e"
  local inner = ("echo $$ >%s; cd %s && exec env -i %s timeout --foreground -k 5 %d %s %s"):format(
    q(pidf), q(root), table.concat(vars, " "), timeout or 60, interp, q(file))
  local ok = os.execute(("setsid -w sh -c %s </dev/null >%s 2>&1"):format(q(inner), q(out)))
  local text = ""
  f = io.open(out)
  if f then text = f:read("a") f:close() end
  f = io.open(pidf)
  local pgid = f and f:read("l")
  if f then f:close() end
  if pgid and pgid:match("^%d+$") and os.execute("bash -c 'kill -0 -- -" .. pgid .. "' 2>/dev/null") then
    os.execute("bash -c 'kill -TERM -- -" .. pgid .. "; sleep 0.2; kill -KILL -- -" .. pgid .. "' 2>/dev/null")
    ok = false
    text = text .. "\n(doctest: the block left processes running; they were stopped)\n"
  end
  os.remove(file)
  os.remove(out)
  os.remove(pidf)
  return ok == true, text
end

return M
