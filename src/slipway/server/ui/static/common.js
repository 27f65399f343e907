// What every page of the dashboard shares: building elements (as text, never as HTML), calling
// the API with the session's CSRF token, times, badges, and the server's event stream.

export const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

// h("a", {href: "/x", class: "c"}, "text", child): every string becomes a text node.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// The page's only way to the server: same origin, the session cookie, JSON.
export async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (response.status === 401) {
    location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
    throw new ApiError(401, "your session has ended; log in again");
  }
  if (!response.ok) throw new ApiError(response.status, data?.error || `the server answered ${response.status}`);
  return data;
}

export const short = (sha) => (sha ? String(sha).slice(0, 12) : "—");

export function when(iso) {
  if (!iso) return h("span", { class: "muted" }, "never");
  const then = new Date(iso);
  const seconds = Math.round((Date.now() - then.getTime()) / 1000);
  let text;
  if (Number.isNaN(seconds)) text = iso;
  else if (seconds < 45) text = "just now";
  else if (seconds < 3600) text = `${Math.round(seconds / 60)} min ago`;
  else if (seconds < 86400) text = `${Math.round(seconds / 3600)} h ago`;
  else text = `${Math.round(seconds / 86400)} d ago`;
  return h("time", { datetime: iso, title: then.toLocaleString() }, text);
}

const STATUS = {
  synced: ["Synced", "good"],
  syncing: ["Syncing", "busy"],
  failed: ["Failed", "bad"],
  degraded: ["Degraded", "bad"],
  active: ["Not synced yet", "neutral"],
  succeeded: ["Succeeded", "good"],
  running: ["Running", "busy"],
  interrupted: ["Interrupted", "warn"],
  Healthy: ["Healthy", "good"],
  Progressing: ["Progressing", "busy"],
  Suspended: ["Suspended", "neutral"],
  Degraded: ["Degraded", "bad"],
  Unknown: ["Unknown", "neutral"],
  Missing: ["Missing", "warn"],
  Suspended: ["Suspended", "neutral"],
  refused: ["Refused", "warn"],
  Synced: ["Synced", "good"],
  OutOfSync: ["OutOfSync", "warn"],
  low: ["low", "neutral"],
  medium: ["medium", "warn"],
  high: ["high", "bad"],
  critical: ["critical", "bad"],
};

export function label(status) {
  return (STATUS[status] || [String(status ?? "unknown")])[0];
}

export function badge(status, text) {
  const [name, tone] = STATUS[status] || [String(status ?? "unknown"), "neutral"];
  return h("span", { class: `badge ${tone}` }, text ?? name);
}

// The server's events (Server-Sent Events); the browser reconnects by itself when the stream breaks.
export const EVENTS = ["started", "planned", "stage", "wave", "applied", "deleted", "hook", "health", "waiting",
  "finished", "status", "repository", "assessed", "dropped"];

export function follow(workflow, onEvent) {
  const url = "/api/v1/events" + (workflow ? `?workflow=${encodeURIComponent(workflow)}` : "");
  const source = new EventSource(url);
  for (const name of EVENTS) {
    source.addEventListener(name, (e) => {
      let data = {};
      try {
        data = JSON.parse(e.data);
      } catch {
        return;
      }
      onEvent(name, data);
    });
  }
  source.addEventListener("hello", () => document.body.setAttribute("data-events", "connected"));
  // The browser retries a broken stream by itself, but not one the server refused (an ended
  // session): ask who we are, which goes to the login form on 401, else follow again shortly.
  source.addEventListener("error", () => {
    if (source.readyState !== EventSource.CLOSED) return;
    document.body.setAttribute("data-events", "closed");
    setTimeout(() => api("/api/v1/whoami").then(() => follow(workflow, onEvent), () => {}), 3000);
  });
  return source;
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

export function errorText(el, error) {
  fill(el, h("p", { class: "error", role: "alert" }, error instanceof Error ? error.message : String(error)));
}
