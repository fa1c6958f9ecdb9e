// The ranks view: every rank's summary of the selected step, side by side.

import { fetchRanks } from "../api.js";
import { el, showError } from "../dom.js";
import { fmtBytes, fmtCount, fmtNs } from "../format.js";
import { state } from "../state.js";

const METRICS = [["nodes", "nodes", (v) => v], ["time_ns", "op time", fmtNs], ["wall_ns", "wall", fmtNs],
  ["peak_memory_bytes", "peak memory", fmtBytes], ["flops", "FLOPs", fmtCount],
  ["backward_linked", "backward linked", (v) => v], ["error", "error", (v) => v ?? ""]];

/**
 * @param {HTMLElement} panel
 * @returns {Promise<void>}
 */
export async function ranksView(panel) {
  try {
    const d = await fetchRanks(state);
    const head = el("tr", {}, el("th", {}, "metric"), d.ranks.map((r) => el("th", {}, `rank ${r.rank}`)));
    const rows = METRICS.map(([k, label, f]) => el("tr", {}, el("th", {}, label), d.ranks.map((r) => el("td", {}, f(r[k])))));
    panel.append(el("p", { class: "muted" }, `step ${d.step}: ${d.ranks.length} rank(s) side by side`),
      el("table", { id: "rank-table", class: "grid" }, el("thead", {}, head), el("tbody", {}, rows)));
  } catch (e) {
    showError(panel, e);
  }
}
