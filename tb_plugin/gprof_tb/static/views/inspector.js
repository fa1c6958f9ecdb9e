// The inspector pane beside every view (it keeps its place and scrolls on its own): one node in full, or a
// group of same-op nodes in brief. Its links (partners, producers, consumers) move the graph to that node.

import { fetchNode } from "../api.js";
import { actionLink, el, showError } from "../dom.js";
import { fieldLabel, fmtBytes, fmtField, fmtFlop, fmtModule, fmtNs, fmtShapes, shortOp } from "../format.js";
import { mark } from "../graph.js";
import { boxesFor, goToNode } from "../nav.js";
import { state } from "../state.js";
import { saveUrl } from "../url.js";

/** @typedef {import("../api.js").GraphBox} GraphBox */

const pane = () => document.getElementById("inspector");

/** @param {{idx: number, op: string, phase: string}|null} p @returns {HTMLElement|string} a link that moves the graph to p */
const nodeLink = (p) => (p ? actionLink(`#${p.idx} ${shortOp(p.op)} (${p.phase})`, () => goToNode(p.idx)) : "–");

/** @param {Object[]} ps @returns {HTMLElement|string} */
const nodeLinks = (ps) => (ps.length ? el("span", {}, ps.map((p) => el("div", {}, nodeLink(p)))) : "–");

/**
 * The findings a node belongs to, each with its readable fields.
 * @param {{number: number, fields: Object<string, any>}[]} items
 * @param {string} what "chain", "hazard" or "region"
 * @returns {HTMLElement|string}
 */
function findingList(items, what) {
  if (!items.length) return "–";
  return el("ul", {}, items.map((i) => el("li", {}, `${what} #${i.fields.id ?? i.number}: `,
    Object.entries(i.fields).filter(([k]) => k !== "id").map(([k, v]) => `${fieldLabel(k)} ${fmtField(k, v)}`).join(", "))));
}

/**
 * Fetch node `idx` of the selected step and show it; mark it in the graph when drawn there.
 * @param {number} idx
 * @returns {Promise<void>}
 */
export async function selectNode(idx) {
  state.selected = idx;
  saveUrl();
  try {
    const n = await fetchNode(state, idx);
    state.selectedBoxes = boxesFor(n);
    mark("selected", state.selectedBoxes);
    const row = (k, v) => el("tr", {}, el("th", {}, k), el("td", {}, v));
    const device = n.device_ns !== null && n.device_ns !== undefined;
    pane().replaceChildren(
      el("h3", { id: "insp-op" }, n.op),
      state.tab === "graph" ? "" : el("p", {}, actionLink("show in graph", () => goToNode(idx))),
      el("table", { class: "kv", id: "insp-table" },
        row("node", `#${n.idx}`), row("key", n.key), row("phase", n.phase),
        row("module", `${fmtModule(n.module)}${n.module_type ? " : " + n.module_type : ""}`),
        row("inputs", fmtShapes(n.inputs)), row("outputs", fmtShapes(n.outputs)),
        row("host time", fmtNs(n.dur_ns)), device ? row("device time", fmtNs(n.device_ns)) : "",
        row("allocated", fmtBytes(n.alloc_bytes)), row("freed", fmtBytes(n.freed_bytes)),
        row("live after", fmtBytes(n.live_bytes)), row("FLOPs", fmtFlop(n.flops)),
        row("source", n.source || "–"), row("grad_fn", n.grad_fn || "–"), row("parameter", n.param || "–"),
        row("forward partner", nodeLink(n.forward_partner)),
        row("backward partners", nodeLinks(n.backward_partners)),
        row("producers", nodeLinks(n.producers)),
        row("consumers", nodeLinks(n.consumers)),
        row("fusion chain", findingList(n.fusion_chains, "chain")),
        row("hazards", findingList(n.hazards, "hazard")),
        row("compile region", findingList(n.compile_regions, "region"))));
    pane().scrollTop = 0;
  } catch (e) {
    showError(pane(), e);
  }
}

/**
 * Show a box that stands for many calls of one op (too many to draw one by one).
 * @param {GraphBox} b
 */
export function showOpGroup(b) {
  pane().replaceChildren(el("h3", {}, b.op), el("p", {}, `${b.count} calls in ${fmtModule(b.module)}` +
    ` (${b.phase}), ${fmtNs(b.dur_ns)} total, ${fmtBytes(b.alloc_bytes)} allocated`),
  el("p", { class: "muted" }, "Too many ops to show one by one; the op table lists them by shape."));
}
