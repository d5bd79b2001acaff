--- SuperSearch: enrichments that run for a few polls and keep a history,
-- AI enrichments, and lead counts and previews derived from a hash of the
-- filters (so the same search always gives the same numbers), with an
-- import that is a background job.
-- @module instantly.mock.handlers.enrichment

local common = require "instantly.mock.handlers.common"
local generic = require "instantly.mock.handlers.generic"
local json = require "instantly.mock.json"
local util = require "instantly.mock.util"

local array, null, err = json.array, json.null, common.err
local fmt = string.format

local M = {}

-- A lead list (type 2) or a campaign (type 1).
local function resource(store, id)
  local l = store:coll("lead_lists"):get(id)
  if l then return l, 2 end
  local c = store:coll("campaigns"):get(id)
  if c then return c, 1 end
end

local function leads_of(store, id)
  return store:coll("leads"):count(function(l) return l.list_id == id or l.campaign == id end)
end

local function missing(id) return err(404, "Resource " .. tostring(id) .. " not found") end

local TYPES = { "joblisting", "email_verification", "fully_enriched_profile", "technologies", "news", "funding" }

local function payload_from(b)
  local p = { work_email_enrichment = b.type == "work_email_enrichment" or b.type == nil,
    custom_flow = b.custom_flow or array{} }
  for _, t in ipairs(TYPES) do p[t] = b.type == t end
  return p
end

