// The findings view: unfused chains, graph-break hazards, compile suggestions and op classes, as readable
// cards numbered as in the text report (chain #id, suggestion rank) with links to the graph, and each
// analysis's summary as small tables (per-phase counts) and labelled values.

import { fetchAnalyses } from "../api.js";
import { el, showError } from "../dom.js";
import { fieldLabel, fmtCount, fmtField } from "../format.js";
import { state } from "../state.js";
import { analysisCard } from "./findingcard.js";


const TITLES = { fusion: "Unfused chains", hazards: "Graph-break hazards", compile_suggestions: "Compile suggestions",
  op_classes: "Op classes" };
const PHASES = ["forward", "backward", "optimizer", "other"];

/**
 * An analysis's summary: keys with a phase in them ("predicted_kernels.forward", "by_phase.forward.view")
 * become a table of phase rows; the others a line of labelled values in their units.
 * @param {Object<string, any>} summary
 * @returns {HTMLElement[]}
 */
function summaryBlock(summary) {
  const cells = new Map(), rest = [];
  for (const [k, v] of Object.entries(summary)) {
    const parts = k.split(".");
    const p = parts.findIndex((x) => PHASES.includes(x));
    if (p < 0) { rest.push([k, v]); continue; }
    const col = [...parts.slice(0, p), ...parts.slice(p + 1)].filter((x) => x !== "by_phase").join(" ");
    if (!cells.has(parts[p])) cells.set(parts[p], {});
    cells.get(parts[p])[col] = v;
  }
  const cols = [...new Set([...cells.values()].flatMap(Object.keys))];
  const out = [];
  if (cells.size) {
    out.push(el("div", { class: "table-wrap" }, el("table", { class: "grid" },
      el("thead", {}, el("tr", {}, el("th", {}, "phase"), cols.map((c) => el("th", {}, fieldLabel(c))))),
      el("tbody", {}, [...cells].map(([phase, row]) => el("tr", {}, el("td", {}, phase),
        cols.map((c) => el("td", {}, row[c] === undefined ? "–" : fmtCount(row[c])))))))));
  }
  if (rest.length) out.push(el("p", { class: "meta" }, rest.map(([k, v]) => `${fieldLabel(k)}: ${fmtField(k, v)}`).join(" · ")));
  return out;
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
      if (!r.present) sec.append(el("p", { class: "muted" }, "not analysed in this step"));
      else if (r.error) sec.append(el("p", { class: "error" }, `analysis failed: ${r.error}`));
      else {
        sec.append(...summaryBlock(r.summary), ...r.items.map((item, i) => analysisCard(name, item, i)));
        if (!r.items.length && !Object.keys(r.summary).length) sec.append(el("p", { class: "muted" }, "nothing found"));
      }
      panel.append(sec);
    }
  } catch (e) {
    showError(panel, e);
  }
}
