// The overview: every workflow with Argo CD's three words (sync status, health, last operation),
// its path, destination and labels, and the repositories with their last fetch and last error.
// The filters are a GET form rendered by the server (the URL's query, so a view can be shared);
// this script passes that query on to the API, which filters with the same function. The list
// follows the event stream and reloads itself when something happens.
import { api, badge, debounce, errorText, fill, follow, h, short, when } from "./common.js";

const tbody = document.querySelector("#workflows tbody");
const reposBody = document.querySelector("#repositories tbody");
const counts = document.getElementById("counts");
const note = document.getElementById("list-note");
const form = document.getElementById("filters");
const query = new URLSearchParams(location.search);
const filtered = [...query].some(([k, v]) => v.trim() && ["sync", "health", "namespace", "cluster", "label", "repository", "q"].includes(k));

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

// The last sync, rollback or removal and its phase (Running, Succeeded, Failed, Refused).
function operationCell(wf) {
  const op = wf.operation;
  if (!op) return h("span", { class: "muted" }, "none yet");
  return [badge(op.phase.toLowerCase(), op.phase), " ", h("span", { class: "muted small" }, op.kind), " ",
    when(op.finished_at || op.started_at),
    op.phase !== "Succeeded" && op.message ? h("div", { class: "muted small clip", title: op.message }, op.message) : null];
}

function destinationCell(wf) {
  const labels = Object.entries(wf.labels || {});
  return [h("code", { class: "clip", title: wf.path || "/" }, wf.path || "/"),
    h("div", { class: "muted small" }, "namespace ", h("strong", {}, wf.namespace || "default"), " · ", wf.cluster || "in-cluster"),
    labels.length ? h("div", { class: "labels" }, labels.map(([k, v]) =>
      h("a", { class: "label-chip", href: `/?label=${encodeURIComponent(`${k}=${v}`)}` }, `${k}=${v}`))) : null];
}

function row(wf) {
  const link = h("a", { href: `/workflows/${encodeURIComponent(wf.id)}` }, wf.name || wf.id);
  const cells = [
    ["Workflow", [link, wf.name && wf.name !== wf.id ? h("div", { class: "muted small" }, wf.id) : null,
      h("div", { class: "muted small" }, wf.repository)]],
    ["Path and destination", destinationCell(wf)],
    ["Sync", syncCell(wf)],
    ["Health", healthCell(wf)],
    ["Last operation", operationCell(wf)],
    ["Revision", revisionCell(wf)],
    ["Auto-sync", wf.auto_sync ? h("span", { class: "badge good" }, "on") : h("span", { class: "badge neutral" }, "off")],
  ];
  return h("tr", { "data-workflow": wf.id }, cells.map(([name, value]) => h("td", { "data-label": name }, value)));
}

// How many of those shown are in each sync status and health: each a link to that filter.
function renderCounts() {
  const items = [h("li", {}, h("strong", {}, String(workflows.length)), workflows.length === 1 ? " workflow" : " workflows",
    filtered ? " match" : "")];
  for (const [key, pick] of [["sync", (wf) => wf.sync_status?.status || "Unknown"], ["health", (wf) => wf.health?.status || "Unknown"]]) {
    const by = {};
    for (const wf of workflows) by[pick(wf)] = (by[pick(wf)] || 0) + 1;
    for (const [word, n] of Object.entries(by)) {
      const q = new URLSearchParams(query);
      q.set(key, word);
      items.push(h("li", {}, h("a", { href: `/?${q}`, class: "count-link" }, badge(word, `${n} ${word}`))));
    }
  }
  fill(counts, items);
}

function render() {
  renderCounts();
  fill(tbody, workflows.map(row));
  if (!workflows.length) {
    fill(tbody, h("tr", {}, h("td", { colspan: 7 }, filtered ? "No workflow matches these filters."
      : "No workflows yet: create one with `slipway workflow create`.")));
  }
  note.textContent = filtered ? `${workflows.length} workflow(s) match the filters` : "";
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

let repositories = [];

async function load() {
  try {
    const list = new URLSearchParams(query);
    list.set("live", "true");
    [workflows, repositories] = await Promise.all([api(`/api/v1/workflows?${list}`), api("/api/v1/repositories")]);
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

// A choice made in a list applies at once; text applies on Enter (or the Filter button).
for (const select of form.querySelectorAll("select")) select.addEventListener("change", () => form.requestSubmit());

const reload = debounce(load, 400);
follow(null, (name) => {
  if (["started", "finished", "status", "repository", "assessed"].includes(name)) reload();
});
load();
