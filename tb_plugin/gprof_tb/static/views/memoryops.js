// Below the memory curve: memory by operator over a node range (the whole step, or up to the peak), from
// the memory_ops route; a row moves the graph to the node where that op had the most memory live.

import { fetchMemoryOps } from "../api.js";
import { el, showError, table } from "../dom.js";
import { fmtBytes, fmtCount, shortOp } from "../format.js";
import { goToNode } from "../nav.js";
import { state } from "../state.js";

/** @type {import("../dom.js").Column[]} */
const COLUMNS = [["op", "op", shortOp], ["calls", "calls", fmtCount], ["alloc_bytes", "allocated", fmtBytes],
  ["freed_bytes", "freed", fmtBytes], ["max_live_bytes", "most live", fmtBytes], ["peak_node", "at node", (v) => (v === null ? "–" : `#${v}`)]];

/**
 * The section: range inputs, presets and the table.
 * @param {{points: number[][], peak_node: (number|null)}} m the memory route's answer (for the range's ends)
 * @returns {Promise<HTMLElement>}
 */
export async function memoryOpsSection(m) {
  const last = m.points[m.points.length - 1][0];
  const num = (id, v) => el("input", { id, type: "number", min: 0, max: last, value: v, style: "width:7em" });
  const start = num("memops-start", 0), end = num("memops-end", last);
  const out = el("div", { id: "memory-ops" });
  const load = async () => {
    try {
      const d = await fetchMemoryOps(state, Number(start.value), Number(end.value));
      const rows = d.rows || [];
      out.replaceChildren(el("p", { class: "muted" }, `${fmtCount(d.total)} ops allocated or freed in nodes #${d.start}–#${d.end}` +
        `${d.truncated ? `; the top ${fmtCount(rows.length)} by bytes allocated` : ""}; a row shows the node where that op ` +
        "had the most memory live"),
      rows.length ? table("memory-ops-table", COLUMNS, rows, null, {}, (r) => r.peak_node !== null && goToNode(r.peak_node))
        : el("p", { class: "muted" }, "no allocations in this range"));
    } catch (e) {
      showError(out, e);
    }
  };
  const preset = (text, a, b) => el("button", { onclick: () => { start.value = a; end.value = b; load(); } }, text);
  start.onchange = end.onchange = load;
  const sec = el("section", {}, el("h3", {}, "by operator"),
    el("div", { class: "toolbar" }, el("label", {}, "nodes from #", start), el("label", {}, "to #", end),
      preset("whole step", 0, last), m.peak_node !== null ? preset("up to the peak", 0, m.peak_node) : ""), out);
  await load();
  return sec;
}
