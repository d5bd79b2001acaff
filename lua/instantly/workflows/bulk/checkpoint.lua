--- Import checkpoints: a JSON file recording every accepted batch (its
-- number, a fingerprint and the API's counts), written atomically after
-- each one, so a later run skips what was accepted.
--
-- When the input no longer matches the file, the caller's policy decides:
-- `"refuse"` returns `nil, err` (`err.kind == "checkpoint"`); `"restart"`
-- forgets what was recorded from the first batch that differs (a file of
-- another import is forgotten whole) and sends from there.
-- @module instantly.workflows.bulk.checkpoint

local core = require "instantly.core"
local Err = require "instantly.request.error"

local type, pairs, tostring, tonumber = type, pairs, tostring, tonumber
local fmt = string.format
local io_open, os_rename, os_remove = io.open, os.rename, os.remove
local json_encode, json_decode = core.json_encode, core.json_decode

local M = {}

--- The policies for a changed input.
M.POLICIES = { refuse = true, restart = true }

--- A checkpoint error: the message names the file once, after the kind
-- (`instantly: checkpoint: leads.ckpt: ...`).
-- @tparam string path
-- @tparam string msg
-- @treturn instantly.Error
function M.error(path, msg)
  return Err.new { kind = "checkpoint", path = path, message = path .. ": " .. msg }
end

--- Read a checkpoint file: the state table, false when there is none, or
-- nil, err when it cannot be read.
function M.load(path)
  local f = io_open(path, "rb")
  if not f then return false end
  local text = f:read("a")
  f:close()
  local st, msg = json_decode(text)
  if type(st) ~= "table" or st.version ~= 1 or type(st.batches) ~= "table" then
    return nil, M.error(path, "unreadable (" .. tostring(msg or "not an import checkpoint") .. ")")
  end
  return st
end

--- Write a checkpoint atomically: a temporary file beside it, flushed and
-- closed, then renamed over the old one.
function M.save(path, st)
  local text, msg = json_encode(st, { sort_keys = true })
  if not text then return nil, M.error(path, "cannot encode: " .. tostring(msg)) end
  local tmp = path .. ".tmp"
  local f, err = io_open(tmp, "wb")
  if not f then return nil, M.error(path, tostring(err)) end
  local ok, werr = f:write(text, "\n")
  if ok then ok, werr = f:flush() end
  f:close()
  if not ok then
    os_remove(tmp)
    return nil, M.error(path, tostring(werr))
  end
  local rok, rerr = os_rename(tmp, path)
  if not rok then
    os_remove(tmp)
    return nil, M.error(path, tostring(rerr))
  end
  return true
end

--- Open the checkpoint of an import: the recorded state, a fresh one, or
-- nil, err.
-- @tparam string path
-- @tparam string target `"campaign_id:<id>"` or `"list_id:<id>"`
-- @tparam integer batch_size
-- @tparam string policy `"refuse"` or `"restart"`
-- @treturn table state
-- @treturn boolean|nil true when a checkpoint of another import was dropped
function M.open(path, target, batch_size, policy)
  local st, err = M.load(path)
  if st == nil then return nil, err end
  local fresh = { version = 1, target = target, batch_size = batch_size, batches = {}, complete = false }
  if not st then return fresh end
  if st.target == target and st.batch_size == batch_size then return st end
  if policy == "restart" then return fresh, true end
  return nil, M.error(path, fmt("it belongs to another import (%s, batch_size %s); pass on_change = " ..
    "\"restart\" to start over, or delete it", tostring(st.target), tostring(st.batch_size)))
end

--- Forget batch `from` and every later one (the input changed there).
-- Their counts move to `st.carried`: what the API reported for them is
-- still part of the import's totals.
-- @tparam table st
-- @tparam integer from
-- @treturn table the counts of the forgotten batches, summed
function M.forget_from(st, from)
  local sum = {}
  for k, b in pairs(st.batches) do
    local n = tonumber(k)
    if n and n >= from then
      st.batches[k] = nil
      for name, v in pairs(type(b.c) == "table" and b.c or {}) do sum[name] = (sum[name] or 0) + v end
    end
  end
  st.carried = st.carried or {}
  for name, v in pairs(sum) do st.carried[name] = (st.carried[name] or 0) + v end
  st.complete = false
  return sum
end

return M
