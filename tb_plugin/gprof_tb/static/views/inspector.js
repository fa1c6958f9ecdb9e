// The inspector pane beside every view: one node in full, or a group of same-op nodes in brief.

import { fetchNode } from "../api.js";
import { actionLink, el, showError } from "../dom.js";
import { fmtBytes, fmtCount, fmtNs, fmtShapes } from "../format.js";
import { state } from "../state.js";

/** @typedef {import("../api.js").GraphBox} GraphBox */

const pane = () => document.getElementById("inspector");

/**
 * Fetch node `idx` of the selected step and show it; its neighbours and partners link to themselves.
 * @param {number} idx
 * @returns {Promise<void>}
 */
export async function selectNode(idx) {
  state.selected = idx;
  try {
    const n = await fetchNode(state, idx);
    const row = (k, v) => el("tr", {}, el("th", {}, k), el("td", {}, v));
    const link = (p) => (p ? actionLink(`#${p.idx} ${p.op} (${p.phase})`, () => selectNode(p.idx)) : "–");
    const links = (ps) => (ps.length ? el("span", {}, ps.map((p) => el("div", {}, link(p)))) : "–");
    const analysisList = (items, what) => (items.length ? el("ul", {}, items.map((i) =>
      el("li", {}, `${what} ${i.number + 1}: `, Object.entries(i.fields).map(([k, v]) => `${k}=${v}`).join(", ")))) : "–");
    pane().replaceChildren(
      el("h3", { id: "insp-op" }, n.op),
      el("table", { class: "kv", id: "insp-table" },
        row("node", `#${n.idx}`), row("key", n.key), row("phase", n.phase),
        row("module", n.module === null ? "(outside modules)" : `${n.module || "(root)"}${n.module_type ? " : " + n.module_type : ""}`),
        row("inputs", fmtShapes(n.inputs)), row("outputs", fmtShapes(n.outputs)),
        row("host time", fmtNs(n.dur_ns)), row("device time", fmtNs(n.device_ns)),
        row("allocated", fmtBytes(n.alloc_bytes)), row("freed", fmtBytes(n.freed_bytes)),
        row("live after", fmtBytes(n.live_bytes)), row("FLOPs", fmtCount(n.flops)),
        row("source", n.source || "–"), row("grad_fn", n.grad_fn || "–"), row("parameter", n.param || "–"),
        row("forward partner", link(n.forward_partner)),
        row("backward partners", links(n.backward_partners)),
        row("producers", links(n.producers)),
        row("consumers", links(n.consumers)),
        row("fusion chain", analysisList(n.fusion_chains, "chain")),
        row("hazards", analysisList(n.hazards, "hazard")),
        row("compile region", analysisList(n.compile_regions, "region"))));
  } catch (e) {
    showError(pane(), e);
  }
}

/**
 * Show a box that stands for many calls of one op (too many to draw one by one).
 * @param {GraphBox} b
 */
export function showOpGroup(b) {
  pane().replaceChildren(el("h3", {}, b.op), el("p", {}, `${b.count} calls in ${b.module}` +
    ` (${b.phase}), ${fmtNs(b.dur_ns)} total, ${fmtBytes(b.alloc_bytes)} allocated`),
  el("p", { class: "muted" }, "Too many ops to show one by one; the op table lists them by shape."));
}
