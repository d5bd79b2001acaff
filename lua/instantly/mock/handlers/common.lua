--- What the operation handlers share: error answers, cursor pages over
-- collections and derived arrays, search and equality filters.
-- @module instantly.mock.handlers.common

local json = require "instantly.mock.json"
local http = require "instantly.server.http"

local null, array = json.null, json.array

local M = {}

function M.err(status, message)
  return status, { statusCode = status, error = http.REASONS[status] or "Error", message = message }
end

--- An error as a finished response table, for `return nil, fail(...)`
-- helpers whose caller passes the value straight back.
function M.fail(status, message)
  return { status = status, body = json.encode({ statusCode = status,
    error = http.REASONS[status] or "Error", message = message }) }
end

--- Page size and cursor for a paginated op (query or body).
function M.page_args(ctx, src)
  src = src or ctx.query
  local limit = src.limit
  if limit == nil or limit == null then limit = ctx.settings.default_limit end
  local where = src == ctx.query and "querystring" or "body"
  if math.type(limit) ~= "integer" then return nil, where .. "/limit must be integer" end
  if limit < 1 then return nil, where .. "/limit must be >= 1" end
  if limit > 100 then return nil, where .. "/limit must be <= 100" end
  local cursor = src.starting_after
  if cursor == null then cursor = nil end
  if cursor ~= nil and type(cursor) ~= "string" then return nil, where .. "/starting_after must be string" end
  return limit, cursor
end

--- A page over a collection, answered as {items, next_starting_after}.
function M.page(ctx, coll, pred, src)
  local limit, cursor = M.page_args(ctx, src)
  if not limit then return M.err(400, cursor) end
  -- sort_order, where the operation has one, orders by creation
  local order = ctx.query.sort_order
  if order == nil then order = ctx.op.id == "listEmail" and "desc" or "asc" end
  local items, nxt = coll:page(limit, cursor, pred, ctx.settings.exact_last_page, order == "desc")
  if not items then
    return M.err(400, ((src and src ~= ctx.query) and "body" or "querystring")
      .. "/starting_after is not a valid cursor")
  end
  local out = { items = array(items) }
  out.next_starting_after = nxt
  return 200, out
end

--- A page over a derived array; cursor_of(obj) gives each row's cursor.
function M.page_array(ctx, rows, cursor_of, src)
  local limit, cursor = M.page_args(ctx, src)
  if not limit then return M.err(400, cursor) end
  local start = 1
  if cursor then
    start = nil
    for i, r in ipairs(rows) do
      if cursor_of(r) == cursor then start = i + 1 break end
    end
    if not start then return M.err(400, "querystring/starting_after is not a valid cursor") end
  end
  local out = {}
  for i = start, math.min(#rows, start + limit - 1) do out[#out + 1] = rows[i] end
  local page = { items = array(out) }
  if #out > 0 then
    local last = start + #out - 1
    if not (ctx.settings.exact_last_page and last >= #rows) then
      page.next_starting_after = cursor_of(out[#out])
    end
  end
  return 200, page
end

local function lower(s) return type(s) == "string" and s:lower() or nil end

--- Case-insensitive substring search over the named string fields.
function M.search_pred(text, fields)
  if text == nil or text == "" then return nil end
  local needle = text:lower()
  return function(o)
    for _, f in ipairs(fields) do
      local v = lower(o[f])
      if v and v:find(needle, 1, true) then return true end
    end
    return false
  end
end

--- AND of predicates (nil entries ignored).
function M.all(preds)
  local list = {}
  for _, p in pairs(preds) do if p then list[#list + 1] = p end end
  if #list == 0 then return nil end
  if #list == 1 then return list[1] end
  return function(o)
    for i = 1, #list do if not list[i](o) then return false end end
    return true
  end
end

--- Equality (or membership, for array query values) on a field.
function M.eq_pred(field, want)
  if want == nil then return nil end
  if type(want) == "table" then
    local set = {}
    for _, v in ipairs(want) do set[v] = true; set[tostring(v)] = true end
    return function(o) return set[o[field]] == true end
  end
  return function(o) return o[field] == want end
end

return M
