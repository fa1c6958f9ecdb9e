// The analyses view: unfused chains, graph-break hazards, compile suggestions (with a copy button for
// each snippet) and op classes, as cards whose nodes link to the inspector.

import { fetchAnalyses } from "../api.js";
import { actionLink, el, showError } from "../dom.js";
import { state } from "../state.js";
import { selectNode } from "./inspector.js";

const TITLES = { fusion: "Unfused chains", hazards: "Graph-break hazards", compile_suggestions: "Compile suggestions",
  op_classes: "Op classes" };

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
 * One finding: its fields, lists, up to 30 node links and its code snippet.
 * @param {Object<string, any>} item
 * @param {number} i its position in its analysis
 * @returns {HTMLElement}
 */
function card(item, i) {
  const c = el("div", { class: "card" }, el("strong", {}, `${i + 1}. `),
    Object.entries(item.fields).map(([k, v]) => el("span", { class: "field" }, `${k}: ${v} `)),
    Object.entries(item.lists).map(([k, v]) => el("div", { class: "field" }, `${k}: ${v.join(", ")}`)));
  if (item.nodes.length) {
    c.append(el("div", {}, "nodes: ", item.nodes.slice(0, 30).map((idx) => actionLink(`#${idx} `, () => selectNode(idx)))));
  }
  if (item.snippet) {
    const btn = el("button", { class: "copy" }, "copy");
    btn.onclick = () => copyText(item.snippet, btn);
    c.append(el("div", { class: "snippet" }, btn, el("pre", {}, item.snippet)));
  }
  return c;
}

/**
 * @param {HTMLElement} panel
 * @returns {Promise<void>}
 */
export async function analysesView(panel) {
  try {
    const a = await fetchAnalyses(state);
    for (const [name, title] of Object.entries(TITLES)) {
      const r = a[name];
      const sec = el("section", { class: "analysis", id: `analysis-${name}` }, el("h3", {}, title));
      if (!r.present) sec.append(el("p", { class: "muted" }, "no analysis results"));
      else if (r.error) sec.append(el("p", { class: "error" }, `analysis failed: ${r.error}`));
      else {
        if (Object.keys(r.summary).length) sec.append(el("p", {}, Object.entries(r.summary).map(([k, v]) => `${k}: ${v}`).join(" · ")));
        sec.append(...r.items.map(card));
        if (!r.items.length && !Object.keys(r.summary).length) sec.append(el("p", { class: "muted" }, "nothing found"));
      }
      panel.append(sec);
    }
  } catch (e) {
    showError(panel, e);
  }
}
