// The diff view: what changed from a base step (by default the previous one) to the selected step, by
// stable node key. Tensor changes come first: an op whose input shape, dtype or device changed is what
// makes torch.compile recompile. Then the ops added or removed. An empty diff says so.

import { fetchDiff } from "../api.js";
import { el, showError, table } from "../dom.js";
import { fieldLabel, fmtCount, fmtField } from "../format.js";
import { goToNode } from "../nav.js";
import { currentRun, state } from "../state.js";

/** The tensor-change table's columns: what changed, then before and after. */
const SHAPE_COLUMNS = [["key", "node key"], ["what", "what changed"], ["inputs_before", "inputs before"],
  ["inputs_after", "inputs after"], ["outputs_before", "outputs before"], ["outputs_after", "outputs after"]];

/**
 * A table of the added or removed ops, each field in its unit.
 * @param {Object<string, any>[]} rows
 * @returns {HTMLElement}
 */
function changesTable(rows) {
  const keys = Object.keys(rows[0]);
  return table("diff-table", keys.map((k) => [k, fieldLabel(k), (v) => fmtField(k, v)]), rows, null, {});
}

/**
 * The base step selector: every earlier step of the run (and the step itself, for an empty diff).
 * @returns {HTMLSelectElement}
 */
function baseSelect() {
  const earlier = currentRun().steps.filter((s) => s <= state.step);
  const sel = el("select", { id: "diff-base" }, earlier.map((s) => el("option", { value: s }, `step ${s}`)));
  sel.value = earlier.length > 1 ? earlier[earlier.length - 2] : state.step;
  return sel;
}

/** @param {HTMLElement} panel */
export function diffView(panel) {
  const base = baseSelect();
  const out = el("div", {});
  const go = async () => {
    try {
      const d = await fetchDiff(state, Number(base.value));
      const shapes = d.shape_changes || [];
      out.replaceChildren(
        el("p", { id: "diff-summary" }, `step ${d.base} → step ${d.step}: ${d.message}`,
          el("span", { class: "muted" }, ` · ${fmtCount(d.nodes_a)} → ${fmtCount(d.nodes_b)} nodes, ${fmtCount(d.unchanged)} ` +
            "unchanged by stable node key")),
        ...(shapes.length ? [el("h3", {}, "shape, dtype and device changes (what makes torch.compile recompile)"),
          table("diff-shapes", SHAPE_COLUMNS, shapes, null, {}, (r) => goToNode(r.idx)),
          d.shape_changes_truncated ? el("p", { class: "muted" }, `the first ${fmtCount(shapes.length)} of ` +
            `${fmtCount(d.shape_changes_total)}`) : ""] : []),
        ...(d.changes.length ? [el("h3", {}, "ops added or removed"), changesTable(d.changes)] : []));
    } catch (e) {
      showError(out, e);
    }
  };
  base.onchange = go;
  panel.append(el("div", { class: "toolbar" }, el("label", {}, "compare with ", base),
    el("span", { class: "muted" }, `the selected step ${state.step} (change it in the header)`)), out);
  return go();
}
