// One finding as a readable card: its number (the report's), a title, module (the root named as such),
// phase, source line and saving, the rest of its fields in their units, a link that moves the graph to it,
// and its code snippet with a copy button. Used by the findings and overview views.

import { actionLink, el } from "../dom.js";
import { fieldLabel, fmtField, fmtModule, shortOp } from "../format.js";
import { goToModule, goToNode } from "../nav.js";

/** Fields a card shows in its title and meta line rather than in the list. */
const HEADLINE = new Set(["id", "number", "rank", "title", "module", "phase", "source", "est_time_saved_ns", "type", "node",
  "kind"]);

/**
 * Copy `text` to the clipboard (through a selected textarea where the Clipboard API is refused), then say so.
 * @param {string} text
 * @param {HTMLElement} button
 */
async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const t = el("textarea", {}, text);
    document.body.append(t);
    t.select();
    document.execCommand("copy");
    t.remove();
  }
  button.textContent = "copied";
}

/**
 * A finding as the card shows it.
 * @typedef {{number: string, title: string, fields: Object<string, any>, lists?: Object<string, any[]>,
 *   nodes?: number[], snippet?: (string|null)}} Finding
 */

/**
 * @param {Finding} f
 * @returns {HTMLElement}
 */
export function findingCard(f) {
  const x = f.fields;
  const where = x.node ?? (f.nodes && f.nodes.length ? f.nodes[0] : null);
  const meta = [x.module !== undefined ? `module ${fmtModule(x.module)}${x.type ? " : " + x.type : ""}` : "",
    x.phase ? `phase ${x.phase}` : "", x.source ? `at ${x.source}` : "",
    x.est_time_saved_ns !== undefined ? `saves ~${fmtField("est_time_saved_ns", x.est_time_saved_ns)} per step` : ""].filter(Boolean);
  const rest = Object.entries(x).filter(([k, v]) => !HEADLINE.has(k) && v !== null && v !== "");
  const c = el("div", { class: "card finding", "data-number": f.number },
    el("div", {}, el("span", { class: "num" }, f.number), el("span", { class: "title" }, f.title), " ",
      where !== null ? actionLink("show in graph", () => goToNode(where))
        : x.module !== undefined ? actionLink("show in graph", () => goToModule(x.module, x.phase || "forward")) : ""),
    meta.length ? el("div", { class: "meta" }, meta.map((m) => el("span", {}, m))) : "",
    rest.length ? el("div", { class: "meta" }, rest.map(([k, v]) => el("span", {}, `${fieldLabel(k)} ${fmtField(k, v)}`))) : "",
    Object.entries(f.lists || {}).filter(([, v]) => v.length).map(([k, v]) =>
      el("div", { class: "meta" }, `${fieldLabel(k)}: ${k === "modules" ? v.map(fmtModule).join(", ") : v.join(", ")}`)));
  if (f.nodes && f.nodes.length > 1) {
    c.append(el("div", { class: "meta" }, `${f.nodes.length} nodes: `,
      f.nodes.slice(0, 24).map((idx) => [actionLink(`#${idx}`, () => goToNode(idx)), " "]).flat(),
      f.nodes.length > 24 ? "…" : ""));
  }
  if (f.snippet) c.append(snippetBlock(f.snippet));
  return c;
}

/** @param {string} text @returns {HTMLElement} code with a copy button */
function snippetBlock(text) {
  const btn = el("button", { class: "copy" }, "copy");
  btn.onclick = () => copyText(text, btn);
  return el("div", { class: "snippet" }, btn, el("pre", {}, text));
}

/**
 * One of the step's ranked findings (the overview route's `findings`): its number, shared with the text
 * report and the graph, title, where (module, phase, source line), saving and detail, and a link to its
 * place in the graph (its node, else its module).
 * @param {{number: number, title: string, saving: string, module: (string|null), module_label: string,
 *   phase: (string|null), source: (string|null), node: (number|null), detail?: (string|null),
 *   snippet?: (string|null)}} f
 * @returns {HTMLElement}
 */
export function rankedCard(f) {
  const link = f.node !== null ? actionLink("show in graph", () => goToNode(f.node))
    : f.module !== null ? actionLink("show in graph", () => goToModule(f.module, f.phase || "forward")) : "";
  const meta = [f.module_label, f.phase ? `phase ${f.phase}` : "", f.source ? `at ${f.source}` : "", f.saving]
    .filter(Boolean).map((m) => el("span", {}, m));
  return el("div", { class: "card finding", "data-number": f.number, "data-kind": f.kind },
    el("div", {}, el("span", { class: "num" }, `${f.number}.`), el("span", { class: "title" }, f.title), " ", link),
    el("div", { class: "meta" }, meta), f.detail ? el("div", { class: "meta" }, f.detail) : "",
    f.snippet ? snippetBlock(f.snippet) : "");
}

/**
 * A result item as a card: numbered like the report, titled by what it is.
 * @param {string} name the analysis
 * @param {Object<string, any>} item
 * @param {number} i its position
 * @returns {HTMLElement}
 */
export function analysisCard(name, item, i) {
  const f = item.fields;
  const ops = (item.lists.ops || []).map(shortOp).join(" + ");
  if (name === "fusion") {
    return findingCard({ number: `#${f.id ?? i}`, title: `unfused ${ops} (${f.eager_kernels} → ${f.fused_kernels} kernels)`,
      fields: f, lists: { modules: item.lists.modules || [] }, nodes: item.nodes });
  }
  if (name === "compile_suggestions") {
    return findingCard({ number: `${f.rank ?? i + 1}.`, title: `compile ${f.module === "" ? "the whole model" : f.module}`,
      fields: f, lists: item.lists, nodes: item.nodes, snippet: item.snippet });
  }
  return findingCard({ number: `#${f.id ?? i}`, title: f.reason || f.kind || f.op || name.replace(/_/g, " "), fields: f,
    lists: item.lists, nodes: item.nodes, snippet: item.snippet });
}
