--- Concurrent SDK calls from one Lua thread: coroutines over the core's
-- multi interface.
--
-- `client:gather(tasks, opts)` runs the tasks (functions making ordinary
-- SDK calls) on worker coroutines, at most `concurrency` at a time. The
-- request pipeline asks `pipeline.scheduler()` for the scheduler of the
-- running coroutine; when there is one it calls `scheduler:request(session,
-- req)` and `scheduler:sleep(seconds)` instead of blocking. Here `request`
-- submits the transfer to that session's multi handle and yields; `sleep`
-- yields with a wake time. The loop resumes each coroutine when its
-- transfer completes or its time comes, so N tasks keep up to N transfers
-- in flight, while retries, the rate limiter (shared by a client, taken
-- without yielding) and error values behave exactly as they do outside.
--
-- The scheduler belongs to the coroutine, not to a client: a task may use
-- any number of clients (one per workspace, say) and all their transfers
-- run on the same loop, whichever client's `gather` started it.
--
-- Tasks are an array (results by index), a table of named tasks (results
-- by the same keys) or a function returning the next task (results by the
-- order the tasks were made). A task that raises does not stop the others:
-- its error becomes an error result (`kind = "task"`, with the message,
-- the original error value as `err.cause` and a traceback); an
-- `instantly.Error` raised (by an iterator whose page failed) is the result
-- as it is. Every error result carries the task's key or index as
-- `err.task`. Transfers still in flight when the loop itself fails (an
-- `on_result` callback raising) are cancelled.
--
-- Calling gather from inside a task runs the inner tasks on the same loop
-- (the calling task waits for them), so nesting never blocks the outer
-- tasks.
-- @module instantly.workflows.gather

local core = require "instantly.core"
local Err = require "instantly.request.error"
local pipeline = require "instantly.request.pipeline"

local type, error, pairs, next, tostring, pcall =
  type, error, pairs, next, tostring, pcall
local create, resume, yield, running, close =
  coroutine.create, coroutine.resume, coroutine.yield, coroutine.running, coroutine.close
local traceback, setmetatable, assert, sort = debug.traceback, setmetatable, assert, table.sort
local mtype, huge, min = math.type, math.huge, math.min
local monotime, plain_sleep, wait_sessions = core.monotime, core.sleep, core.wait_sessions
local attach, scheduler_of = pipeline.attach, pipeline.scheduler

local M = {}

M.DEFAULT_CONCURRENCY = 8

-- Every scheduler yields its own token (a table), so its yields are told
-- apart from any other yield, and the core's dispatch resumes only the
-- transfers it submitted; DONE is what a worker returns when it ends (so
-- no status() call per resume).
local TOKEN_MT = { __name = "instantly.workflows.gather.token" }
local DONE = setmetatable({}, { __name = "instantly.workflows.gather.done" })
-- A worker's key between tasks (see worker)
local OUTSIDE = setmetatable({}, { __name = "instantly.workflows.gather.outside" })

local Scheduler = {}
Scheduler.__index = Scheduler
Scheduler.__name = "instantly.Scheduler"

local function new_scheduler()
  return setmetatable({
    -- the hooks the pipeline calls, found without going through __index
    request = Scheduler.request, sleep = Scheduler.sleep,
    token = setmetatable({}, TOKEN_MT),
    waiting = {},     -- session -> {n = transfers in flight, submit =, and one of
                      --             dispatch = the core session's (its transfers
                      --             carry their coroutine), take = the session's,
                      --             or neither (poll); [transfer id] = coroutine
                      --             for the last two} (kept while the loop lasts)
    nsessions = 0,    -- sessions with n > 0
    last = nil,       -- the session collected last
    sleepers = {},    -- array of {wake, co}, unordered (few entries)
    -- the ready queue, as parallel arrays: coroutine and what to resume it with
    qco = {}, qa = {}, qb = {}, qc = {},
    qhead = 1, qtail = 0,
    workers = {},     -- worker coroutine -> {key of the task it runs (OUTSIDE
                      --   between tasks), its group}
  }, Scheduler)
end

