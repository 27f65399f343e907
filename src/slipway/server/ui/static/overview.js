// The overview: every workflow with its status, health, revisions and last sync; the repositories
// with their last fetch and last error. Filters live in the URL's query, so a filtered view can be
// shared; the list follows the event stream and reloads itself when something happens.
import { api, badge, debounce, errorText, fill, follow, h, label, short, when } from "./common.js";

const tbody = document.querySelector("#workflows tbody");
const reposBody = document.querySelector("#repositories tbody");
const counts = document.getElementById("counts");
const note = document.getElementById("list-note");
const filters = {
  repository: document.getElementById("f-repo"),
  status: document.getElementById("f-status"),
  q: document.getElementById("f-text"),
};

let workflows = [];
let heads = {}; // repository id -> its source row (branch head, last fetch, last error)

// Behind Git: the branch moved past what is live, and (once compared at that head) it changes what
// this workflow renders. A commit to another path of the repository is not news for it.
function outOfSync(wf) {
  const head = heads[wf.repository]?.head?.revision;
  const live = wf.live_state?.applied_revision;
  if (head && wf.sync_status?.revision === head && wf.sync_status.status === "Synced") return false;
  return Boolean(head && live && head !== live) || (Boolean(head) && !live);
}

// Sync status against Git and health of the live objects, as last computed, with its age.
function syncCell(wf) {
  const sync = wf.sync_status || { status: "Unknown" };
  const parts = ["created", "changed", "missing", "extra"].filter((k) => sync[k]).map((k) => `${sync[k]} ${k}`);
  const age = wf.assessed_at ? when(wf.assessed_at) : "not computed yet";
  return [badge(sync.status), parts.length ? h("div", { class: "muted small" }, parts.join(", ")) : null,
    h("div", { class: "muted small", title: sync.message || "" }, age)];
}

function healthCell(wf) {
  const health = wf.health || { status: "Unknown" };
  return [badge(health.status), health.message && health.status !== "Healthy"
    ? h("div", { class: "muted small clip", title: health.message }, health.message) : null];
}

function matches(wf) {
  const { repository, status, q } = Object.fromEntries(Object.entries(filters).map(([k, el]) => [k, el.value]));
  if (repository && wf.repository !== repository) return false;
  if (status === "out-of-sync" ? !outOfSync(wf) : status && wf.status !== status) return false;
  const text = q.trim().toLowerCase();
  if (text && ![wf.id, wf.name, wf.repository].some((v) => String(v ?? "").toLowerCase().includes(text))) return false;
  return true;
}

function revisionCell(wf) {
  const live = wf.live_state?.applied_revision;
  const source = heads[wf.repository];
  const head = source?.head?.revision;
  const parts = [h("code", { title: live || "" }, short(live)), " / ", h("code", { title: head || "" }, source ? short(head) : "…")];
  if (outOfSync(wf)) parts.push(" ", badge("OutOfSync", "behind Git"));
  else if (head && live) parts.push(" ", badge("Synced", "up to date"));
  if (wf.live_state?.hold_revision) parts.push(" ", h("span", { class: "badge warn" }, "held by a rollback"));
  return parts;
}

function lastSyncCell(wf) {
  const last = wf.last_sync_result;
  if (!last) return h("span", { class: "muted" }, "never");
  return [badge(last.status), " ", when(last.start_time), h("span", { class: "muted" }, ` · took ${last.metrics?.duration ?? "?"}`)];
}

function row(wf) {
  const link = h("a", { href: `/workflows/${encodeURIComponent(wf.id)}` }, wf.name || wf.id);
  const cells = [
    ["Workflow", [link, wf.name && wf.name !== wf.id ? h("div", { class: "muted small" }, wf.id) : null,
      h("div", { class: "muted small" }, wf.repository)]],
    ["Status", [badge(wf.status), wf.live_state?.status_message && wf.status !== "synced"
      ? h("div", { class: "muted small clip" }, wf.live_state.status_message) : null]],
    ["Sync", syncCell(wf)],
    ["Health", healthCell(wf)],
    ["Revision", revisionCell(wf)],
    ["Last sync", lastSyncCell(wf)],
    ["Auto-sync", wf.auto_sync ? h("span", { class: "badge good" }, "on") : h("span", { class: "badge neutral" }, "off")],
  ];
  return h("tr", { "data-workflow": wf.id }, cells.map(([name, value]) => h("td", { "data-label": name }, value)));
}

