-- What `kubectl create job --from=cronjob/NAME` does: a Job from the CronJob's template, owned by it.
local os = require("os")

local function copy(value)
  if type(value) ~= "table" then
    return value
  end
  local out = {}
  for k, v in pairs(value) do
    out[k] = copy(v)
  end
  return out
end

local job = {}
job.apiVersion = "batch/v1"
job.kind = "Job"
job.metadata = {}
job.metadata.name = string.sub(obj.metadata.name, 1, 40) .. "-manual-" .. os.date("!%Y%m%d%H%M%S")
job.metadata.namespace = obj.metadata.namespace
job.metadata.annotations = {["cronjob.kubernetes.io/instantiate"] = "manual"}
local template = obj.spec.jobTemplate
if template.metadata ~= nil then
  job.metadata.labels = copy(template.metadata.labels)
  for k, v in pairs(template.metadata.annotations or {}) do
    job.metadata.annotations[k] = v
  end
end
job.metadata.ownerReferences = {{
  apiVersion = obj.apiVersion, kind = obj.kind, name = obj.metadata.name, uid = obj.metadata.uid,
  controller = true, blockOwnerDeletion = true,
}}
job.spec = copy(template.spec)
return {{operation = "create", resource = job}}
