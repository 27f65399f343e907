// A workflow's page: its summary, the pending diff (per object, coloured, with its impact), the
// waves and hooks a sync would run, its objects with their live and desired YAML, and its
// history. An operator can sync exactly the plan shown, roll back with a reason and turn
// auto-sync on or off; progress and results arrive through the event stream, without a reload.
import { api, badge, debounce, errorText, fill, follow, h, short, when } from "./common.js";
import { renderHistory } from "./history.js";
import { renderDiff, renderWaves, renderPlanSummary } from "./plan.js";

const main = document.getElementById("main");
const id = main.dataset.workflow;
const operator = main.dataset.operator === "yes";
const base = `/api/v1/workflows/${encodeURIComponent(id)}`;
const $ = (sel) => document.getElementById(sel);

let status = null;
let running = null; // the sync or rollback this page follows: {id, kind, total, applied, deleted, stage}

// -- summary --------------------------------------------------------------------------------------

async function loadStatus(refresh = false) {
  try {
    status = await api(base);
  } catch (error) {
    errorText($("summary"), error);
    return;
  }
  const cfg = status.config;
  const live = status.live_state || {};
  $("wf-title").textContent = status.name || id;
  document.title = `${status.name || id} · slipway`;
  $("wf-sub").textContent = status.name && status.name !== id ? `id ${id}` : "";
  fill($("wf-badges"), badge(status.status), status.auto_sync ? h("span", { class: "badge good" }, "auto-sync on")
    : h("span", { class: "badge neutral" }, "auto-sync off"));
  const auto = $("btn-auto");
  if (auto) {
    auto.setAttribute("aria-pressed", String(status.auto_sync));
    auto.textContent = status.auto_sync ? "Auto-sync: on" : "Auto-sync: off";
  }
  const last = status.last_sync_result;
  const sync = status.sync_status || { status: "Unknown" };
  currentSync = sync;
  const counts = ["created", "changed", "missing", "extra"].filter((k) => sync[k]).map((k) => `${sync[k]} ${k}`);
  const health = status.health || { status: "Unknown" };
  const op = status.operation;
  const rows = [
    ["Sync status", [badge(sync.status), counts.length ? ` ${counts.join(", ")}` : "",
      sync.message ? h("span", { class: "muted small" }, ` ${sync.message}`) : ""]],
    ["Health", [badge(health.status), health.message ? h("span", { class: "muted small clip" }, ` ${health.message}`) : ""]],
    ["Last operation", op ? [`${op.kind} `, badge(op.phase.toLowerCase()), " ", when(op.finished_at || op.started_at),
      h("span", { class: "clip" }, ` ${op.message}`)] : h("span", { class: "muted" }, "none yet")],
    ["Repository", [h("code", {}, cfg.repository), " · path ", h("code", {}, cfg.target_path || "/")]],
    ["Destination", [h("code", {}, cfg.destination?.namespace || "default"), cfg.destination?.context ? ` (context ${cfg.destination.context})` : ""]],
    ["Live revision", h("code", { id: "live-revision", title: live.applied_revision || "" }, short(live.applied_revision))],
    ["Branch head", h("span", { id: "head-revision" }, "…")],
    ["Last sync", last ? [badge(last.status), " ", when(last.start_time), ` · took ${last.metrics?.duration ?? "?"} · `,
      h("span", { class: "clip" }, last.message)] : h("span", { class: "muted" }, "never")],
  ];
  if (live.hold_revision) rows.push(["Held", `auto-sync holds away from ${short(live.hold_revision)} (rolled back) until a new commit`]);
  if (live.status_message) rows.push(["Status message", live.status_message]);
  fill($("summary"), rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  loadHead(cfg.repository, live.applied_revision, refresh);
}

let currentSync = null; // the sync status the page last read: a commit elsewhere in the repository is not news

async function loadHead(repository, live, refresh, tries = 10) {
  try {
    const sources = await api(`/api/v1/sources${refresh ? "?refresh=true" : ""}`);
    const source = sources.find((s) => s.repository === repository);
    const head = source?.head?.revision;
    const cell = $("head-revision");
    if (!cell) return;
    fill(cell, h("code", { title: head || "" }, source?.checking && !head ? "…" : short(head)),
      head && head !== live && !(currentSync?.revision === head && currentSync.status === "Synced")
        ? [" ", badge("OutOfSync", "behind Git")] : null,
      source?.last_error ? [" ", h("span", { class: "error-text" }, `last error: ${source.last_error.message}`)] : null);
    if (source?.checking && tries > 1) {
      // A Git server that answers slowly gives its branch head a moment later.
      setTimeout(() => loadHead(repository, live, false, tries - 1), 3000);
    }
  } catch {
    // the head is a nicety: the rest of the page stands without it
  }
}

// -- objects --------------------------------------------------------------------------------------

function yamlView(obj) {
  const pre = (text, what) => text
    ? h("pre", { class: "yaml", tabindex: "0", "aria-label": `${what} YAML of ${obj.resource}` }, text)
    : h("p", { class: "muted" }, what === "Live" ? "Not in the cluster." : "Not declared in Git.");
  return h("details", { class: "yaml-view" },
    h("summary", {}, `YAML of ${obj.resource}`),
    h("div", { class: "yaml-pair" },
      h("div", {}, h("h4", {}, "Live"), pre(obj.live, "Live")),
      h("div", {}, h("h4", {}, "Desired (Git)"), pre(obj.desired, "Desired"))));
}

async function loadObjects() {
  const box = $("objects");
  let rows, computed;
  try {
    ({ resources: rows, computed } = await api(`${base}/resources?manifests=true`));
  } catch (error) {
    errorText(box, error);
    return;
  }
  // A viewer never makes the server plan: say whose plan, and when, this is.
  const note = !operator && computed
    ? h("p", { class: "muted small" }, "As planned for ", h("code", {}, computed.by), " ", when(computed.at), ".")
    : "";
  if (!rows.length) {
    fill(box, h("p", { class: "muted" }, "This workflow declares no objects."));
    return;
  }
  const kinds = new Map();
  for (const r of rows) {
    if (!kinds.has(r.kind)) kinds.set(r.kind, []);
    kinds.get(r.kind).push(r);
  }
  fill(box, note, [...kinds].map(([kind, list]) => h("section", { class: "kind", "aria-label": kind },
    h("h3", {}, `${kind} (${list.length})`),
    h("ul", { class: "objects" }, list.map((r) => h("li", { class: "object", "data-resource": r.resource },
      h("div", { class: "object-line" },
        h("strong", {}, r.name), r.namespace ? h("span", { class: "muted" }, ` in ${r.namespace}`) : "",
        " ", badge(r.sync), " ", badge(r.health.status),
        r.action !== "unchanged" ? h("span", { class: "badge warn" }, r.action) : "",
        r.drifted ? h("span", { class: "badge warn" }, "drifted") : "",
        r.health.message ? h("span", { class: "muted small" }, ` ${r.health.message}`) : ""),
      yamlView(r)))))));
}

// -- the pending diff -----------------------------------------------------------------------------

let plan = null;

async function loadDiff() {
  if (!operator) return;
  const box = $("diff");
  box.setAttribute("aria-busy", "true");
  try {
    plan = await api(`${base}/diff`);
    renderDiff(box, plan);
    renderWaves($("waves"), plan, status?.config?.sync_policy);
  } catch (error) {
    errorText(box, error);
    fill($("waves"));
  } finally {
    box.removeAttribute("aria-busy");
  }
}

// -- history --------------------------------------------------------------------------------------

async function loadHistory() {
  const box = $("history");
  let records;
  try {
    records = await api(`${base}/history?limit=25`);
  } catch (error) {
    errorText(box, error);
    return;
  }
  renderHistory(box, id, records);
}

// -- actions and progress -------------------------------------------------------------------------

function setBusy(busy) {
  for (const b of ["btn-sync", "btn-rollback"]) if ($(b)) $(b).disabled = busy;
}

function showProgress() {
  const box = $("progress");
  if (!running) return;
  const what = running.kind === "rollback" ? "Rollback" : "Sync";
  const parts = [h("strong", {}, `${what} ${running.id}`), `: ${running.stage || "starting"}`];
  if (running.total !== undefined) {
    parts.push(` — ${running.applied} of ${running.total} object(s) written`);
    if (running.deleted) parts.push(`, ${running.deleted} deleted`);
    parts.push(h("progress", { max: Math.max(running.total, 1), value: running.applied + running.deleted,
      "aria-label": `${what} progress` }));
  }
  if (running.health) parts.push(` — ${running.health.healthy} of ${running.health.total} healthy`);
  if (running.done) {
    fill(box, h("div", { class: running.status === "succeeded" ? "done good" : "done bad" },
      h("strong", {}, `${what} ${running.status}`), `: ${running.message || ""}`));
    return;
  }
  fill(box, h("div", { class: "busy" }, parts));
}

function onEvent(name, data) {
  if (!data.sync_id && name !== "status") return;
  if (name === "started") {
    running = { id: data.sync_id, kind: data.kind, stage: `started (${data.trigger})`, applied: 0, deleted: 0 };
    setBusy(true);
  }
  if (name === "status") {
    refreshAll();
    return;
  }
  if (!running || running.id !== data.sync_id) return;
  if (name === "planned") running.total = data.total;
  else if (name === "stage") running.stage = data.name;
  else if (name === "applied") running.applied += 1;
  else if (name === "deleted") running.deleted += 1;
  else if (name === "wave") running.stage = `apply, wave ${data.wave} (${data.index} of ${data.of})`;
  else if (name === "health") running.health = data;
  else if (name === "finished") {
    Object.assign(running, { done: true, status: data.status, message: data.message });
    setBusy(false);
    refreshAll(true);
  }
  showProgress();
}

const refreshAll = debounce((refresh = false) =>
  Promise.all([loadStatus(refresh), loadObjects(), loadDiff(), loadHistory()]), 200);

function closeOnCancel(dialog, button) {
  button.addEventListener("click", () => dialog.close());
}

function setupSync() {
  const dialog = $("sync-dialog");
  const confirm = $("sync-confirm");
  let shown = null;
  closeOnCancel(dialog, $("sync-cancel"));
  $("btn-sync").addEventListener("click", async () => {
    shown = null;
    confirm.disabled = true;
    $("sync-error").textContent = "";
    fill($("sync-plan"), h("p", { class: "muted" }, "Computing the plan against the cluster…"));
    dialog.showModal();
    try {
      shown = await api(`${base}/diff`);
      renderPlanSummary($("sync-plan"), shown);
      confirm.disabled = false;
      confirm.focus();
    } catch (error) {
      errorText($("sync-plan"), error);
    }
  });
  confirm.addEventListener("click", async () => {
    if (!shown) return;
    confirm.disabled = true;
    try {
      const run = await api(`${base}/sync`, { method: "POST", body: { expected_plan: shown.fingerprint } });
      startFollowing(run);
      dialog.close();
    } catch (error) {
      $("sync-error").textContent = error.message;
      confirm.disabled = false;
    }
  });
}

function setupRollback() {
  const dialog = $("rollback-dialog");
  const form = $("rollback-form");
  const reason = $("rb-reason");
  closeOnCancel(dialog, $("rb-cancel"));
  $("btn-rollback").addEventListener("click", () => {
    $("rb-error").textContent = "";
    reason.removeAttribute("aria-invalid");
    dialog.showModal();
    reason.focus();
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!reason.value.trim()) {
      reason.setAttribute("aria-invalid", "true");
      $("rb-error").textContent = "A reason is required: it is kept in the history.";
      reason.focus();
      return;
    }
    $("rb-confirm").disabled = true;
    try {
      const run = await api(`${base}/rollback`, { method: "POST", body: { reason: reason.value.trim() } });
      startFollowing(run);
      reason.value = "";
      dialog.close();
    } catch (error) {
      $("rb-error").textContent = error.message;
    } finally {
      $("rb-confirm").disabled = false;
    }
  });
}

function setupAutoSync() {
  const button = $("btn-auto");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await api(`${base}/auto-sync`, { method: "POST", body: { enabled: !status?.auto_sync } });
      await loadStatus();
    } catch (error) {
      errorText($("progress"), error);
    } finally {
      button.disabled = false;
    }
  });
}

function startFollowing(run) {
  if (!running || running.id !== run.id) {
    running = { id: run.id, kind: run.kind, stage: run.status, applied: 0, deleted: 0 };
  }
  setBusy(!running.done);
  showProgress();
  if (run.done) onEvent("finished", { sync_id: run.id, status: run.status, message: run.result?.message });
}

if (operator) {
  setupSync();
  setupRollback();
  setupAutoSync();
}
$("btn-refresh").addEventListener("click", () => refreshAll(true));
follow(id, onEvent);
refreshAll();
