// The diff view: what changed in the graph's structure between two steps, by stable node key.

import { fetchDiff } from "../api.js";
import { el, showError, table } from "../dom.js";
import { currentRun, state } from "../state.js";

/** @param {HTMLElement} panel */
export function diffView(panel) {
  const steps = currentRun().steps;
  const stepSelect = (id) => el("select", { id }, steps.map((s) => el("option", { value: s }, s)));
  const a = stepSelect("diff-a"), b = stepSelect("diff-b");
  a.value = steps[0];
  b.value = state.step;
  const out = el("div", {});
  const go = async () => {
    try {
      const d = await fetchDiff(state, a.value, b.value);
      out.replaceChildren(el("p", { id: "diff-summary" }, `step ${a.value}: ${d.nodes_a} nodes → step ${b.value}: ${d.nodes_b} nodes; ` +
        `${d.added} added, ${d.removed} removed, ${d.unchanged} unchanged (by stable node key)`),
      table("diff-table", [["change", "change"], ["module", "module", (v) => (v === null ? "-" : v || "(root)")], ["phase", "phase"],
        ["op", "op"], ["count_a", `in step ${a.value}`], ["count_b", `in step ${b.value}`], ["first_key", "first differing key"]],
      d.changes, null, {}));
    } catch (e) {
      showError(out, e);
    }
  };
  a.onchange = b.onchange = go;
  panel.append(el("div", { class: "toolbar" }, el("label", {}, "step A ", a), el("label", {}, "step B ", b)), out);
  go();
}
