local gitops = require("gitops")
local id, err = gitops.create_workflow({repository = "r", sync_policy = {health_check = {timeout = "soon"}}})
assert(id, err)
