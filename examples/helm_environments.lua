-- Helm: one chart, three environments, each with its own values file.
--
--   slipway run examples/helm_environments.lua [--param namespace_prefix=shop]
--
-- The repository keeps the chart at charts/shop: its values.yaml holds the defaults, and
-- values-dev.yaml, values-staging.yaml and values-prod.yaml beside it what each environment
-- changes. Each environment is a workflow of its own, deployed to the namespace
-- <prefix>-<environment> (which must exist), dev first and production last.
local gitops = require("gitops")
local log = require("log")

local repo_id = gitops.register_repository({
    id = "shop-deploy",
    url = "https://github.com/company/shop-deploy",
    branch = "main"
})

local environments = {
    {name = "dev", auto_sync = true},
    {name = "staging", auto_sync = true},
    {name = "prod", auto_sync = false}      -- production moves only when this script runs
}

local deploy = task("deploy_shop")
    :description("Render the shop chart for each environment and sync it")
    :command(function(params, deps)
        local prefix = params.namespace_prefix or "shop"
        for _, env in ipairs(environments) do
            local workflow_id = gitops.create_workflow({
                id = "shop-" .. env.name,
                name = "shop (" .. env.name .. ")",
                repository = repo_id,
                target_path = "charts/shop",
                auto_sync = env.auto_sync,
                destination = {namespace = prefix .. "-" .. env.name},
                helm = {
                    release_name = "shop",
                    values_files = {"values-" .. env.name .. ".yaml"},  -- over the chart's values.yaml
                    values = {environment = env.name}                   -- merged last
                },
                sync_policy = {auto_prune = true, health_check = {timeout = "2m"}}
            })

            local diff = gitops.generate_diff(workflow_id)
            if not diff then
                return {success = false, message = "cannot render the shop chart for " .. env.name}
            end
            log.info(env.name .. ": " .. diff.summary.total_changes .. " change(s) to apply")

            if not gitops.sync_workflow(workflow_id) then
                return {success = false, message = "the shop chart failed in " .. env.name}
            end
            log.info("shop is live in " .. env.name)
        end
        return {success = true, message = "shop deployed to " .. #environments .. " environments"}
    end)
    :build()
