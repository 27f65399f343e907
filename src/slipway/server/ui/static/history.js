// A workflow's history as the page shows it: each sync or rollback with the commit it deployed
// (subject and author, as Git has them), who asked, its outcome, the hooks it ran and a link to
// the page of what it changed. Everything is built with textContent: a commit message is text.
import { badge, fill, h, short, when } from "./common.js";

export function syncPath(workflowId, syncId) {
  return `/workflows/${encodeURIComponent(workflowId)}/syncs/${encodeURIComponent(syncId)}`;
}

function commitCell(r) {
  return [h("code", { title: r.commit_hash || "" }, short(r.commit_hash)),
    r.commit_message ? h("div", { class: "commit-subject clip", title: r.commit_message }, r.commit_message) : null,
    r.commit_author ? h("div", { class: "muted small commit-author" }, r.commit_author) : null];
}

// A hook's outcome in one word: a resource hook's status, a command hook's exit code.
export function hookOutcome(hook) {
  if (hook.status) return hook.status;
  if (hook.exit_code === 0) return "Succeeded";
  return hook.exit_code === null || hook.exit_code === undefined ? "timed out" : `exit ${hook.exit_code}`;
}

export function hookName(hook) {
  return hook.resource || hook.command || "?";
}

function hooksCell(r) {
  const hooks = r.hooks || [];
  if (!hooks.length) return h("span", { class: "muted" }, "none");
  return h("ul", { class: "hooks" }, hooks.map((hook) => {
    const outcome = hookOutcome(hook);
    return h("li", {}, h("span", { class: "muted small" }, `${hook.phase} `), h("code", { class: "clip" }, hookName(hook)), " ",
      badge(outcome === "Succeeded" ? "succeeded" : "failed", outcome));
  }));
}

export function renderHistory(box, workflowId, records) {
  if (!records.length) {
    fill(box, h("p", { class: "muted" }, "No sync yet."));
    return;
  }
  const head = ["When", "What", "Outcome", "Who", "Commit", "Reason and message", "Hooks", "Changes"];
  fill(box, h("div", { class: "table-wrap" }, h("table", { class: "cards-on-phone", id: "history-table" },
    h("caption", { class: "visually-hidden" }, "Syncs and rollbacks, newest first"),
    h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, records.map((r) => {
      const m = r.metrics || {};
      const cells = [
        when(r.start_time),
        [r.kind, r.rolled_back ? h("div", { class: "muted small" }, "rolled back") : null],
        badge(r.status),
        r.actor || h("span", { class: "muted" }, `controller (${r.trigger})`),
        commitCell(r),
        [r.reason ? h("div", { class: "reason" }, h("strong", {}, "Reason: "), r.reason) : null,
          h("div", { class: "clip-3" }, r.message)],
        hooksCell(r),
        [h("a", { class: "diff-link", href: syncPath(workflowId, r.id) }, `${(r.changes || []).length} change(s)`),
          h("div", { class: "muted small" }, `${m.duration} · ${m.resources_applied} applied · ${m.resources_deleted} deleted`)],
      ];
      return h("tr", { "data-sync": r.id }, cells.map((c, i) => h("td", { "data-label": head[i] }, c)));
    })))));
}