function renderCounts() {
  const by = {};
  for (const wf of workflows) by[wf.status] = (by[wf.status] || 0) + 1;
  const behind = workflows.filter(outOfSync).length;
  const items = [h("li", {}, h("strong", {}, String(workflows.length)), workflows.length === 1 ? " workflow" : " workflows")];
  for (const status of ["synced", "syncing", "failed", "degraded", "active"]) {
    if (by[status]) items.push(h("li", {}, badge(status, `${by[status]} ${label(status).toLowerCase()}`)));
  }
  if (behind) items.push(h("li", {}, badge("OutOfSync", `${behind} behind Git`)));
  fill(counts, items);
}

function render() {
  renderCounts();
  const shown = workflows.filter(matches);
  fill(tbody, shown.map(row));
  if (!workflows.length) {
    fill(tbody, h("tr", {}, h("td", { colspan: 7 }, "No workflows yet: create one with `slipway workflow create`.")));
  }
  note.textContent = workflows.length ? `${shown.length} of ${workflows.length} workflows shown` : "";
}

function renderRepositories(repositories) {
  const byId = Object.fromEntries(Object.values(heads).map((s) => [s.repository, s]));
  fill(reposBody, repositories.map((repo) => {
    const source = byId[repo.id];
    const fetch = source?.last_fetch;
    const error = source?.last_error;
    return h("tr", { "data-repository": repo.id },
      h("td", { "data-label": "Repository" }, h("strong", {}, repo.id), repo.type === "helm" ? " (Helm charts)" : ""),
      h("td", { "data-label": "URL and branch" }, h("code", { class: "clip" }, repo.url), repo.type === "git" ? ` · ${repo.branch}` : ""),
      h("td", { "data-label": "Last fetch" }, repo.type !== "git" ? h("span", { class: "muted" }, "—")
        : fetch ? [when(fetch.at), " ", h("code", {}, short(fetch.revision)), h("span", { class: "muted" }, ` (${fetch.how})`)]
        : h("span", { class: "muted" }, source ? "never" : "…")),
      h("td", { "data-label": "Last error" }, error
        ? [h("span", { class: "error-text" }, error.message), " ", when(error.at)]
        : h("span", { class: "muted" }, "none")));
  }));
  if (!repositories.length) fill(reposBody, h("tr", {}, h("td", { colspan: 4 }, "No repositories yet.")));
}

function fillRepositoryFilter(repositories) {
  const chosen = filters.repository.value;
  fill(filters.repository, h("option", { value: "" }, "All repositories"),
    repositories.filter((r) => r.type === "git").map((r) => h("option", { value: r.id }, r.id)));
  filters.repository.value = chosen;
}

let repositories = [];

async function load() {
  try {
    [workflows, repositories] = await Promise.all([api("/api/v1/workflows?live=true"), api("/api/v1/repositories")]);
    fillRepositoryFilter(repositories);
    readFilters();
    render();
    renderRepositories(repositories);
    await loadSources(10);
    document.body.setAttribute("data-loaded", "yes");
  } catch (error) {
    errorText(note, error);
  }
}

// A Git server that answers slowly gives its branch head later: ask again a few times for it.
async function loadSources(tries) {
  const sources = await api("/api/v1/sources");
  heads = Object.fromEntries(sources.map((s) => [s.repository, s]));
  render();
  renderRepositories(repositories);
  if (tries > 1 && sources.some((s) => s.checking)) {
    setTimeout(() => loadSources(tries - 1).catch(() => {}), 3000);
  }
}

function readFilters() {
  const params = new URLSearchParams(location.search);
  for (const [key, el] of Object.entries(filters)) if (params.has(key)) el.value = params.get(key);
}

function writeFilters() {
  const params = new URLSearchParams();
  for (const [key, el] of Object.entries(filters)) if (el.value) params.set(key, el.value);
  const query = params.toString();
  history.replaceState(null, "", query ? `?${query}` : location.pathname);
  render();
}

for (const el of Object.values(filters)) el.addEventListener("input", writeFilters);
document.getElementById("filters").addEventListener("submit", (e) => e.preventDefault());

const reload = debounce(load, 400);
follow(null, (name) => {
  if (["started", "finished", "status", "repository", "assessed"].includes(name)) reload();
});
load();