-- The entry of `waiting` for a session seen for the first time.
local function watch(self, session)
  local w = {
    n = 0, submit = session.submit,
    -- (dispatch only on a core session: an injected transport's method of
    -- that name is not ours to interpret)
    dispatch = type(session) == "userdata" and session.dispatch or nil,
    take = session.take,
  }
  self.waiting[session] = w
  return w
end

--- The scheduler hook: submit a transfer and suspend the calling task
-- until it completes. Returns what `session:request(req)` returns.
function Scheduler:request(session, req)
  local w = self.waiting[session] or watch(self, session)
  if w.dispatch then
    -- The core keeps the calling coroutine with the transfer and resumes
    -- it itself (see collect); w.n is only "some in flight" until then.
    local token = self.token
    w.submit(session, req, token)
    if w.n == 0 then
      w.n = 1
      self.nsessions = self.nsessions + 1
    end
    return yield(token)
  end
  local submit = w.submit
  -- A transport without the multi interface (an injected one) is driven
  -- one request at a time: same results, no overlap.
  if not submit then return session:request(req) end
  local id, err = submit(session, req)
  if id == nil then
    -- The transfer could not even start: answer as request() would.
    return nil, err
  end
  w[id] = running()
  local n = w.n
  if n == 0 then self.nsessions = self.nsessions + 1 end
  w.n = n + 1
  return yield(self.token)
end

