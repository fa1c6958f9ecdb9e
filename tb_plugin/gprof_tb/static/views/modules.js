// The module table: per module (inclusive of submodules), time by phase, memory, op count and FLOPs.

import { fetchModules } from "../api.js";
import { showError, table } from "../dom.js";
import { fmtBytes, fmtCount, fmtNs } from "../format.js";
import { state } from "../state.js";

/** A module's last name, indented by its depth. @param {string} v @returns {string} */
const moduleName = (v) => (v === "" ? "(root)" : "  ".repeat(v.split(".").length) + v.split(".").pop());

/**
 * @param {HTMLElement} panel
 * @returns {Promise<void>}
 */
export async function modulesView(panel) {
  try {
    const rows = await fetchModules(state);
    panel.append(table("module-table", [["module", "module", moduleName], ["type", "type"], ["forward_ns", "forward", fmtNs],
      ["backward_ns", "backward", fmtNs], ["optimizer_ns", "optimizer", fmtNs], ["alloc_bytes", "allocated", fmtBytes],
      ["saved_activation_bytes", "activations saved", fmtBytes], ["nodes", "ops"], ["flops", "FLOPs", fmtCount]],
    rows, null, {}));
  } catch (e) {
    showError(panel, e);
  }
}