local function history(store, id, row)
  store.enrich_history = store.enrich_history or {}
  local h = store.enrich_history[id] or {}
  store.enrich_history[id] = h
  row.id, row.timestamp = store:uuid(), store:now_iso()
  h[#h + 1] = row
end

local function restart(store, e)
  e.in_progress = true
  generic.later(store, e, "job_steps", { in_progress = false })
end

function M.createSuperSearchEnrichment(ctx)
  local b, store = ctx.body, ctx.store
  local _, rtype = resource(store, b.resource_id)
  if not rtype then return missing(b.resource_id) end
  if b.type and b.integration_actions then
    return err(400, "body: type and integration_actions are mutually exclusive")
  end
  local e = store:coll("supersearch_enrichment"):get(b.resource_id) or store:create("supersearch_enrichment", {
    resource_id = b.resource_id, resource_type = rtype, type = b.type or "work_email_enrichment",
    limit = b.limit or leads_of(store, b.resource_id), auto_update = false, skip_rows_without_email = false })
  e.enrichment_payload = payload_from(b)
  restart(store, e)
  history(store, b.resource_id, { type = e.type, action = "created", limit = e.limit })
  return 200, { id = e.id, limit = e.limit, organization_id = store.workspace_id, resource_id = e.resource_id,
    enrichment_payload = e.enrichment_payload }
end

-- Polling advances a running enrichment; it ends after job_steps polls.
function M.getEnrichmentForResource(ctx)
  local store, id = ctx.store, ctx.params.resource_id
  if not resource(store, id) then return missing(id) end
  local e = store:coll("supersearch_enrichment"):get(id)
  local out = { resource_id = id, in_progress = false, has_no_leads = leads_of(store, id) == 0, exists = e ~= nil,
    enrichment_payload = {}, auto_update = false, is_evergreen = false, search_filters = null }
  if not e then return 200, out end
  generic.poll(ctx, e)
  out.in_progress, out.enrichment_payload, out.auto_update = e.in_progress, e.enrichment_payload, e.auto_update
  out.is_evergreen = store.enrich_evergreen and store.enrich_evergreen[id] or false
  return 200, out
end

function M.updateEnrichmentSettingsForResource(ctx)
  local store = ctx.store
  local e = store:coll("supersearch_enrichment"):get(ctx.params.resource_id)
  if not e then return err(404, "No enrichment for resource " .. ctx.params.resource_id) end
  local b = ctx.body or {}
  if b.auto_update ~= nil then e.auto_update = b.auto_update end
  if b.skip_rows_without_email ~= nil then e.skip_rows_without_email = b.skip_rows_without_email end
  if b.is_evergreen ~= nil then
    store.enrich_evergreen = store.enrich_evergreen or {}
    store.enrich_evergreen[e.resource_id] = b.is_evergreen
  end
  return 200, e
end

function M.runEnrichment(ctx)
  local b, store = ctx.body, ctx.store
  if not resource(store, b.resource_id) then return missing(b.resource_id) end
  local e = store:coll("supersearch_enrichment"):get(b.resource_id)
  if not e then return 400, { message = "No enrichment configured for this resource; create one first" } end
  restart(store, e)
  history(store, b.resource_id, { type = e.type, action = "run", limit = b.limit or e.limit })
  return 200, { id = e.id, resource_id = e.resource_id, enrichment_payload = e.enrichment_payload }
end

function M.getEnrichmentHistory(ctx)
  local store, id, q = ctx.store, ctx.params.resource_id, ctx.query
  if not resource(store, id) then return missing(id) end
  local h = (store.enrich_history or {})[id] or {}
  local offset, limit = q.offset or 0, q.limit or 100
  if offset < 0 then return err(400, "querystring/offset must be >= 0") end
  if limit < 1 or limit > 100 then return err(400, "querystring/limit must be between 1 and 100") end
  return 200, array(table.move(h, offset + 1, math.min(#h, offset + limit), 1, {}))
end

local AI_FIELDS = { "id", "organization_id", "resource_id", "resource_type", "output_column", "status" }

function M.createAIEnrichment(ctx)
  local b, store = ctx.body, ctx.store
  if not resource(store, b.resource_id) then return missing(b.resource_id) end
  local row = {
    id = store:uuid(), organization_id = store.workspace_id, resource_id = b.resource_id,
    resource_type = b.resource_type, output_column = b.output_column, status = 1,
    model_version = b.model_version, input_columns = b.input_columns or array{}, overwrite = b.overwrite or false,
    auto_update = b.auto_update or false, limit = b.limit or leads_of(store, b.resource_id),
    template_id = b.template_id or null,
  }
  store.ai_enrichments = store.ai_enrichments or {}
  store.ai_enrichments[#store.ai_enrichments + 1] = row
  generic.later(store, row, "job_steps", { status = 2 })
  return 200, util.shallow_copy(row)
end

-- Running AI enrichments of a resource; each poll advances them.
function M.getAiEnrichmentForResource(ctx)
  local store, id = ctx.store, ctx.params.resource_id
  if not resource(store, id) then return missing(id) end
  local out = array{}
  for _, r in ipairs(store.ai_enrichments or {}) do
    if r.resource_id == id and r.status == 1 then
      generic.poll(ctx, r)
      local view = {}
      for _, k in ipairs(AI_FIELDS) do view[k] = r[k] end
      out[#out + 1] = view
    end
  end
  return 200, out
end

-- A deterministic lead count for a SuperSearch filter object.
local function count_for(filters)
  local s, h = json.encode(filters), 0
  for i = 1, #s do h = (h * 31 + s:byte(i)) % 1000003 end
  return 500 + h % 20000
end

function M.countLeadsFromSupersearch(ctx)
  local n = count_for(ctx.body.search_filters)
  return 200, { number_of_leads = ctx.body.show_one_lead_per_company and n // 3 or n }
end

local FIRSTS = { "Ada", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun" }

function M.previewLeadsFromSupersearch(ctx)
  local n = count_for(ctx.body.search_filters)
  local rng, leads = util.rng(n), array{}
  for i, first in ipairs(FIRSTS) do
    leads[i] = { firstName = first, lastName = "Preview", fullName = first .. " Preview",
      jobTitle = "Head of Growth", location = "Remote", linkedIn = "https://linkedin.example/in/" .. first:lower(),
      companyName = require("instantly.mock.state").WORDS[rng(15)], companyLogo = null,
      companyId = fmt("cmp_%06d", rng(999999)) }
  end
  return 200, { number_of_leads = n, number_of_redacted_results = math.max(0, n - 10), leads = leads }
end

-- The import target: the given list or campaign, or a new list.
local function import_target(store, b)
  if not b.resource_id then
    return store:create("lead_lists", { name = b.list_name or b.search_name or "SuperSearch import",
      has_enrichment_task = true }), 2
  end
  return resource(store, b.resource_id)
end

function M.enrichLeadsFromSupersearch(ctx)
  local b, store = ctx.body, ctx.store
  if b.limit < 1 then return err(400, "body/limit must be >= 1") end
  local target, rtype = import_target(store, b)
  if not target then return missing(b.resource_id) end
  local n, tid = math.min(b.limit, count_for(b.search_filters), 200), target.id
  local job = generic.job(ctx, "import-leads", rtype == 2 and "list" or "campaign", tid, { total = n },
    function(_, st)
      for i = 1, n do
        st:create("leads", { email = fmt("supersearch%d.%d@leads.example", st.seq, i), first_name = "Lead",
          last_name = tostring(i), status = 1, upload_method = "api", payload = {},
          list_id = rtype == 2 and tid or null, campaign = rtype == 1 and tid or null })
      end
      return { imported = n }
    end)
  return 200, { id = store:uuid(), organization_id = store.workspace_id, resource_id = tid,
    resource_type = rtype, search_filters = b.search_filters, limit = b.limit, list_name = target.name,
    custom_flow = b.custom_flow or array{}, background_job_id = job.id, live_list_workflow_id = null }
end

local KEYWORDS = { "hiring", "funding", "expansion", "migration", "launch", "partnership", "acquisition",
  "rebrand", "security", "compliance" }

function M.signalKeywordsFacet(ctx)
  local b, out = ctx.body, array{}
  local prefix = (b.prefix or ""):lower()
  for i, w in ipairs(KEYWORDS) do
    if b.limit and #out >= b.limit then break end
    if w:sub(1, #prefix) == prefix then out[#out + 1] = { keyword = w, count = 1000 - i * 37 } end
  end
  return 200, { keywords = out }
end

return M
