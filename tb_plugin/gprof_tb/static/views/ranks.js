// The ranks view: every rank's summary of the selected step side by side, each value in its unit.

import { fetchRanks } from "../api.js";
import { el, showError } from "../dom.js";
import { fmtBytes, fmtFlop, fmtNs, fmtPct, fmtCount } from "../format.js";
import { state } from "../state.js";

/** Rows of the side-by-side table: field, label, formatter. */
const METRICS = [["nodes", "nodes", fmtCount], ["time_ns", "op time", fmtNs], ["wall_ns", "wall time", fmtNs],
  ["device_time_ns", "device time", fmtNs], ["peak_memory_bytes", "peak memory", fmtBytes], ["flops", "FLOPs", fmtFlop],
  ["module_coverage", "ops inside modules", fmtPct], ["backward_linked", "backward linked", fmtPct], ["error", "error", (v) => v ?? ""]];

/**
 * @param {HTMLElement} panel
 * @returns {Promise<void>}
 */
export async function ranksView(panel) {
  try {
    const d = await fetchRanks(state);
    const shown = METRICS.filter(([k]) => d.ranks.some((r) => r[k] !== null && r[k] !== undefined));
    const head = el("tr", {}, el("th", {}, "metric"), d.ranks.map((r) => el("th", {}, `rank ${r.rank}`)));
    const rows = shown.map(([k, label, f]) => el("tr", {}, el("th", {}, label), d.ranks.map((r) => el("td", {}, f(r[k])))));
    panel.append(el("p", { class: "muted" }, `step ${d.step}: ${d.ranks.length} rank${d.ranks.length > 1 ? "s" : ""} side by side`),
      el("div", { class: "table-wrap" }, el("table", { id: "rank-table", class: "grid" }, el("thead", {}, head), el("tbody", {}, rows))));
  } catch (e) {
    showError(panel, e);
  }
}
