// The graph view: toolbar, breadcrumbs and the module graph in a pan-and-zoom viewport. Clicking a module
// expands it (its frame stays where the box was), clicking a frame collapses it, clicking a node inspects
// it. A paint centres on `state.focus` (set by search and links) and marks the selected node.

import { fetchGraph, fetchOverview, fetchStep } from "../api.js";
import { el, showError } from "../dom.js";
import { find, mark, renderGraph } from "../graph.js";
import { PHASE_SETS, state } from "../state.js";
import { saveUrl } from "../url.js";
import { viewportKeys } from "../viewkeys.js";
import { attachViewport } from "../viewport.js";
import { crumbs, legend, toolbar } from "./graphbar.js";
import { selectNode, showOpGroup } from "./inspector.js";

/** @typedef {import("../api.js").GraphBox} GraphBox */

/** The viewport of the graph on show (null before the first paint). */
let vp = null;

/**
 * @param {HTMLElement} panel
 * @returns {Promise<void>}
 */
export async function graphView(panel) {
  const head = await fetchStep(state).catch(() => ({ nodes: 0 }));
  const h = { onPhases: loadGraph, onColor: paintGraph, onFit: () => vp && vp.fit(), onZoom: (f) => vp && vp.zoom(f),
    onCrumb: collapseBelow };
  panel.append(toolbar(h, head.nodes), el("div", { id: "crumbs" }),
    el("div", { id: "graph-box" }, el("p", { class: "muted" }, "laying out…")), el("div", { id: "graph-legend" }));
  viewportKeys(() => vp);
  await loadGraph();
}

/** Fetch the graph for the expanded modules and phases, then paint it. @returns {Promise<void>} */
async function loadGraph() {
  const target = document.getElementById("graph-box");
  try {
    state.graph = await fetchGraph(state, [...state.expanded], PHASE_SETS[state.phases]);
    await paintGraph();
  } catch (e) {
    if (target) showError(target, e);
  }
  saveUrl();
}

/**
 * The legend, with which unfused chains are marked (the overview route's rule, usually cached already).
 * Drawn before the viewport is placed: a legend that grew later would move the graph under the anchor.
 * @returns {Promise<void>}
 */
async function showLegend() {
  const o = await fetchOverview(state).catch(() => null);
  document.getElementById("graph-legend")?.replaceWith(legend(o && o.marking));
}

/** Lay out and draw `state.graph`, keep the anchor in place, centre on the focus, mark the selection. */
async function paintGraph() {
  const target = document.getElementById("graph-box");
  if (!target || !state.graph) return;
  const t0 = performance.now();
  const svg = await renderGraph(state.graph, state.colorBy, { onBox, onCluster: collapse });
  target.replaceChildren(svg);
  document.getElementById("crumbs").replaceWith(crumbs(collapseBelow));
  await showLegend();
  const first = state.view === null;
  vp = attachViewport(target, svg, state.view, (v) => { state.view = v; });
  const anchor = state.anchor && find(state.anchor.ids);
  if (anchor) vp.place(anchor, state.anchor.left, state.anchor.top);
  state.anchor = null;
  if (state.selected !== null && !state.selectedBoxes.length) await selectNode(state.selected);
  const selected = mark("selected", state.selectedBoxes);
  const focus = state.focus.length ? mark("hit", state.focus) : first && selected;
  if (focus) vp.center(focus, 1);
  state.focus = [];
  document.body.dataset.graphMs = String(Math.round(performance.now() - t0));
}

/**
 * Remember where `g` is on screen, so the next paint keeps the element standing for it (`ids`) there.
 * @param {Element} g
 * @param {string[]} ids
 */
function anchorAt(g, ids) {
  const r = g.getBoundingClientRect();
  state.anchor = { ids, left: r.left, top: r.top };
}

/** @param {string} module @param {Element} g its frame */
function collapse(module, g) {
  for (const m of [...state.expanded]) if (m === module || m.startsWith(module + ".")) state.expanded.delete(m);
  anchorAt(g, PHASE_SETS.all.map((p) => `m:${module}@${p}`));
  loadGraph();
}

/** Collapse everything inside `module` ("" for all), keep it open, and centre on it. @param {string} module */
function collapseBelow(module) {
  for (const m of [...state.expanded]) if (m.startsWith(module ? module + "." : "")) state.expanded.delete(m);
  state.focus = module ? [`cluster:${module}`] : [];
  if (!module) state.view = null;
  loadGraph();
}

/** @param {GraphBox} b @param {Element} g */
function onBox(b, g) {
  if (b.kind === "module") {
    state.expanded.add(b.module);
    anchorAt(g, [`cluster:${b.module}`]);
    loadGraph();
  } else if (b.kind === "node") {
    selectNode(b.idx);
  } else {
    showOpGroup(b);
  }
}