--- The scheduler hook: suspend the calling task for `seconds`.
function Scheduler:sleep(seconds)
  if seconds ~= seconds or seconds <= 0 then return end
  local s = self.sleepers
  s[#s + 1] = { monotime() + seconds, running() }
  yield(self.token)
end

local function push(self, co, a, b, c)
  local t = self.qtail + 1
  self.qtail = t
  self.qco[t], self.qa[t], self.qb[t], self.qc[t] = co, a, b, c
end

-- `count` transfers of the session whose entry in `waiting` is w were
-- handed over.
local function handed(self, w, count)
  local n = w.n - count
  w.n = n
  if n == 0 then self.nsessions = self.nsessions - 1 end
end

local function task_name(key)
  return type(key) == "string" and ("'" .. key .. "'") or tostring(key)
end

-- The error result of a task that raised `e` (traceback: its text).
local function raised_error(e, tb, key)
  if Err.is(e) then
    if e.task == nil then e.task = key end
    return e
  end
  return Err.new {
    kind = "task", message = "task " .. task_name(key) .. " raised: " .. tostring(e),
    cause = e, traceback = tb, task = key,
  }
end

-- Body of a worker coroutine: runs tasks of its group one after another
-- until there are none left, reporting each result (err naming the task).
-- The task runs unprotected: one that raises kills the coroutine, and
-- `settle` reports it (its key is in st[1] while it runs) and starts a
-- fresh worker for the rest, so nothing a failed task left on its stack
-- is seen by the next task, and a task that succeeds costs no pcall.
-- on_result and the task stream run here too, outside any task (st[1]
-- is OUTSIDE): if they raise, the loop fails with that error. (st is the
-- worker's entry in `workers`: an array slot set in place, twice a task.)
local function worker(st, group, key, fn)
  local take, on_result, stream = group.take, group.on_result, group.stream
  while key ~= nil do
    st[1] = key
    local v, e = fn()
    st[1] = OUTSIDE
    if v ~= nil then
      -- SDK calls return value, status, headers on success: only a nil
      -- value makes the second result an error.
      e = nil
    elseif e ~= nil then
      if Err.is(e) and e.task == nil then e.task = key end
      group.failed = group.failed + 1
    end
    on_result(key, v, e, false)
    if stream and not group.exhausted then
      -- (take(), inline while the stream gives functions: once per task)
      fn = stream()
      if type(fn) == "function" then
        key = group.started + 1
        group.started = key
      else
        key, fn = take(fn, true)
      end
    else
      key, fn = take()
    end
  end
  return DONE
end

function Scheduler:_spawn(group, key, fn)
  local st = { OUTSIDE, group }
  local co = create(function() return worker(st, group, key, fn) end)
  self.workers[co] = st
  attach(co, self)
  group.workers = group.workers + 1
  push(self, co)
end

-- Starts workers for `group` while it has free slots and tasks left.
function Scheduler:_fill(group)
  while not group.exhausted and group.workers < group.concurrency do
    local key, fn = group.take()
    if key == nil then break end
    self:_spawn(group, key, fn)
  end
  if group.exhausted and group.workers == 0 and not group.finished then
    group.finished = true
    if group.waiter then push(self, group.waiter, self.token) end
  end
end

function Scheduler:_worker_gone(co)
  local group = self.workers[co][2]
  self.workers[co] = nil
  attach(co, nil)
  group.workers = group.workers - 1
  self:_fill(group)
end

-- A worker died in task `key` of `group` with error `e`: the task's
-- result is that error (with the coroutine's traceback), its
-- to-be-closed variables are closed, and another worker takes its place.
local function task_raised(self, co, group, key, e)
  local tb = traceback(co, tostring(e))
  -- (detached first: an SDK call in a __close handler cannot yield from
  -- here, so it runs as it would outside gather)
  attach(co, nil)
  local closed, ce = close(co)
  if not closed then e = ce end -- a __close that raised has the last word, as under pcall
  self.workers[co] = nil
  group.workers = group.workers - 1
  group.failed = group.failed + 1
  group.on_result(key, nil, raised_error(e, tb, key), true)
  self:_fill(group)
end

-- Interprets what resuming coroutine co returned (ok, x, y, z).
local function settle(self, co, ok, x, y, z)
  if x == self.token and ok then
    if y == "join" then
      -- A nested gather: z is its group; we are resumed when it ends.
      z.waiter = co
      self:_fill(z)
    end
    return
  end
  if x == DONE and ok then return self:_worker_gone(co) end
  local st = self.workers[co]
  local group, key = st and st[2], st and st[1]
  if st == nil or key == OUTSIDE then
    -- Not inside a task: on_result, the task stream, or a bug of ours.
    if not ok then error(x, 0) end
    error("instantly: gather: a coroutine yielded outside the SDK", 0)
  end
  if not ok then return task_raised(self, co, group, key, x) end
  -- A task yielded on its own (not through the SDK): it cannot be
  -- resumed meaningfully; fail it (closing what it left to be closed)
  -- and let another worker take over.
  attach(co, nil)
  close(co)
  group.failed = group.failed + 1
  group.on_result(key, nil, Err.new {
    kind = "task", message = "task " .. task_name(key) ..
      " yielded outside the SDK (coroutine.yield inside a gathered task)",
    task = key,
  }, true)
  return self:_worker_gone(co)
end

-- Resumes one coroutine and interprets what it yielded or returned.
local function step(self, co, a, b, c)
  return settle(self, co, resume(co, a, b, c))
end

-- Finished transfers of one session, waiting up to `timeout` for the
-- first. Each waiting task is resumed at once with its result; what it
-- submits meanwhile is still running, so it is not handed over in the
-- same round.
local function collect(self, session, w, timeout)
  self.last = session
  local dispatch = w.dispatch
  if dispatch then
    -- The core resumes the tasks itself as long as each yields our token
    -- (it submitted its next transfer or went to sleep); one that does
    -- anything else is handed back here. It answers how many of our
    -- transfers are still in flight.
    local token = self.token
    local left, co, ok, x, y, z = dispatch(session, token, timeout)
    while true do
      while co ~= nil do
        settle(self, co, ok, x, y, z)
        left, co, ok, x, y, z = dispatch(session, token)
      end
      -- While this session is the only one with transfers in flight and
      -- nothing is ready or asleep, waiting on it again is all the next
      -- turn would do: do it here.
      if left == 0 or self.qtail > 0 or self.nsessions ~= 1 or #self.sleepers > 0 then break end
      left, co, ok, x, y, z = dispatch(session, token, 1)
    end
    if left == 0 then
      if w.n > 0 then self.nsessions = self.nsessions - 1 end
      w.n = 0
    else
      w.n = left
    end
    return
  end
  local take = w.take
  if take then
    local id, a, b, c = take(session, timeout)
    while id ~= nil do
      local co = w[id]
      if co then
        w[id] = nil
        handed(self, w, 1)
        step(self, co, a, b, c)
      end
      id, a, b, c = take(session)
    end
    return
  end
  local done = session:poll(timeout)
  if type(done) == "table" then
    for j = 1, #done do
      local r = done[j]
      local co = w[r.id]
      if co then
        w[r.id] = nil
        handed(self, w, 1)
        if r.err ~= nil then
          step(self, co, nil, r.err)
        else
          step(self, co, r.status, r.body, r.headers)
        end
      end
    end
  end
end

-- Runs everything ready, then waits for transfers or sleepers.
function Scheduler:_turn(root)
  if self.qtail > 0 then
    local qco, qa, qb, qc = self.qco, self.qa, self.qb, self.qc
    while self.qhead <= self.qtail do
      local h = self.qhead
      local co, a, b, c = qco[h], qa[h], qb[h], qc[h]
      qco[h], qa[h], qb[h], qc[h] = nil, nil, nil, nil
      self.qhead = h + 1
      step(self, co, a, b, c)
    end
    self.qhead, self.qtail = 1, 0
    if root.finished then return end
  end
  local s = self.sleepers
  local now, wake = nil, huge
  if #s > 0 then
    -- Sleepers whose time has come.
    now = monotime()
    local i = 1
    while i <= #s do
      local e = s[i]
      if e[1] <= now then
        s[i] = s[#s]
        s[#s] = nil
        push(self, e[2])
      else
        if e[1] < wake then wake = e[1] end
        i = i + 1
      end
    end
    if self.qtail > 0 then return end
  end
  local nsessions = self.nsessions
  if nsessions == 0 then
    if wake == huge then
      error("instantly: gather: every task is waiting and nothing can wake them", 0)
    end
    plain_sleep(wake - now)
    return
  end
  local timeout = wake < huge and (wake - now) or 1
  local waiting = self.waiting
  if nsessions == 1 then
    -- (the one with transfers in flight: most likely the last one)
    local session = self.last
    local w = waiting[session]
    if w == nil or w.n == 0 then
      session, w = next(waiting)
      while w.n == 0 do session, w = next(waiting, session) end
    end
    return collect(self, session, w, timeout)
  end
  -- Several sessions (tasks using several clients): wait on all their
  -- sockets at once, then collect from each without waiting. Transports
  -- that are not core sessions cannot be waited on together: take turns
  -- in short slices.
  local list, all_core = {}, true
  for session, w in pairs(waiting) do
    if w.n > 0 then
      list[#list + 1] = session
      if type(session) ~= "userdata" then all_core = false end
    end
  end
  if all_core then
    wait_sessions(list, timeout)
    timeout = 0
  else
    timeout = min(timeout, 0.002)
  end
  for i = 1, #list do
    -- (a session may have nothing left in flight by its turn)
    local w = waiting[list[i]]
    if w.n > 0 then collect(self, list[i], w, timeout) end
  end
end

function Scheduler:_cancel_all()
  for session, w in pairs(self.waiting) do
    if w.dispatch then
      pcall(session.cancel, session, self.token)
    else
      for id in pairs(w) do
        if mtype(id) == "integer" then pcall(session.cancel, session, id) end
      end
    end
  end
  for co in pairs(self.workers) do attach(co, nil) end
  self.waiting, self.nsessions, self.last = {}, 0, nil
  self.workers, self.sleepers = {}, {}
  self.qco, self.qa, self.qb, self.qc, self.qhead, self.qtail = {}, {}, {}, {}, 1, 0
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

-- Misuse is found by the helpers below, which return the message, and
-- raised by M.gather at its caller's line.

-- concurrency, on_result | nil, message
local function check_opts(opts)
  if opts == nil then return M.DEFAULT_CONCURRENCY, nil end
  if type(opts) ~= "table" then
    return nil, "instantly: gather: opts must be a table, got " .. type(opts)
  end
  for k in pairs(opts) do
    if k ~= "concurrency" and k ~= "on_result" then
      return nil, "instantly: gather: unknown option '" .. tostring(k) .. "'"
    end
  end
  local c = opts.concurrency
  if c == nil then
    c = M.DEFAULT_CONCURRENCY
  elseif mtype(c) ~= "integer" or c < 1 then
    return nil, "instantly: gather: concurrency must be a positive integer"
  end
  if opts.on_result ~= nil and type(opts.on_result) ~= "function" then
    return nil, "instantly: gather: on_result must be a function"
  end
  return c, opts.on_result
end

-- Keys in a stable order: integers first (ascending), then the others
-- by their text.
local function key_order(a, b)
  local ia, ib = mtype(a) == "integer", mtype(b) == "integer"
  if ia ~= ib then return ia end
  if ia then return a < b end
  return tostring(a) < tostring(b)
end

-- The task list of a table: an array, or named tasks when any key is not
-- one of 1..#tasks. Returns the keys in run order, or nil, message.
local function task_keys(tasks)
  local n, keyed = #tasks, false
  for k in pairs(tasks) do
    if mtype(k) ~= "integer" or k < 1 or k > n then
      keyed = true
      break
    end
  end
  local keys = {}
  if keyed then
    for k in pairs(tasks) do keys[#keys + 1] = k end
    sort(keys, key_order)
  else
    for i = 1, n do keys[i] = i end
  end
  for _, k in pairs(keys) do
    if type(tasks[k]) ~= "function" then
      return nil, "instantly: gather: task " .. task_name(k) .. " is a " .. type(tasks[k]) .. ", not a function"
    end
  end
  return keys
end

--- Run tasks concurrently (see the module description).
-- @tparam table _client the client whose `gather` was called (any client's
--   calls may be made from the tasks)
-- @param tasks an array of functions, a table of named functions
--   (`{acme = fn, globex = fn}`), or a function returning the next task (a
--   function) on each call and nil when there are no more (tasks are then
--   made only as slots free up, so a long stream needs no memory for tasks
--   not yet started)
-- @tparam[opt] table opts `concurrency` (tasks in flight at once, default
--   8), `on_result` (`fn(key, value, err)`, called as each task ends; with
--   it, results are not kept and gather returns only the failure count)
-- @return values (`values[k]` is task k's first result or nil, k being
--   the task's index or name), errs (`errs[k]` its error, nil when it
--   succeeded; `errs[k].task == k`), and the number of failed tasks
-- @usage
-- local values, errs, failed = client:gather({
--   first = function() return client.campaigns:get(id1) end,
--   second = function() return client.campaigns:get(id2) end,
-- }, {concurrency = 8})
-- print(values.first and values.first.name or tostring(errs.first))
function M.gather(_client, tasks, opts)
  local concurrency, on_result = check_opts(opts)
  if not concurrency then error(on_result, 2) end
  local take
  local group
  local tt = type(tasks)
  if tt == "table" then
    local keys, msg = task_keys(tasks)
    if not keys then error(msg, 2) end
    local i = 0
    take = function()
      i = i + 1
      local k = keys[i]
      if k == nil then
        group.exhausted = true
        return nil
      end
      return k, tasks[k]
    end
  elseif tt == "function" then
    -- (the worker makes the next task itself while the stream gives
    -- functions, see worker; with got, made is what the stream gave it)
    take = function(made, got)
      if not got then
        if group.exhausted then return nil end
        made = tasks()
        if type(made) == "function" then
          local n = group.started + 1
          group.started = n
          return n, made
        end
      end
      group.exhausted = true
      if made == nil then return nil end
      error(("instantly: gather: task %d is a %s, not a function"):format(group.started + 1, type(made)), 0)
    end
  else
    error("instantly: gather: tasks must be an array of functions, a table of named functions " ..
      "or a function, got " .. tt, 2)
  end
  local values, errs = {}, {}
  group = {
    take = take, concurrency = concurrency, workers = 0, failed = 0,
    stream = tt == "function" and tasks or nil, started = 0,
    on_result = on_result or function(k, v, e)
      values[k] = v
      if v == nil then errs[k] = e end
    end,
  }
  local outer = scheduler_of()
  if outer then
    -- Nested: run on the loop already driving this task.
    local tok = yield(outer.token, "join", group)
    assert(tok == outer.token)
  else
    new_scheduler():_run(group)
  end
  if on_result then return group.failed end
  return values, errs, group.failed
end

M.Scheduler = Scheduler
return M
