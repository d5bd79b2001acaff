--- Concurrent SDK calls from one Lua thread: coroutines over the core's
-- multi interface.
--
-- `client:gather(tasks, opts)` runs each task (a function making ordinary
-- SDK calls) in its own coroutine. The request pipeline looks its
-- scheduler up with `client._schedulers[coroutine.running()]`; when it
-- finds one it calls `scheduler:request(session, req)` and
-- `scheduler:sleep(seconds)` instead of blocking. Here `request` submits
-- the transfer to the session's multi handle and yields; `sleep` yields
-- with a wake time. The loop resumes each coroutine when its transfer
-- completes or its time comes, so N tasks keep up to N transfers in
-- flight, while retries, the rate limiter (shared by the client, taken
-- without yielding) and error values behave exactly as they do outside.
--
-- A task that raises does not stop the others: its error becomes an error
-- result (`kind = "task"`, with the message, the original error value as
-- `err.cause` and a traceback); an `instantly.Error` raised (by an
-- iterator whose page failed) is the result as it is. Transfers still in flight when the loop
-- itself fails (an `on_result` callback raising) are cancelled.
--
-- Calling gather from inside a task runs the inner tasks on the same loop
-- (the calling task waits for them), so nesting never blocks the outer
-- tasks.
-- @module instantly.gather

local core = require "instantly.core"
local Err = require "instantly.error"

local type, error, pairs, tostring, select, xpcall, pcall =
  type, error, pairs, tostring, select, xpcall, pcall
local create, resume, yield, running, status =
  coroutine.create, coroutine.resume, coroutine.yield, coroutine.running, coroutine.status
local traceback, unpack, setmetatable, assert = debug.traceback, table.unpack, setmetatable, assert
local mtype, huge, min = math.type, math.huge, math.min
local monotime, plain_sleep = core.monotime, core.sleep

local M = {}

M.DEFAULT_CONCURRENCY = 8

-- A unique value that marks our yields apart from any other yield.
local TOKEN = setmetatable({}, { __name = "instantly.gather.token" })

local Scheduler = {}
Scheduler.__index = Scheduler
Scheduler.__name = "instantly.Scheduler"

local function new_scheduler(client)
  return setmetatable({
    client = client,
    waiting = {},     -- transfer id -> coroutine
    owner = {},       -- transfer id -> session
    sessions = {},    -- session -> number of transfers in flight
    nsessions = 0,
    sleepers = {},    -- array of {wake, co}, unordered (few entries)
    ready = {},       -- queue of {co, n, ...} to resume
    rhead = 1, rtail = 0,
    task_of = {},     -- coroutine -> {group, index}
  }, Scheduler)
end

--- The scheduler hook: submit a transfer and suspend the calling task
-- until it completes. Returns what `session:request(req)` returns.
function Scheduler:request(session, req)
  -- A transport without the multi interface (an injected one) is driven
  -- one request at a time: same results, no overlap.
  if not session.submit then return session:request(req) end
  local co = running()
  local id, err = session:submit(req)
  if id == nil then
    -- The transfer could not even start: answer as request() would.
    return nil, err
  end
  self.waiting[id] = co
  self.owner[id] = session
  local n = self.sessions[session]
  if not n then
    self.nsessions = self.nsessions + 1
    n = 0
  end
  self.sessions[session] = n + 1
  return yield(TOKEN, "io")
end

