// The diff view: what changed between two steps (by default the previous one and the selected one), by
// stable node key; shape, dtype and device changes (what makes torch.compile recompile) come first when
// the diff route reports them, and an empty diff says so.

import { fetchDiff } from "../api.js";
import { el, showError, table } from "../dom.js";
import { fieldLabel, fmtCount, fmtField, fmtModule } from "../format.js";
import { currentRun, state } from "../state.js";

/**
 * A table of whatever rows a diff section holds, each field in its unit.
 * @param {string} id
 * @param {Object<string, any>[]} rows
 * @returns {HTMLElement}
 */
function rowsTable(id, rows) {
  const keys = Object.keys(rows[0]);
  return table(id, keys.map((k) => [k, fieldLabel(k), (v) => (k === "module" ? fmtModule(v) : fmtField(k, v))]), rows, null, {});
}

/** @param {HTMLElement} panel */
export function diffView(panel) {
  const steps = currentRun().steps;
  const stepSelect = (id) => el("select", { id }, steps.map((s) => el("option", { value: s }, s)));
  const a = stepSelect("diff-a"), b = stepSelect("diff-b");
  const at = steps.indexOf(state.step);
  a.value = steps[Math.max(0, at - 1)];
  b.value = state.step;
  const out = el("div", {});
  const go = async () => {
    try {
      const d = await fetchDiff(state, a.value, b.value);
      const shapes = d.shape_changes || [];
      const same = !d.added && !d.removed && !shapes.length;
      out.replaceChildren(el("p", { id: "diff-summary" }, same
        ? `no difference: steps ${a.value} and ${b.value} run the same ${fmtCount(d.nodes_b)} ops with the same shapes`
        : `step ${a.value}: ${fmtCount(d.nodes_a)} nodes → step ${b.value}: ${fmtCount(d.nodes_b)} nodes; ` +
          `${shapes.length ? `${fmtCount(shapes.length)} shape/dtype/device changes, ` : ""}` +
          `${fmtCount(d.added)} added, ${fmtCount(d.removed)} removed, ${fmtCount(d.unchanged)} unchanged (by stable node key)`),
      shapes.length ? [el("h3", {}, "shape, dtype and device changes (these make torch.compile recompile)"), rowsTable("diff-shapes", shapes)] : "",
      d.changes.length ? [el("h3", {}, "ops added or removed"), rowsTable("diff-table", d.changes)] : "");
    } catch (e) {
      showError(out, e);
    }
  };
  a.onchange = b.onchange = go;
  panel.append(el("div", { class: "toolbar" }, el("label", {}, "base step ", a), el("label", {}, "compared step ", b)), out);
  go();
}
