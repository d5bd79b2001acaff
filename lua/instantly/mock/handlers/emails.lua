--- The Unibox beyond a row of data: its list filters (thread search,
-- modes, latest of thread), replies and forwards that create emails in
-- the thread, and the test email that can fail inside a 200.
-- @module instantly.mock.handlers.emails

local common = require "instantly.mock.handlers.common"
local generic = require "instantly.mock.handlers.generic"
local json = require "instantly.mock.json"
local util = require "instantly.mock.util"

local array, null, err = json.array, json.null, common.err
local fmt = string.format

local M = {}

local FILTERS = { { "campaign_id" }, { "list_id" }, { "i_status" }, { "lead" }, { "eaccount", csv = "eaccount" },
  { "min_timestamp_created", after = "*" }, { "max_timestamp_created", before = "*" } }

-- Tests on the query that are not a field compared with a value.
local function special_preds(q, coll)
  local thread = type(q.search) == "string" and q.search:match("^thread:(.+)$")
  local latest
  if q.latest_of_thread then
    latest = {}
    for _, e in coll:each() do latest[e.thread_id] = e end
  end
  local domain = q.company_domain and q.company_domain:lower()
  return {
    thread and common.eq_pred("thread_id", thread)
      or common.search_pred(q.search, { "lead", "subject", "from_address_email", "to_address_email_list" }),
    q.is_unread ~= nil and function(e) return (e.is_unread == 1) == q.is_unread end or nil,
    q.has_reminder and function(e) return e.reminder_ts ~= null end or nil,
    q.mode == "emode_focused" and function(e) return e.is_focused == 1 end or nil,
    q.mode == "emode_others" and function(e) return e.is_focused ~= 1 end or nil,
    q.email_type == "received" and function(e) return e.ue_type == 2 end or nil,
    q.email_type == "sent" and function(e) return e.ue_type ~= 2 end or nil,
    domain and function(e) return tostring(e.lead):lower():match("@(.+)$") == domain end or nil,
    latest and function(e) return latest[e.thread_id] == e end or nil,
  }
end

function M.listEmail(ctx)
  local q, coll = ctx.query, ctx.store:coll("emails")
  local base, msg = generic.filter(ctx, FILTERS, q, coll)
  if base == nil then return err(400, "querystring/" .. msg:gsub("a date$", "a date-time")) end
  local preds = special_preds(q, coll)
  preds[#preds + 1] = base or nil
  return common.page(ctx, coll, common.all(preds))
end

local function text_of(b)
  return type(b) == "table" and (b.text or b.html) or ""
end

-- A sent email in the thread of `orig`.
local function outgoing(ctx, orig, v)
  local store = ctx.store
  local e = {
    thread_id = orig.thread_id, campaign_id = orig.campaign_id, list_id = orig.list_id, lead = orig.lead,
    lead_id = orig.lead_id, organization_id = store.workspace_id, eaccount = v.eaccount,
    from_address_email = v.eaccount, ue_type = 3, is_unread = 0, is_auto_reply = 0, ai_assisted = 0,
    is_focused = 1, i_status = orig.i_status, step = null, subsequence_id = null, ai_agent_id = null,
    timestamp_email = store:now_iso(), message_id = fmt("<%s@%s>", store:uuid(), v.eaccount:match("@(.+)$")),
    subject = v.subject, body = v.body, to_address_email_list = v.to,
    cc_address_email_list = v.cc or null, bcc_address_email_list = v.bcc or null,
    reply_to = v.reply_to or null, reminder_ts = v.reminder_ts or null,
    content_preview = text_of(v.body):sub(1, 120), attachment_json = null,
    from_address_json = array{ { address = v.eaccount, name = "" } }, to_address_json = array{},
  }
  for addr in tostring(v.to):gmatch("[^,%s]+") do
    e.to_address_json[#e.to_address_json + 1] = { address = addr, name = "" }
  end
  return store:create("emails", e)
end

-- The email answered and the sending account, or a refusal.
local function thread_and_sender(ctx)
  local b = ctx.body
  local orig = ctx.store:coll("emails"):get(b.reply_to_uuid)
  if not orig then return nil, { err(404, "Email " .. b.reply_to_uuid .. " not found") } end
  if not ctx.store:coll("accounts"):get(b.eaccount) then
    return nil, { err(404, "Sending account " .. tostring(b.eaccount) .. " not found") }
  end
  return orig
end

local function bad_address(list)
  for addr in tostring(list):gmatch("[^,%s]+") do
    if not util.is_email(addr) then return "body/to_address_email_list contains an invalid address: " .. addr end
  end
end

function M.replyToEmail(ctx)
  local b = ctx.body
  local orig, e = thread_and_sender(ctx)
  if not orig then return table.unpack(e) end
  if type(b.body) ~= "table" or (b.body.html == nil and b.body.text == nil) then
    return err(400, "body/body must have html or text")
  end
  orig.is_unread = 0
  return 200, outgoing(ctx, orig, { eaccount = b.eaccount, subject = b.subject, body = b.body,
    to = orig.ue_type == 2 and orig.from_address_email or orig.to_address_email_list,
    cc = b.cc_address_email_list, bcc = b.bcc_address_email_list, reminder_ts = b.reminder_ts })
end

function M.forwardEmail(ctx)
  local b = ctx.body
  local orig, e = thread_and_sender(ctx)
  if not orig then return table.unpack(e) end
  local bad = bad_address(b.to_address_email_list)
  if bad then return err(400, bad) end
  local body = b.body
  if body == nil and not b.include_original_body then
    return err(400, "body must have property 'body' or include_original_body=true")
  elseif body == nil then
    body = orig.body
  elseif b.include_original_body then
    body = { text = text_of(body) .. "\n\n---------- Forwarded message ----------\n" .. text_of(orig.body) }
  end
  return 200, outgoing(ctx, orig, { eaccount = b.eaccount, subject = b.subject, body = body,
    to = b.to_address_email_list, cc = b.cc_address_email_list, bcc = b.bcc_address_email_list,
    reply_to = b.reply_to })
end

-- Failures come back as 200 {error = code}, as the API does.
function M.sendTestEmail(ctx)
  local forced = ctx.settings.send_test_error
  if forced then return 200, { error = type(forced) == "string" and forced or "ACC_AUTH_ERROR" } end
  local a = ctx.store:coll("accounts"):get(ctx.body.eaccount)
  if not a then return 200, { error = "ACC_NOT_FOUND" } end
  if a.status == -1 then return 200, { error = "ACC_AUTH_ERROR" } end
  local bad = bad_address(ctx.body.to_address_email_list)
  if bad then return err(400, bad) end
  return 200, { status = "success", message = "Test email sent from " .. a.email }
end

return M
