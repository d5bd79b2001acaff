--- In-memory workspace state: one ordered collection per entity, a clock
-- that never repeats a timestamp, and schema-driven defaults so every
-- object the mock returns carries its entity's fields.
-- @module instantly.mock.state

local json = require "instantly.mock.json"
local util = require "instantly.mock.util"

local null, array = json.null, json.array
local iso = util.iso

local M = {}

-- Collections whose key is not `id`, and how their cursors look.
M.KEYS = {
  accounts = "email",
  email_verification = "email",
  dfy_email_account_orders = "domain",
  supersearch_enrichment = "resource_id",
  oauth = "session_id",
  account_campaign_mappings = "campaign_id",
}
M.CURSORS = { accounts = "account", lead_lists = "timestamp", lead_labels = "timestamp" }

-- Optional fields whose absence means something ("not set", "not asked
-- for"): no default value is made up. Accounts carry tags only when a list
-- asks with include_tags.
M.UNSET = { lt_interest_status = true, enrichment_status = true, esg_code = true, status_message = true,
  tags = true }

local Coll = {}
Coll.__index = Coll

local function new_coll(store, name)
  return setmetatable({
    store = store, name = name, key = M.KEYS[name] or "id",
    cursor_kind = M.CURSORS[name] or "key",
    items = {},       -- in creation order
    by_key = {},
    seq_of = setmetatable({}, { __mode = "k" }),
    time_of = setmetatable({}, { __mode = "k" }),
    cursor_seq = {},  -- cursor string -> seq, kept after deletes
    indexes = {},     -- find_by's: name -> { seq = last read, map = value -> objects }
  }, Coll)
end

function Coll:cursor_of(obj)
  local kind = self.cursor_kind
  if kind == "timestamp" then return obj.timestamp_created end
  if kind == "account" then return obj.timestamp_created .. "&" .. obj.email end
  return obj[self.key]
end

--- Add an object (already filled); `ms` is its creation time.
function Coll:insert(obj, ms)
  local store = self.store
  store.seq = store.seq + 1
  local seq = store.seq
  self.seq_of[obj] = seq
  self.time_of[obj] = ms or store.last_ms
  self.items[#self.items + 1] = obj
  self.by_key[obj[self.key]] = obj
  local c = self:cursor_of(obj)
  if c then self.cursor_seq[c] = seq end
  return obj
end

function Coll:get(key)
  if key == nil then return nil end
  return self.by_key[key]
end

-- Index of the first item whose seq is greater than `seq`.
function Coll:_after(seq)
  local items, seq_of = self.items, self.seq_of
  local lo, hi = 1, #items + 1
  while lo < hi do
    local mid = (lo + hi) // 2
    if seq_of[items[mid]] <= seq then lo = mid + 1 else hi = mid end
  end
  return lo
end

function Coll:remove(key)
  local obj = self.by_key[key]
  if not obj then return nil end
  local i = self:_after(self.seq_of[obj] - 1)
  if self.items[i] == obj then table.remove(self.items, i) end
  self.by_key[key] = nil
  return obj
end

--- Remove every object for which pred(obj) is true; returns them.
function Coll:remove_if(pred)
  local keep, gone = {}, {}
  for _, o in ipairs(self.items) do
    if pred(o) then
      gone[#gone + 1] = o
      self.by_key[o[self.key]] = nil
    else
      keep[#keep + 1] = o
    end
  end
  self.items = keep
  return gone
end

--- The objects for which key_of(obj) == value, in creation order, or nil,
-- through the index `name` (made on first use; one key_of per name). A
-- scan of every object per lookup made an import of n leads in batches
-- of 1,000 visit n * n / 2000 of them. Each call first reads only the
-- objects added since the last (items are in creation order, whatever
-- added them); an object removed since, or whose key_of no longer gives
-- `value`, is dropped when it is found (until then the index keeps it
-- alive), so a field changed in place is never a false hit. One changed
-- in place *to* `value` would be missed: whoever does that calls
-- drop_index(name).
function Coll:find_by(name, key_of, value)
  local ix = self.indexes[name]
  if not ix then
    ix = { seq = 0, map = {} }
    self.indexes[name] = ix
  end
  local items, map, seq_of = self.items, ix.map, self.seq_of
  local n = #items
  if n > 0 and seq_of[items[n]] > ix.seq then
    for i = self:_after(ix.seq), n do
      local o = items[i]
      local k = key_of(o)
      if k ~= nil then
        local t = map[k]
        if t then t[#t + 1] = o else map[k] = { o } end
      end
    end
    ix.seq = seq_of[items[n]]
  end
  local t = map[value]
  if not t then return nil end
  local by_key, key, j = self.by_key, self.key, 0
  for i = 1, #t do
    local o = t[i]
    if by_key[o[key]] == o and key_of(o) == value then
      j = j + 1
      t[j] = o
    end
  end
  for i = #t, j + 1, -1 do t[i] = nil end
  if j == 0 then
    map[value] = nil
    return nil
  end
  return t
end

--- Forgets the index `name`; the next find_by builds it again.
function Coll:drop_index(name)
  self.indexes[name] = nil
end

function Coll:count(pred)
  if not pred then return #self.items end
  local n = 0
  for _, o in ipairs(self.items) do if pred(o) then n = n + 1 end end
  return n
end

function Coll:each()
  return ipairs(self.items)
end

--- Resolve a cursor to the index a page starts at: the first item after
-- it, or with `desc` the first item before it. nil when the cursor is not
-- one of ours.
function Coll:start_of(cursor, desc)
  local items = self.items
  if cursor == nil or cursor == "" then return desc and #items or 1 end
  local seq = self.cursor_seq[cursor]
  if seq then
    if desc then return self:_after(seq - 1) - 1 end
    return self:_after(seq)
  end
  -- Timestamp cursors (and the legacy ISO cursor on accounts) compare by time.
  if self.cursor_kind ~= "key" then
    local t = util.parse_time((cursor:match("^([^&]+)")))
    if t then
      local time_of = self.time_of
      if desc then
        for i = #items, 1, -1 do
          if time_of[items[i]] < t then return i end
        end
        return 0
      end
      for i = 1, #items do
        if time_of[items[i]] > t then return i end
      end
      return #items + 1
    end
  end
  return nil
end

--- One cursor page: items, next cursor (nil on an empty page). With
-- `exact`, the last page with data carries no cursor; `desc` walks from
-- the newest.
function Coll:page(limit, cursor, pred, exact, desc)
  local i = self:start_of(cursor, desc)
  if not i then return nil end
  local items, out = self.items, {}
  local n = #items
  local step = desc and -1 or 1
  local function inside(k) return k >= 1 and k <= n end
  while inside(i) and #out < limit do
    local o = items[i]
    if not pred or pred(o) then out[#out + 1] = o end
    i = i + step
  end
  local nxt
  if #out > 0 then
    nxt = self:cursor_of(out[#out])
    if exact then
      local more = false
      while inside(i) do
        if not pred or pred(items[i]) then more = true break end
        i = i + step
      end
      if not more then nxt = nil end
    end
  end
  return out, nxt
end

-- Store -------------------------------------------------------------------

local Store = {}
Store.__index = Store

-- Seeded data lives at a fixed point in time so a seed is reproducible;
-- objects created at run time get the wall clock.
M.BASE_MS = 1767600000000 -- 2026-01-05T08:00:00Z

function M.new(seed)
  local self = setmetatable({
    seed = seed or 1,
    rng = util.rng(seed or 1),
    seq = 0,
    last_ms = M.BASE_MS,
    colls = {},
    entities = {},
    seeding = false,
  }, Store)
  local E = require "instantly.entities"
  for _, name in ipairs(E.entities) do
    self.entities[name] = require("instantly.entities." .. name)
  end
  return self
end

function Store:coll(name)
  local c = self.colls[name]
  if not c then
    c = new_coll(self, name)
    self.colls[name] = c
  end
  return c
end

--- A timestamp (ms) strictly after every earlier one.
function Store:tick(step_ms)
  local ms
  if self.seeding then
    ms = self.last_ms + (step_ms or 1)
  else
    local now = math.floor(require("socket").gettime() * 1000)
    ms = math.max(now, self.last_ms + 1)
  end
  self.last_ms = ms
  return ms
end

function Store:now_iso()
  return iso(self:tick())
end

function Store:uuid()
  return util.uuid(self.rng)
end

local WORDS = { "Northwind", "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark",
  "Wayne", "Tyrell", "Cyberdyne", "Soylent", "Vandelay", "Wonka", "Gringotts", "Oceanic" }

-- A plausible value for a field the caller did not set.
function Store:default_for(field, ms)
  local name, t = field.name, field.type
  if name == "timestamp_created" or name == "created_at" then return iso(ms) end
  if name == "timestamp_updated" or name == "updated_at" then return iso(ms) end
  if name == "organization" or name == "organization_id" or name == "workspace_id"
     or name == "workspace" then
    return self.workspace_id
  end
  if name == "owned_by" or name == "created_by" or name == "added_by" or name == "user_id"
     or name == "uploaded_by_user" or name == "owner" or name == "issuer_id" then
    return self.user_id
  end
  if field.nullable then return null end
  -- an optional field that is not nullable is left out when unknown
  if M.UNSET[name] then return nil end
  if field.enum then
    for _, v in ipairs(field.enum) do
      if type(v) == "number" and v >= 0 then return v end
    end
    return field.enum[1]
  end
  if t == "integer" or t == "number" then return 0 end
  if t == "boolean" then return false end
  if t == "array" then return array({}) end
  if t == "object" then return {} end
  if name == "id" then return self:uuid() end
  return nil
end

--- Fill every schema field of entity `lua_name` that `obj` lacks.
function Store:fill(lua_name, obj, ms)
  local e = self.entities[lua_name]
  ms = ms or self.last_ms
  for _, field in ipairs(e.fields) do
    if obj[field.name] == nil then
      obj[field.name] = self:default_for(field, ms)
    end
  end
  return obj
end

--- Create an object of entity `lua_name` from `values`, fill it and add it.
function Store:create(lua_name, values, step_ms)
  local ms = self:tick(step_ms)
  local obj = {}
  for k, v in pairs(values or {}) do obj[k] = v end
  self:fill(lua_name, obj, ms)
  return (self:coll(lua_name):insert(obj, ms))
end

function Store:pick(t)
  return t[self.rng(#t)]
end

M.WORDS = WORDS

return M
