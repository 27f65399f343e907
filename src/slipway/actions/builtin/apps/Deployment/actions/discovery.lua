local actions = {}
local paused = obj.spec ~= nil and obj.spec.paused == true
actions["restart"] = {["disabled"] = paused}
actions["pause"] = {["disabled"] = paused}
actions["resume"] = {["disabled"] = not paused}
actions["scale"] = {["params"] = {{["name"] = "replicas", ["type"] = "integer",
  ["default"] = tostring(obj.spec ~= nil and obj.spec.replicas or 1), ["description"] = "how many pods"}}}
return actions
