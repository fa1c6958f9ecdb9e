// The graph view's controls: phases, colouring, zoom and fit, collapse all, the search box with its
// results, the breadcrumbs of the expanded modules, and the legend.

import { el } from "../dom.js";
import { fmtModule, fmtPct } from "../format.js";
import { goToModule, goToNode, goToOps } from "../nav.js";
import { PHASE_COLORS } from "../palette.js";
import { search, hitPlace } from "../search.js";
import { PHASE_SETS, prefixes, state } from "../state.js";

/**
 * @typedef {{onPhases: () => void, onColor: () => void, onFit: () => void, onZoom: (f: number) => void,
 *   onCrumb: (module: string) => void}} BarHandlers
 */

/**
 * The toolbar row (selectors, buttons, search).
 * @param {BarHandlers} h
 * @param {number} nodeCount the step's node count (how much the search indexes)
 * @returns {HTMLElement}
 */
export function toolbar(h, nodeCount) {
  const phaseSel = el("select", { id: "sel-phases" }, Object.keys(PHASE_SETS).map((p) => el("option", { value: p }, p)));
  phaseSel.value = state.phases;
  phaseSel.onchange = () => { state.phases = phaseSel.value; h.onPhases(); };
  const colorSel = el("select", { id: "sel-color" }, el("option", { value: "time" }, "time"),
    el("option", { value: "memory" }, "memory"));
  colorSel.value = state.colorBy;
  colorSel.onchange = () => { state.colorBy = colorSel.value; h.onColor(); };
  const btn = (id, text, title, fn) => el("button", { id, title, onclick: fn }, text);
  return el("div", { class: "toolbar" }, el("label", {}, "phases ", phaseSel), el("label", {}, "colour by ", colorSel),
    btn("fit", "fit", "fit the graph to the view (f)", h.onFit),
    btn("zoom-in", "+", "zoom in (+)", () => h.onZoom(1.3)), btn("zoom-out", "−", "zoom out (-)", () => h.onZoom(1 / 1.3)),
    btn("collapse-all", "collapse all", "show only the top-level modules", () => h.onCrumb("")),
    searchBox(nodeCount));
}

/**
 * The search field and its result list; Enter or a click on a result moves the graph there.
 * @param {number} nodeCount
 * @returns {HTMLElement}
 */
function searchBox(nodeCount) {
  const input = el("input", { id: "graph-search", type: "search", placeholder: "search op, module or node key  (/)",
    autocomplete: "off" });
  const list = el("ul", { id: "search-results", hidden: "" });
  const open = (hit) => {
    list.hidden = true;
    if (hit.idx !== null) goToNode(hit.idx);
    else if (hit.kind === "module") goToModule(hit.module, hit.phase);
    else goToOps(hit.module, hit.phase, hit.op);
  };
  let hits = [];
  let seq = 0;
  input.oninput = async () => {
    const mine = ++seq;
    const found = await search(input.value, nodeCount);
    if (mine !== seq) return;
    hits = found;
    list.replaceChildren(...(hits.length ? hits.map((hit) => el("li", { onclick: () => open(hit) },
      el("strong", {}, hit.label), " ", el("span", { class: "muted" }, hitPlace(hit))))
      : [el("li", { class: "muted" }, input.value.trim() ? "no match" : "")]));
    list.hidden = !input.value.trim();
  };
  input.onkeydown = (ev) => {
    if (ev.key === "Enter" && hits.length) open(hits[0]);
    if (ev.key === "Escape") { input.value = ""; list.hidden = true; input.blur(); }
  };
  return el("span", { class: "search" }, input, list);
}

/**
 * The breadcrumbs: one trail per innermost expanded module, each crumb collapsing what lies below it.
 * @param {(module: string) => void} onCrumb
 * @returns {HTMLElement}
 */
export function crumbs(onCrumb) {
  const exp = [...state.expanded];
  const leaves = exp.filter((m) => !exp.some((o) => o.startsWith(m + "."))).sort();
  const crumb = (m) => el("a", { href: "#", class: "crumb", onclick: (ev) => { ev.preventDefault(); onCrumb(m); } },
    m === "" ? "model" : m === "-" ? fmtModule("-") : m.split(".").pop());
  const trails = leaves.length ? leaves : [""];
  return el("div", { id: "crumbs" }, trails.map((leaf) => el("span", { class: "trail" },
    crumb(""), prefixes(leaf).flatMap((m) => [" › ", crumb(m)]))));
}

/**
 * The legend: phases (the dashed partner link), marks and what the fill means.
 * @param {{marked: number, chains: number, top: number, min_share: number}|null} marking which unfused
 *   chains the orange border marks (the overview route's `marking`), once known
 * @returns {HTMLElement}
 */
export function legend(marking) {
  const which = marking ? ` (${marking.marked} of ${marking.chains}: the top ${marking.top} by saving, ` +
    `and any saving ${fmtPct(marking.min_share)} of the step or more)` : "";
  return el("div", { class: "legend", id: "graph-legend" },
    el("span", {}, `fill: ${state.colorBy === "time" ? "host time" : "allocated bytes"} (white → red)`),
    el("span", { class: "swatch", style: "border-color:#f57c00" }, `unfused chain${which}`),
    el("span", { class: "swatch", style: "border-color:#d32f2f" }, "graph-break hazard"),
    el("span", { style: `color:${PHASE_COLORS.backward}` }, "- - backward → forward partner"),
    el("span", { class: "muted" }, "drag to pan, wheel to zoom, click a module to open it and its frame to close it"));
}
