// The op table: grouped by op, op + input shape, or module; sorted by any column on the server.

import { fetchOps } from "../api.js";
import { el, showError, table } from "../dom.js";
import { fmtBytes, fmtCount, fmtNs } from "../format.js";
import { state } from "../state.js";

/** @typedef {import("../dom.js").Column} Column */

/** @type {Column[]} */
const METRIC_COLUMNS = [["calls", "calls"], ["host_self_ns", "host self", fmtNs], ["host_total_ns", "host total", fmtNs],
  ["device_self_ns", "device self", fmtNs], ["device_total_ns", "device total", fmtNs], ["mean_ns", "mean", fmtNs],
  ["min_ns", "min", fmtNs], ["max_ns", "max", fmtNs], ["alloc_bytes", "allocated", fmtBytes],
  ["flops", "FLOPs", fmtCount], ["phases", "phases"]];

/** @returns {Column[]} the columns that name a row under the current grouping */
function groupColumns() {
  if (state.opsGroup === "module") return [["module", "module", (v) => (v === null ? "(outside)" : v || "(root)")]];
  if (state.opsGroup === "op_shape") return [["op", "op"], ["input_shapes", "input shapes"]];
  return [["op", "op"]];
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
    el("span", { class: "muted" }, "click a column to sort; host self = total for leaf aten ops")), holder);
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
    holder.replaceChildren(el("p", { class: "muted" }, `${d.total} rows${d.total > d.rows.length ? `, first ${d.rows.length} shown` : ""}`),
      table("op-table", [...groupColumns(), ...METRIC_COLUMNS], d.rows, onSort, { key: d.sort, order: d.order }));
  } catch (e) {
    showError(holder, e);
  }
}
