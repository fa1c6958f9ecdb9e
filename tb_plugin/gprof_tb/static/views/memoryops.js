// Below the memory curve: memory by operator over a node range (the whole step, or up to the peak), from
// the memory_ops route. Columns come from the route's rows, each in its unit.

import { fetchMemoryOps } from "../api.js";
import { el, showError, table } from "../dom.js";
import { fieldLabel, fmtField } from "../format.js";
import { goToNode } from "../nav.js";
import { state } from "../state.js";

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
      const keys = rows.length ? Object.keys(rows[0]).filter((k) => typeof rows[0][k] !== "object" || rows[0][k] === null) : [];
      out.replaceChildren(rows.length ? table("memory-ops-table", keys.map((k) => [k, fieldLabel(k), (v) => fmtField(k, v)]),
        rows, null, {}, (r) => (r.first_node ?? r.peak_node ?? r.idx) !== undefined && goToNode(r.first_node ?? r.peak_node ?? r.idx))
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
