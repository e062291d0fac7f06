-- Argo CD health check for ecraccess.io/EcrAccessAccount, following kstatus (the rules Flux and `kubectl wait` use):
--   no status, or generation not yet observed     -> Progressing
--   Stalled=True                                  -> Degraded, with its message (a person must act: the role's
--                                                    trust policy, the external id, a duplicate or invalid account)
--   Reconciling=True                              -> Progressing, with its message (assuming the role is retried)
--   Ready=True                                    -> Healthy (the role is assumed and STS answers with the account)
--   otherwise (Ready False or Unknown)            -> Progressing
-- An EcrAccessAccount has no finalizer and no suspend: it is gone as soon as it is deleted.
-- Install it under resource.customizations.health.ecraccess.io_EcrAccessAccount in argocd-cm (../argocd-cm.yaml).
-- Argo CD runs gopher-lua (Lua 5.1) with only the base, table, string and math libraries.
local hs = {}

local function condition(conditions, kind)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function is_true(c)
  return c ~= nil and c.status == "True"
end

local function message_of(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

local status = obj.status
if status == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to assume this account's role"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to act on generation " .. tostring(generation)
    .. " (last observed: " .. tostring(status.observedGeneration) .. ")"
  return hs
end

local conditions = status.conditions
local stalled = condition(conditions, "Stalled")
if is_true(stalled) then
  hs.status = "Degraded"
  hs.message = message_of(stalled, "Stalled: " .. tostring(stalled.reason))
  return hs
end

local reconciling = condition(conditions, "Reconciling")
if is_true(reconciling) then
  hs.status = "Progressing"
  hs.message = message_of(reconciling, "Reconciling: " .. tostring(reconciling.reason))
  return hs
end

local ready = condition(conditions, "Ready")
if is_true(ready) then
  hs.status = "Healthy"
  hs.message = message_of(ready, "Ready")
  return hs
end

hs.status = "Progressing"
hs.message = message_of(ready, "Waiting for the Ready condition")
return hs
