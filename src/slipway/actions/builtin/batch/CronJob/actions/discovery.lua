local actions = {}
actions["create-job"] = {["displayName"] = "Run now"}
return actions
