--- Routes every catalog operation by method and path template.
--
-- Templates become a segment trie; a literal segment wins over a
-- parameter at the same depth (so /campaigns/analytics is not
-- /campaigns/{id}), with backtracking when the literal branch dead-ends.
-- Segments are percent-decoded after splitting, so an email address with
-- an escaped '@' or '+' in a path parameter arrives intact.
-- @module instantly.mock.router

local util = require "instantly.mock.util"
local unescape = util.unescape

local M = {}

local Router = {}
Router.__index = Router

local function split(path)
  local segs = {}
  -- keep empty segments: the trailing slash of POST /supersearch-enrichment/
  -- is significant
  for seg in (path .. "/"):gmatch("([^/]*)/") do segs[#segs + 1] = seg end
  if segs[1] == "" then table.remove(segs, 1) end
  return segs
end

function M.new(prefix)
  return setmetatable({ prefix = prefix or "/api/v2", root = { lit = {} }, ops = {} }, Router)
end

function Router:add(op, entity)
  local node = self.root
  local names = {}
  for _, seg in ipairs(split(op.path)) do
    local pname = seg:match("^{(.+)}$")
    if pname then
      names[#names + 1] = pname
      node.param = node.param or { lit = {} }
      node = node.param
    else
      node.lit[seg] = node.lit[seg] or { lit = {} }
      node = node.lit[seg]
    end
  end
  node.ops = node.ops or {}
  assert(not node.ops[op.method], "duplicate route " .. op.method .. " " .. op.path)
  node.ops[op.method] = { op = op, entity = entity, names = names }
  self.ops[#self.ops + 1] = op
end

local function walk(node, segs, i, method, vals)
  if i > #segs then
    local r = node.ops and node.ops[method]
    if r then return r end
    return nil, node.ops ~= nil
  end
  local seg = segs[i]
  local lit = node.lit[seg]
  local path_exists = false
  if lit then
    local r, exists = walk(lit, segs, i + 1, method, vals)
    if r then return r end
    path_exists = exists
  end
  if node.param and seg ~= "" then
    vals[#vals + 1] = seg
    local r, exists = walk(node.param, segs, i + 1, method, vals)
    if r then return r end
    vals[#vals] = nil
    path_exists = path_exists or exists
  end
  return nil, path_exists
end

--- Match a raw request path. Returns route, params (decoded) or nil,
-- path_known (true when another method exists for the path).
function Router:match(method, raw_path)
  local prefix = self.prefix
  if raw_path:sub(1, #prefix) ~= prefix then return nil, false end
  local rest = raw_path:sub(#prefix + 1)
  if rest == "" or rest:sub(1, 1) ~= "/" then return nil, false end
  local segs = split(rest)
  local vals = {}
  local r, known = walk(self.root, segs, 1, method, vals)
  if not r then return nil, known end
  local params = {}
  for i, name in ipairs(r.names) do params[name] = unescape(vals[i]) end
  return r, params
end

--- A router over every operation in the entity data.
function M.from_catalog()
  local E = require "instantly.entities"
  local router = M.new(E.path_prefix)
  for _, name in ipairs(E.entities) do
    local e = require("instantly.entities." .. name)
    for _, op in ipairs(e.operations) do router:add(op, e) end
  end
  return router
end

return M
