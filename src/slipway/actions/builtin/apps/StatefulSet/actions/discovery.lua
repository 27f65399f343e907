local actions = {}
actions["restart"] = {}
actions["scale"] = {["params"] = {{["name"] = "replicas", ["type"] = "integer",
  ["default"] = tostring(obj.spec ~= nil and obj.spec.replicas or 1), ["description"] = "how many pods"}}}
return actions
