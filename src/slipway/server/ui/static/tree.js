// The resource tree's action buttons: confirm (with the action's parameters), then post to the API.
import { api, fill, h } from "./common.js";

const main = document.querySelector("main");
const workflow = main.dataset.workflow;
const dialog = document.getElementById("action-dialog");
const result = document.getElementById("action-result");
let chosen = null;

function ask(button) {
  const params = JSON.parse(button.dataset.params || "[]");
  chosen = { resource: button.dataset.resource, namespace: button.dataset.namespace || undefined, action: button.dataset.action, params };
  fill(document.getElementById("action-what"), "Run ", h("strong", {}, chosen.action), " on ",
    h("strong", {}, chosen.resource), chosen.namespace ? ` in namespace ${chosen.namespace}` : "", "?");
  fill(document.getElementById("action-params"), params.map((p) => h("div", {},
    h("label", { for: `param-${p.name}` }, p.name + (p.description ? ` (${p.description})` : "")),
    h("input", { id: `param-${p.name}`, name: p.name, value: p.default ?? "", inputmode: p.type === "integer" ? "numeric" : null, required: true }))));
  fill(document.getElementById("action-error"));
  dialog.showModal();
}

if (dialog) {
  document.querySelectorAll("button[data-action]").forEach((b) => b.addEventListener("click", () => ask(b)));
  document.getElementById("action-cancel").addEventListener("click", () => dialog.close());
  document.getElementById("action-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const confirm = document.getElementById("action-confirm");
    const params = {};
    for (const p of chosen.params) params[p.name] = document.getElementById(`param-${p.name}`).value;
    confirm.disabled = true;
    try {
      const record = await api(`/api/v1/workflows/${encodeURIComponent(workflow)}/actions`, {
        method: "POST",
        body: { resource: chosen.resource, namespace: chosen.namespace, action: chosen.action, params },
      });
      dialog.close();
      const tone = record.status === "succeeded" ? "good" : "bad";
      fill(result, h("div", { class: `done ${tone}` }, `${record.status}: ${record.message} `,
        h("a", { href: location.pathname }, "Refresh the tree")));
    } catch (e) {
      fill(document.getElementById("action-error"), e.message);
    } finally {
      confirm.disabled = false;
    }
  });
}
document.body.setAttribute("data-loaded", "yes");
