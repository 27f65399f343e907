// A plan (the API's diff) as the page shows it: each change with its impact, wave and coloured
// diff; conflicts and warnings; the waves and hooks a sync would run; and the short form the
// sync dialog asks a person to confirm.
import { badge, fill, h, short } from "./common.js";

const VERB = { create: "+ create", update: "~ update", delete: "- delete" };

function diffText(text) {
  const lines = String(text || "").split("\n");
  return h("pre", { class: "diff", tabindex: "0" }, lines.map((line, i) => {
    let kind = "ctx";
    if (i === 0) kind = "head";
    else if (line.startsWith("+++") || line.startsWith("---")) kind = "file";
    else if (line.startsWith("+")) kind = "add";
    else if (line.startsWith("-")) kind = "del";
    else if (line.startsWith("@@")) kind = "hunk";
    return h("span", { class: `line ${kind}` }, line + "\n");
  }));
}

function change(c, open) {
  return h("li", { class: `change ${c.type}`, "data-resource": c.resource },
    h("div", { class: "change-line" },
      h("span", { class: `verb ${c.type}` }, VERB[c.type] || c.type), " ",
      h("strong", {}, c.resource), c.namespace ? h("span", { class: "muted" }, ` in ${c.namespace}`) : "", " ",
      h("span", { class: "muted" }, "impact "), badge(c.impact), " ",
      h("span", { class: "badge neutral" }, `wave ${c.wave ?? 0}`)),
    h("details", { class: "diff-view", open },
      h("summary", {}, `Diff of ${c.resource}`),
      diffText(c.diff)));
}

function conflicts(plan) {
  if (!plan.conflicts?.length) return null;
  return h("div", { class: "conflicts" }, h("h3", {}, `Conflicts (${plan.conflicts.length})`),
    h("ul", {}, plan.conflicts.map((c) => h("li", { class: "conflict" },
      h("span", { class: `badge ${c.type === "out_of_sync" ? "warn" : "bad"}` }, c.type), " ",
      h("strong", {}, c.resource), c.namespace ? ` in ${c.namespace}` : "", ": ", c.description,
      c.suggestions?.length ? h("ul", { class: "muted small" }, c.suggestions.map((s) => h("li", {}, s))) : null))));
}

function warnings(plan) {
  if (!plan.warnings?.length) return null;
  return h("div", { class: "warnings" }, h("h3", {}, `Warnings (${plan.warnings.length})`),
    h("ul", {}, plan.warnings.map((w) => h("li", {}, w))));
}

function counts(plan) {
  const s = plan.summary;
  return h("p", { class: "plan-counts" },
    h("span", { class: "verb create" }, `${s.created_resources} to create`), " · ",
    h("span", { class: "verb update" }, `${s.updated_resources} to update`), " · ",
    h("span", { class: "verb delete" }, `${s.deleted_resources} to delete`), " · ",
    `${s.conflict_count} conflict(s) · ${s.warning_count} warning(s) · at revision `,
    h("code", { title: plan.revision || "" }, short(plan.revision)));
}

export function renderDiff(box, plan) {
  if (!plan.changes.length && !plan.conflicts.length) {
    fill(box, h("p", { class: "in-sync" }, badge("Synced", "In sync"), " Nothing to change: the cluster matches Git at ",
      h("code", {}, short(plan.revision)), "."), warnings(plan));
    return;
  }
  fill(box, counts(plan), conflicts(plan), warnings(plan),
    // Every diff open when there are a few; past that, a list to open one by one.
    h("ul", { class: "changes" }, plan.changes.map((c) => change(c, plan.changes.length <= 6))));
}

export function renderWaves(box, plan, policy) {
  const waves = new Map();
  for (const c of plan.changes) {
    const wave = c.wave ?? 0;
    if (!waves.has(wave)) waves.set(wave, []);
    waves.get(wave).push(c);
  }
  const parts = [];
  if (policy?.pre_sync_hooks?.length) {
    parts.push(h("p", {}, h("strong", {}, "Before: "), h("code", {}, policy.pre_sync_hooks.join(" ; "))));
  }
  if (waves.size) {
    parts.push(h("ol", { class: "waves" }, [...waves].sort((a, b) => a[0] - b[0]).map(([wave, list]) =>
      h("li", {}, h("strong", {}, `Wave ${wave}: `),
        list.map((c, i) => [i ? ", " : "", h("span", { class: `verb ${c.type}` }, VERB[c.type] || c.type), " ", c.resource])))));
  } else {
    parts.push(h("p", { class: "muted" }, "No object to write or delete."));
  }
  if (plan.hooks?.length) {
    parts.push(h("h3", {}, `Hooks (${plan.hooks.length})`), h("ul", { class: "hooks" }, plan.hooks.map((k) =>
      h("li", {}, h("strong", {}, k.resource), ` — ${k.phases.join(", ")}, wave ${k.wave}`,
        k.runs ? "" : h("span", { class: "muted" }, ` (not run: ${k.note || "no phase slipway runs"})`)))));
  }
  if (policy?.post_sync_hooks?.length) {
    parts.push(h("p", {}, h("strong", {}, "After: "), h("code", {}, policy.post_sync_hooks.join(" ; "))));
  }
  fill(box, parts);
}

export function renderPlanSummary(box, plan) {
  const blocking = plan.conflicts.filter((c) => c.type !== "out_of_sync");
  fill(box, counts(plan),
    plan.changes.length
      ? h("ul", { class: "plan-list" }, plan.changes.map((c) => h("li", {},
        h("span", { class: `verb ${c.type}` }, VERB[c.type] || c.type), " ", c.resource, " ", badge(c.impact))))
      : h("p", {}, "Nothing to change: a sync records this revision as live."),
    blocking.length ? h("p", { class: "error" }, `${blocking.length} conflict(s) block this plan: the sync will refuse to apply it.`) : null,
    h("p", { class: "muted small" }, "Confirm applies exactly this plan; if the cluster or Git changes first, the sync refuses."));
}

// What a recorded sync changed (its history record's changes), each diff open: the sync's page.
export function renderChanges(box, changes) {
  if (!changes.length) {
    fill(box, h("p", { class: "muted" }, "This run changed nothing."));
    return;
  }
  fill(box, h("ul", { class: "changes" }, changes.map((c) => change(c, changes.length <= 20))));
}
