--- A one-line progress bar for long work (lead import/export, job waits).
-- Draws on a stream (stderr) only when that stream is a terminal; when it
-- is not, every call is a no-op so piped output stays clean.
-- @module instantly.cli.progress

local term = require("instantly.cli.term")

local M = {}
local Bar = {}
Bar.__index = Bar

--- A new bar. Options: `stream` (default io.stderr), `enabled` (default:
-- stream is a terminal), `label`, `width` (columns), `unit` ("leads";
-- "%" when `done` is already a percentage of 100).
function M.new(opts)
  opts = opts or {}
  local stream = opts.stream or io.stderr
  local enabled = opts.enabled
  if enabled == nil then enabled = term.isatty(2) end
  return setmetatable({
    stream = stream,
    enabled = enabled,
    label = opts.label or "",
    unit = opts.unit or "",
    width = opts.width or term.width(),
    last = nil,
    drawn = false,
  }, Bar)
end

local function fmt_count(n)
  if n == nil then return "?" end
  return string.format("%d", math.floor(n))
end

--- The text of the bar for `done` of `total` (total may be nil: unknown).
function Bar:render(done, total, note)
  local head = self.label ~= "" and (self.label .. " ") or ""
  local tail
  if total and total > 0 then
    local frac = math.max(0, math.min(1, done / total))
    if self.unit == "%" then
      tail = string.format(" %3d%%", math.floor(frac * 100 + 0.5))
    else
      tail = string.format(" %3d%% %s/%s%s", math.floor(frac * 100 + 0.5),
        fmt_count(done), fmt_count(total), self.unit ~= "" and (" " .. self.unit) or "")
    end
    if note and note ~= "" then tail = tail .. " " .. note end
    local room = self.width - term.len(head) - term.len(tail) - 3
    room = math.max(10, math.min(room, 50))
    local full = math.floor(frac * room + 0.5)
    return head .. "[" .. string.rep("#", full) .. string.rep(".", room - full) .. "]" .. tail
  end
  tail = string.format("%s%s", fmt_count(done), self.unit ~= "" and (" " .. self.unit) or "")
  if note and note ~= "" then tail = tail .. ", " .. note end
  return head .. tail
end

--- Redraw with new counts; cheap when nothing visible changed.
function Bar:update(done, total, note)
  if not self.enabled then return end
  local line = term.cut(self:render(done or 0, total, note), self.width - 1)
  if line == self.last then return end
  self.last = line
  self.drawn = true
  self.stream:write("\r\27[K", line)
  self.stream:flush()
end

--- End the bar's line (keeps the last state visible).
function Bar:finish(note)
  if not self.enabled or not self.drawn then return end
  if note then self.stream:write("\r\27[K", term.cut(note, self.width - 1)) end
  self.stream:write("\n")
  self.stream:flush()
  self.drawn = false
end

M.Bar = Bar
return M
