--- Bespoke handlers: the Unibox (list with its filters, reply, forward,
-- threads, unread count) and the test email that can fail inside a 200.
-- @module instantly.mock.handlers.emails

local json = require "instantly.mock.json"
local util = require "instantly.mock.util"

local array, null = json.array, json.null
local fmt = string.format

return function(H, common)
  local err = common.err

  local function csv_set(v)
    if v == nil then return nil end
    local s = {}
    for _, x in ipairs(type(v) == "table" and v or { v }) do
      for part in tostring(x):gmatch("[^,]+") do s[part:match("^%s*(.-)%s*$")] = true end
    end
    return s
  end

  H.listEmail = function(ctx)
    local q, store = ctx.query, ctx.store
    local eacc = csv_set(q.eaccount)
    local thread = type(q.search) == "string" and q.search:match("^thread:(.+)$")
    local min_t = q.min_timestamp_created and util.parse_time(q.min_timestamp_created)
    local max_t = q.max_timestamp_created and util.parse_time(q.max_timestamp_created)
    if q.min_timestamp_created and not min_t then
      return err(400, "querystring/min_timestamp_created must be a date-time")
    end
    if q.max_timestamp_created and not max_t then
      return err(400, "querystring/max_timestamp_created must be a date-time")
    end
    local coll = store:coll("emails")
    local latest
    if q.latest_of_thread then
      latest = {}
      for _, e in coll:each() do latest[e.thread_id] = e end
    end
    local preds = {
      thread and common.eq_pred("thread_id", thread) or nil,
      (not thread and q.search and q.search ~= "")
        and common.search_pred(q.search, { "lead", "subject", "from_address_email", "to_address_email_list" }) or nil,
      common.eq_pred("campaign_id", q.campaign_id), common.eq_pred("list_id", q.list_id),
      common.eq_pred("i_status", q.i_status), common.eq_pred("lead", q.lead),
      eacc and function(e) return eacc[e.eaccount] end or nil,
      q.is_unread ~= nil and function(e) return (e.is_unread == 1) == q.is_unread end or nil,
      q.has_reminder and function(e) return e.reminder_ts ~= null end or nil,
      q.mode == "emode_focused" and function(e) return e.is_focused == 1 end or nil,
      q.mode == "emode_others" and function(e) return e.is_focused ~= 1 end or nil,
      q.email_type == "received" and function(e) return e.ue_type == 2 end or nil,
      q.email_type == "sent" and function(e) return e.ue_type ~= 2 end or nil,
      q.company_domain and function(e)
        return tostring(e.lead):lower():match("@(.+)$") == q.company_domain:lower()
      end or nil,
      min_t and function(e) return coll.time_of[e] >= min_t end or nil,
      max_t and function(e) return coll.time_of[e] <= max_t end or nil,
      latest and function(e) return latest[e.thread_id] == e end or nil,
    }
    return common.page(ctx, coll, common.all(preds))
  end

  local function sender(ctx, eaccount)
    local a = ctx.store:coll("accounts"):get(eaccount)
    if not a then return nil, common.fail(404, "Sending account " .. tostring(eaccount) .. " not found") end
    return a
  end

  local function body_text(b)
    if type(b) ~= "table" then return "" end
    return b.text or b.html or ""
  end

  local function outgoing(ctx, orig, values)
    local store = ctx.store
    local e = {
      thread_id = orig.thread_id, campaign_id = orig.campaign_id, list_id = orig.list_id, lead = orig.lead,
      lead_id = orig.lead_id, organization_id = store.workspace_id, eaccount = values.eaccount,
      from_address_email = values.eaccount, ue_type = 3, is_unread = 0, is_auto_reply = 0, ai_assisted = 0,
      is_focused = 1, i_status = orig.i_status, step = null, subsequence_id = null, ai_agent_id = null,
      timestamp_email = store:now_iso(), message_id = fmt("<%s@%s>", store:uuid(), values.eaccount:match("@(.+)$")),
      subject = values.subject, body = values.body, to_address_email_list = values.to,
      cc_address_email_list = values.cc or null, bcc_address_email_list = values.bcc or null,
      reply_to = values.reply_to or null, reminder_ts = values.reminder_ts or null,
      content_preview = body_text(values.body):sub(1, 120), attachment_json = null,
      from_address_json = array{ { address = values.eaccount, name = "" } },
      to_address_json = array{},
    }
    for addr in tostring(values.to):gmatch("[^,%s]+") do
      e.to_address_json[#e.to_address_json + 1] = { address = addr, name = "" }
    end
    return store:create("emails", e)
  end

  H.replyToEmail = function(ctx)
    local b, store = ctx.body, ctx.store
    local orig = store:coll("emails"):get(b.reply_to_uuid)
    if not orig then return err(404, "Email " .. b.reply_to_uuid .. " not found") end
    local _, e = sender(ctx, b.eaccount)
    if e then return e end
    if type(b.body) ~= "table" or (b.body.html == nil and b.body.text == nil) then
      return err(400, "body/body must have html or text")
    end
    local to = orig.ue_type == 2 and orig.from_address_email or orig.to_address_email_list
    orig.is_unread = 0
    return 200, outgoing(ctx, orig, { eaccount = b.eaccount, subject = b.subject, body = b.body, to = to,
      cc = b.cc_address_email_list, bcc = b.bcc_address_email_list, reminder_ts = b.reminder_ts })
  end

  H.forwardEmail = function(ctx)
    local b, store = ctx.body, ctx.store
    local orig = store:coll("emails"):get(b.reply_to_uuid)
    if not orig then return err(404, "Email " .. b.reply_to_uuid .. " not found") end
    local _, e = sender(ctx, b.eaccount)
    if e then return e end
    for addr in tostring(b.to_address_email_list):gmatch("[^,%s]+") do
      if not util.is_email(addr) then
        return err(400, "body/to_address_email_list contains an invalid address: " .. addr)
      end
    end
    local body = b.body
    if body == nil then
      if not b.include_original_body then
        return err(400, "body must have property 'body' or include_original_body=true")
      end
      body = orig.body
    elseif b.include_original_body then
      body = { text = body_text(body) .. "\n\n---------- Forwarded message ----------\n" .. body_text(orig.body) }
    end
    return 200, outgoing(ctx, orig, { eaccount = b.eaccount, subject = b.subject, body = body,
      to = b.to_address_email_list, cc = b.cc_address_email_list, bcc = b.bcc_address_email_list,
      reply_to = b.reply_to })
  end

  H.sendTestEmail = function(ctx)
    local b = ctx.body
    local forced = ctx.settings.send_test_error
    if forced then
      return 200, { error = type(forced) == "string" and forced or "ACC_AUTH_ERROR" }
    end
    local a = ctx.store:coll("accounts"):get(b.eaccount)
    if not a then return 200, { error = "ACC_NOT_FOUND" } end
    if a.status == -1 then return 200, { error = "ACC_AUTH_ERROR" } end
    for addr in tostring(b.to_address_email_list):gmatch("[^,%s]+") do
      if not util.is_email(addr) then
        return err(400, "body/to_address_email_list contains an invalid address: " .. addr)
      end
    end
    return 200, { status = "success", message = "Test email sent from " .. a.email }
  end

  H.markThreadAsRead = function(ctx)
    local id = ctx.params.thread_id
    local n = 0
    for _, e in ctx.store:coll("emails"):each() do
      if e.thread_id == id then
        n = n + 1
        e.is_unread = 0
      end
    end
    if n == 0 then return err(404, "Thread not found") end
    return 200, { success = true }
  end

  H.countUnreadEmails = function(ctx)
    return 200, { count = ctx.store:coll("emails"):count(function(e) return e.is_unread == 1 end) }
  end

  H.patchEmail = function(ctx)
    local e = ctx.store:coll("emails"):get(ctx.params.id)
    if not e then return err(404, "Email not found") end
    local b = ctx.body or {}
    if b.is_unread ~= nil then
      if b.is_unread ~= 0 and b.is_unread ~= 1 then return err(400, "body/is_unread must be 0 or 1") end
      e.is_unread = b.is_unread
    end
    if b.reminder_ts ~= nil then
      if b.reminder_ts ~= null and not util.parse_time(b.reminder_ts) then
        return err(400, 'body/reminder_ts must match format "date-time"')
      end
      e.reminder_ts = b.reminder_ts
    end
    return 200, e
  end
end