--- The scheduler hook: suspend the calling task for `seconds`.
function Scheduler:sleep(seconds)
  if seconds ~= seconds or seconds <= 0 then return end
  local co = running()
  local s = self.sleepers
  s[#s + 1] = { monotime() + seconds, co }
  yield(TOKEN, "sleep")
end

function Scheduler:_push(co, ...)
  local t = self.rtail + 1
  self.rtail = t
  self.ready[t] = { co, select("#", ...), ... }
end

function Scheduler:_transfer_done(id, ...)
  local co = self.waiting[id]
  if not co then return end
  self.waiting[id] = nil
  local session = self.owner[id]
  self.owner[id] = nil
  local n = self.sessions[session] - 1
  if n == 0 then
    self.sessions[session] = nil
    self.nsessions = self.nsessions - 1
  else
    self.sessions[session] = n
  end
  self:_push(co, ...)
end

-- Turns a raised value into the error result of a task.
local function task_error(e, tb, index)
  if Err.is(e) then return e end
  return Err.new {
    kind = "task", message = "task " .. index .. " raised: " .. tostring(e),
    cause = e, traceback = tb, task = index,
  }
end

-- Body of every task coroutine: run the task, capture value/err or the
-- raised error with its traceback.
local function task_body(fn, index)
  local tb
  local ok, v, e = xpcall(fn, function(msg)
    tb = traceback(tostring(msg), 2)
    return msg
  end)
  if not ok then return nil, task_error(v, tb, index), true end
  return v, e, false
end

function Scheduler:_spawn(group, fn, index)
  local co = create(task_body)
  self.task_of[co] = { group = group, index = index }
  self.client._schedulers[co] = self
  group.active = group.active + 1
  self:_push(co, fn, index)
end

-- Starts tasks of `group` while it has free slots and tasks left.
function Scheduler:_fill(group)
  while not group.exhausted and group.active < group.concurrency do
    local fn = group.next_task()
    if fn == nil then
      group.exhausted = true
    else
      group.started = group.started + 1
      if type(fn) ~= "function" then
        group.exhausted = true
        error(("instantly: gather: task %d is a %s, not a function"):format(group.started, type(fn)), 0)
      end
      self:_spawn(group, fn, group.started)
    end
  end
  if group.exhausted and group.active == 0 and not group.finished then
    group.finished = true
    if group.waiter then self:_push(group.waiter, TOKEN) end
  end
end

function Scheduler:_task_finished(co, v, e, raised)
  local t = self.task_of[co]
  self.task_of[co] = nil
  self.client._schedulers[co] = nil
  local group = t.group
  group.active = group.active - 1
  -- SDK calls return value, status, headers on success: only a nil
  -- value makes the second result an error.
  if v ~= nil then
    e = nil
  elseif e ~= nil then
    group.failed = group.failed + 1
  end
  group.on_result(t.index, v, e, raised)
  self:_fill(group)
end

-- Resumes one coroutine and interprets what it yielded or returned.
function Scheduler:_step(co, ...)
  local res = { resume(co, ...) }
  if not res[1] then
    -- task_body catches everything; only a scheduler bug lands here.
    error(res[2], 0)
  end
  if status(co) == "dead" then
    return self:_task_finished(co, res[2], res[3], res[4])
  end
  if res[2] ~= TOKEN then
    -- A task yielded on its own (not through the SDK): it cannot be
    -- resumed meaningfully; fail it.
    self.client._schedulers[co] = nil
    return self:_task_finished(co, nil, Err.new {
      kind = "task", message = "task yielded outside the SDK (coroutine.yield inside a gathered task)",
      task = self.task_of[co].index,
    }, true)
  end
  local what = res[3]
  if what == "join" then
    -- A nested gather: res[4] is its group; we are resumed when it ends.
    local group = res[4]
    group.waiter = co
    self:_fill(group)
  end
end

-- Runs everything ready, then waits for transfers or sleepers.
function Scheduler:_turn(root)
  local q = self.ready
  while self.rhead <= self.rtail do
    local item = q[self.rhead]
    q[self.rhead] = nil
    self.rhead = self.rhead + 1
    self:_step(item[1], unpack(item, 3, 2 + item[2]))
  end
  self.rhead, self.rtail = 1, 0
  if root.finished then return end
  -- Sleepers whose time has come.
  local now = monotime()
  local wake = huge
  local s = self.sleepers
  local i = 1
  while i <= #s do
    local e = s[i]
    if e[1] <= now then
      s[i] = s[#s]
      s[#s] = nil
      self:_push(e[2])
    else
      if e[1] < wake then wake = e[1] end
      i = i + 1
    end
  end
  if self.rtail > 0 then return end
  if self.nsessions == 0 then
    if wake == huge then
      error("instantly: gather: every task is waiting and nothing can wake them", 0)
    end
    plain_sleep(wake - now)
    return
  end
  local timeout = wake < huge and (wake - now) or 1
  if self.nsessions > 1 then timeout = min(timeout, 0.002) end
  for session in pairs(self.sessions) do
    local done = session:poll(timeout)
    if type(done) == "table" then
      for j = 1, #done do
        local r = done[j]
        if r.err ~= nil then
          self:_transfer_done(r.id, nil, r.err)
        else
          self:_transfer_done(r.id, r.status, r.body, r.headers)
        end
      end
    end
  end
end

function Scheduler:_cancel_all()
  for id, session in pairs(self.owner) do
    pcall(session.cancel, session, id)
  end
  for co in pairs(self.task_of) do self.client._schedulers[co] = nil end
  self.waiting, self.owner, self.sessions, self.nsessions = {}, {}, {}, 0
  self.task_of, self.sleepers, self.ready, self.rhead, self.rtail = {}, {}, {}, 1, 0
end

function Scheduler:_run(group)
  local ok, err = pcall(function()
    self:_fill(group)
    while not group.finished do self:_turn(group) end
  end)
  if not ok then
    self:_cancel_all()
    error(err, 0)
  end
end

local function check_opts(opts, level)
  if opts == nil then return M.DEFAULT_CONCURRENCY, nil end
  if type(opts) ~= "table" then
    error("instantly: gather: opts must be a table, got " .. type(opts), level + 1)
  end
  for k in pairs(opts) do
    if k ~= "concurrency" and k ~= "on_result" then
      error("instantly: gather: unknown option '" .. tostring(k) .. "'", level + 1)
    end
  end
  local c = opts.concurrency
  if c == nil then
    c = M.DEFAULT_CONCURRENCY
  elseif mtype(c) ~= "integer" or c < 1 then
    error("instantly: gather: concurrency must be a positive integer", level + 1)
  end
  if opts.on_result ~= nil and type(opts.on_result) ~= "function" then
    error("instantly: gather: on_result must be a function", level + 1)
  end
  return c, opts.on_result
end

--- Run tasks concurrently (see the module description).
-- @tparam table client the client whose calls the tasks make
-- @param tasks an array of functions, or a function returning the next
--   task (a function) on each call and nil when there are no more (tasks
--   are then made only as slots free up, so a long stream needs no memory
--   for tasks not yet started)
-- @tparam[opt] table opts `concurrency` (tasks in flight at once, default
--   8), `on_result` (`fn(i, value, err)`, called as each task ends; with
--   it, results are not kept and gather returns only the failure count)
-- @return values (array: `values[i]` is task i's first result or nil),
--   errs (array: `errs[i]` is its error, nil when it succeeded), and the
--   number of failed tasks
-- @usage
-- local values, errs, failed = client:gather({
--   function() return client.campaigns:get(id1) end,
--   function() return client.campaigns:get(id2) end,
-- }, {concurrency = 8})
-- for i = 1, 2 do print(values[i] and values[i].name or tostring(errs[i])) end
function M.gather(client, tasks, opts, level)
  level = (level or 1) + 1
  local concurrency, on_result = check_opts(opts, level)
  local next_task, count
  local tt = type(tasks)
  if tt == "table" then
    count = #tasks
    for i = 1, count do
      if type(tasks[i]) ~= "function" then
        error("instantly: gather: task " .. i .. " is a " .. type(tasks[i]) .. ", not a function", level)
      end
    end
    local i = 0
    next_task = function()
      i = i + 1
      return tasks[i]
    end
  elseif tt == "function" then
    next_task = tasks
  else
    error("instantly: gather: tasks must be an array of functions or a function, got " .. tt, level)
  end
  local values, errs = {}, {}
  local group = {
    next_task = next_task, concurrency = concurrency, active = 0, started = 0, failed = 0,
    on_result = on_result or function(i, v, e)
      values[i] = v
      if v == nil then errs[i] = e end
    end,
  }
  local me = running()
  local outer = client._schedulers[me]
  if outer then
    -- Nested: run on the loop already driving this task.
    local tok = yield(TOKEN, "join", group)
    assert(tok == TOKEN)
  else
    new_scheduler(client):_run(group)
  end
  if on_result then return group.failed end
  return values, errs, group.failed
end

M.Scheduler = Scheduler
M.TOKEN = TOKEN
return M
