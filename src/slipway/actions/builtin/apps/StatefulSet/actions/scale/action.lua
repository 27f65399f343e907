-- Set spec.replicas from the "replicas" parameter. Git may declare replicas: the next sync
-- (or self-heal) sets it back, and until then the workflow shows it as drift.
local replicas = tonumber(actionParams["replicas"])
if replicas == nil or replicas < 0 or replicas ~= math.floor(replicas) then
  error("replicas must be a whole number of 0 or more, not '" .. tostring(actionParams["replicas"]) .. "'", 0)
end
obj.spec.replicas = replicas
return obj
