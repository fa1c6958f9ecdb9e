// The op table: grouped by op, op + input shape, or module; sorted by any column on the server. A row
// moves the graph to the op's first call (or to the module); device columns show only when recorded.

import { fetchOps } from "../api.js";
import { el, presentColumns, showError, table } from "../dom.js";
import { fmtBytes, fmtCount, fmtFlop, fmtModule, fmtNs } from "../format.js";
import { goToModule, goToNode } from "../nav.js";
import { search } from "../search.js";
import { state } from "../state.js";

/** @typedef {import("../dom.js").Column} Column */

const DEVICE = ["device_self_ns", "device_total_ns"];

/** @type {Column[]} */
const METRIC_COLUMNS = [["calls", "calls", fmtCount], ["host_self_ns", "host self", fmtNs], ["host_total_ns", "host total", fmtNs],
  ["device_self_ns", "device self", fmtNs], ["device_total_ns", "device total", fmtNs], ["mean_ns", "mean", fmtNs],
  ["min_ns", "min", fmtNs], ["max_ns", "max", fmtNs], ["alloc_bytes", "allocated", fmtBytes],
  ["flops", "FLOPs", fmtFlop], ["phases", "phases"]];

/** @returns {Column[]} the columns that name a row under the current grouping */
function groupColumns() {
  if (state.opsGroup === "module") return [["module", "module", fmtModule]];
  if (state.opsGroup === "op_shape") return [["op", "op"], ["input_shapes", "input shapes"]];
  return [["op", "op"]];
}

/**
 * Move the graph to a row's place: the module, or the first call of the op.
 * @param {Object<string, any>} row
 * @param {number} nodeCount
 */
async function openRow(row, nodeCount) {
  if (state.opsGroup === "module") { goToModule(row.module ?? "-"); return; }
  const hit = (await search(row.op, nodeCount, 400)).find((h) => h.op === row.op && h.idx !== null);
  if (hit) goToNode(hit.idx);
}

/**
 * @param {HTMLElement} panel
 * @returns {Promise<void>}
 */
export async function opsView(panel) {
  const rerender = () => { panel.replaceChildren(); opsView(panel); };
  const groupSel = el("select", { id: "sel-opgroup" }, el("option", { value: "op" }, "op"),
    el("option", { value: "op_shape" }, "op + input shape"), el("option", { value: "module" }, "module"));
  groupSel.value = state.opsGroup;
  groupSel.onchange = () => { state.opsGroup = groupSel.value; rerender(); };
  const holder = el("div", {}, "loading…");
  panel.append(el("div", { class: "toolbar" }, el("label", {}, "group by ", groupSel),
    el("span", { class: "muted" }, "click a column to sort, a row to see it in the graph; host self = total for leaf aten ops")), holder);
  try {
    const d = await fetchOps(state, { group: state.opsGroup, sort: state.opsSort, order: state.opsOrder });
    if (d.pending) {
      holder.replaceChildren(el("p", { class: "muted" }, `${d.message}…`));
      setTimeout(() => { if (state.tab === "ops" && panel.isConnected) rerender(); }, 1000);
      return;
    }
    const onSort = (key) => {
      state.opsOrder = state.opsSort === key && state.opsOrder === "desc" ? "asc" : "desc";
      state.opsSort = key;
      rerender();
    };
    const nodes = d.rows.reduce((s, r) => s + (r.calls || 0), 0);
    const columns = presentColumns([...groupColumns(), ...METRIC_COLUMNS], d.rows, DEVICE);
    holder.replaceChildren(el("p", { class: "muted" }, `${fmtCount(d.total)} rows${d.total > d.rows.length ? `, first ${d.rows.length} shown` : ""}`),
      table("op-table", columns, d.rows, onSort, { key: d.sort, order: d.order }, (r) => openRow(r, nodes)));
  } catch (e) {
    showError(holder, e);
  }
}
