// The module tree: per module (inclusive of submodules), time by phase, memory, op count and FLOPs. Rows
// keep the hierarchy (indented, ▸/▾ to open and close), siblings sort by the clicked column, and a row
// moves the graph to that module.

import { fetchModules } from "../api.js";
import { el, showError, table } from "../dom.js";
import { fmtBytes, fmtCount, fmtFlop, fmtModule, fmtNs } from "../format.js";
import { goToModule } from "../nav.js";
import { state } from "../state.js";

/** @param {string} m @returns {string} the enclosing module ("" for top-level modules and the root) */
const parentOf = (m) => (m.includes(".") ? m.slice(0, m.lastIndexOf(".")) : "");

/** @param {string} m @returns {number} nesting depth (the root model: 0) */
const depth = (m) => (m === "" ? 0 : m.split(".").length);

/**
 * The rows in tree order: each open module followed by its children, siblings sorted by `state.modulesSort`.
 * @param {Object<string, any>[]} rows
 * @returns {Object<string, any>[]}
 */
function treeOrder(rows) {
  const children = new Map();
  for (const r of rows) {
    if (r.module === "") continue;
    const p = parentOf(r.module);
    if (!children.has(p)) children.set(p, []);
    children.get(p).push(r);
  }
  const { key, order } = state.modulesSort;
  const cmp = (a, b) => {
    const x = a[key], y = b[key];
    const c = typeof x === "string" ? String(x).localeCompare(String(y)) : (x ?? -1) - (y ?? -1);
    return order === "asc" ? c : -c;
  };
  const out = [];
  const walk = (r) => {
    const kids = (children.get(r.module) || []).sort(cmp);
    out.push({ ...r, hasChildren: kids.length > 0 });
    if (state.modulesOpen.has(r.module)) kids.forEach(walk);
  };
  const root = rows.find((r) => r.module === "");
  if (root) walk(root); else (children.get("") || []).sort(cmp).forEach(walk);
  return out;
}

/**
 * The tree cell: indentation by depth, the open/close toggle, the module's last name.
 * @param {string} m
 * @param {Object<string, any>} r
 * @param {() => void} redraw
 * @returns {HTMLElement}
 */
function nameCell(m, r, redraw) {
  const open = state.modulesOpen.has(m);
  const toggle = el("span", { class: "tree-toggle" }, r.hasChildren ? (open ? "▾" : "▸") : "");
  toggle.onclick = (ev) => {
    ev.stopPropagation();
    if (open) state.modulesOpen.delete(m); else state.modulesOpen.add(m);
    redraw();
  };
  return el("span", { style: `padding-left:${depth(m) * 14}px`, title: fmtModule(m) }, toggle,
    m === "" ? fmtModule("") : m.split(".").pop());
}

/**
 * @param {HTMLElement} panel
 * @returns {Promise<void>}
 */
export async function modulesView(panel) {
  try {
    const rows = (await fetchModules(state)).map((r) => ({
      ...r, total_ns: (r.forward_ns || 0) + (r.backward_ns || 0) + (r.optimizer_ns || 0) + (r.other_ns || 0) }));
    const holder = el("div", {});
    const redraw = () => {
      const onSort = (key) => {
        const s = state.modulesSort;
        state.modulesSort = { key, order: s.key === key && s.order === "desc" ? "asc" : "desc" };
        redraw();
      };
      holder.replaceChildren(table("module-table", [["module", "module", (m, r) => nameCell(m, r, redraw)],
        ["type", "type"], ["total_ns", "total", fmtNs], ["forward_ns", "forward", fmtNs], ["backward_ns", "backward", fmtNs],
        ["optimizer_ns", "optimizer", fmtNs], ["alloc_bytes", "allocated", fmtBytes],
        ["saved_activation_bytes", "activations saved", fmtBytes], ["nodes", "ops", fmtCount], ["flops", "FLOPs", fmtFlop]],
      treeOrder(rows), onSort, state.modulesSort, (r) => goToModule(r.module)));
    };
    const all = () => { for (const r of rows) state.modulesOpen.add(r.module); redraw(); };
    const none = () => { state.modulesOpen = new Set([""]); redraw(); };
    panel.append(el("div", { class: "toolbar" }, el("button", { onclick: all }, "expand all"),
      el("button", { onclick: none }, "collapse all"),
      el("span", { class: "muted" }, "inclusive of submodules; click a column to sort siblings, a row to see the module in the graph")),
    holder);
    redraw();
  } catch (e) {
    showError(panel, e);
  }
}
