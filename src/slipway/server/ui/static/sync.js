// One sync's page (the history's "changes" link): the commit it deployed, who asked, its outcome,
// the diff of every object it changed (as recorded then, Secret values masked) and its hooks with
// their output. Read from the API's record of that sync; nothing is planned again.
import { api, badge, errorText, fill, h, short, when } from "./common.js";
import { hookName, hookOutcome } from "./history.js";
import { renderChanges } from "./plan.js";

const main = document.getElementById("main");
const workflowId = main.dataset.workflow;
const syncId = main.dataset.sync;
const $ = (sel) => document.getElementById(sel);

function renderRecord(r) {
  const m = r.metrics || {};
  const rows = [
    ["Outcome", [badge(r.status), " ", h("span", { class: "muted" }, r.kind)]],
    ["Started", [when(r.start_time), r.end_time ? [" · finished ", when(r.end_time), ` · took ${m.duration}`] : ""]],
    ["Who", r.actor || `controller (${r.trigger})`],
    ["Commit", [h("code", { title: r.commit_hash || "" }, short(r.commit_hash)),
      r.commit_message ? h("div", { class: "commit-subject" }, r.commit_message) : null,
      r.commit_author ? h("div", { class: "muted small commit-author" }, r.commit_author) : null]],
    ["Message", h("span", { class: "clip-3" }, r.message)],
  ];
  if (r.reason) rows.push(["Reason", r.reason]);
  if (r.from_revision) rows.push(["From revision", h("code", {}, short(r.from_revision))]);
  rows.push(["Objects", `${m.resources_applied} applied · ${m.resources_deleted} deleted · ${m.resources_skipped} unchanged`]);
  fill($("record"), rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function renderHooks(hooks) {
  if (!hooks.length) {
    fill($("hooks"), h("p", { class: "muted" }, "No hook ran."));
    return;
  }
  fill($("hooks"), h("ul", { class: "hook-runs" }, hooks.map((hook) => h("li", { class: "hook-run" },
    h("div", {}, h("span", { class: "muted" }, `${hook.phase}${hook.wave !== undefined ? ` · wave ${hook.wave}` : ""} `),
      h("code", {}, hookName(hook)), " ", badge(hookOutcome(hook) === "Succeeded" ? "succeeded" : "failed", hookOutcome(hook)),
      hook.duration !== undefined ? h("span", { class: "muted small" }, ` ${hook.duration}s`) : ""),
    hook.message ? h("p", { class: "small" }, hook.message) : null,
    hook.output ? h("details", {}, h("summary", {}, "Output"), h("pre", { class: "yaml", tabindex: "0" }, hook.output)) : null))));
}

async function load() {
  try {
    const run = await api(`/api/v1/syncs/${encodeURIComponent(syncId)}`);
    if (run.workflow_id !== workflowId) throw new Error(`${syncId} is not a sync of workflow ${workflowId}`);
    if (!run.result) {
      fill($("record"), [h("dt", {}, "Outcome"), h("dd", {}, badge(run.status), " — still running: its changes are shown once it ends.")]);
      fill($("changes"));
      fill($("hooks"));
      return;
    }
    renderRecord(run.result);
    renderChanges($("changes"), run.result.changes || []);
    renderHooks(run.result.hooks || []);
    document.body.setAttribute("data-loaded", "yes");
  } catch (error) {
    errorText($("record"), error);
    fill($("changes"));
    fill($("hooks"));
  }
}

load();
