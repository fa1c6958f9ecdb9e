// The memory view: live bytes after each node (line coloured by phase, stacked areas by category), the
// peak marked, and the category split at the peak. Clicking the curve inspects the nearest node.

import { fetchMemory } from "../api.js";
import { el, showError, table } from "../dom.js";
import { fmtBytes } from "../format.js";
import { state } from "../state.js";
import { selectNode } from "./inspector.js";

const PHASE_COLORS = { forward: "#1e88e5", backward: "#8e24aa", optimizer: "#43a047", other: "#757575" };
const CATEGORY_COLORS = { parameter: "#90caf9", buffer: "#b0bec5", gradient: "#ce93d8", activation: "#ffcc80",
  optimizer: "#a5d6a7", temporary: "#ef9a9a", other: "#e0e0e0" };
const SVG_NS = "http://www.w3.org/2000/svg";
const W = 900, H = 260, PAD = 40;

/**
 * The curve as an SVG (`#memory-curve`): category areas, the phase-coloured line, the peak and the axes' ends.
 * @param {Object<string, any>} m the memory route's answer
 * @returns {SVGSVGElement}
 */
function curve(m) {
  const pts = m.points;
  const x0 = pts[0][0], x1 = Math.max(pts[pts.length - 1][0], x0 + 1);
  const ymax = Math.max(...pts.map((p) => p[1]), m.peak_bytes, 1);
  const sx = (i) => PAD + ((i - x0) / (x1 - x0)) * (W - 2 * PAD);
  const sy = (v) => H - PAD - (v / ymax) * (H - 2 * PAD);
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("id", "memory-curve");
  const add = (tag, attrs) => {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    svg.append(e);
    return e;
  };
  const cc = m.category_curve;
  if (cc && cc.nodes && cc.nodes.length > 1) {  // stacked areas: live bytes by category along the step
    let below = cc.nodes.map(() => 0);
    for (const [cat, values] of Object.entries(cc.categories)) {
      const above = below.map((b, k) => b + values[k]);
      const top = cc.nodes.map((n, k) => `${sx(n)},${sy(above[k])}`);
      const bottom = cc.nodes.map((n, k) => `${sx(n)},${sy(below[k])}`).reverse();
      add("polygon", { points: [...top, ...bottom].join(" "), fill: CATEGORY_COLORS[cat] || "#bbb",
        "fill-opacity": 0.45, class: `cat-area cat-${cat}` }).append(
        Object.assign(document.createElementNS(SVG_NS, "title"), { textContent: cat }));
      below = above;
    }
  }
  for (let i = 1; i < pts.length; i++) {
    add("line", { x1: sx(pts[i - 1][0]), y1: sy(pts[i - 1][1]), x2: sx(pts[i][0]), y2: sy(pts[i][1]),
      stroke: PHASE_COLORS[pts[i][2]] || "#333", "stroke-width": 2 });
  }
  if (m.peak_node !== null) {
    add("line", { x1: sx(m.peak_node), x2: sx(m.peak_node), y1: PAD, y2: H - PAD, stroke: "#d32f2f", "stroke-dasharray": "4 3" });
    add("text", { x: sx(m.peak_node) + 4, y: PAD + 10, fill: "#d32f2f", "font-size": 11 }).textContent =
      `peak ${fmtBytes(m.peak_bytes)} at node #${m.peak_node}`;
  }
  add("text", { x: PAD, y: H - 10, "font-size": 11 }).textContent = `node #${x0}`;
  add("text", { x: W - PAD - 60, y: H - 10, "font-size": 11 }).textContent = `node #${x1}`;
  add("text", { x: 2, y: PAD - 8, "font-size": 11 }).textContent = fmtBytes(ymax);
  svg.onclick = (ev) => {
    const r = svg.getBoundingClientRect();
    const x = ((ev.clientX - r.left) / r.width) * W;
    let best = pts[0];
    for (const p of pts) if (Math.abs(sx(p[0]) - x) < Math.abs(sx(best[0]) - x)) best = p;
    selectNode(best[0]);
  };
  return svg;
}

/**
 * @param {HTMLElement} panel
 * @returns {Promise<void>}
 */
export async function memoryView(panel) {
  try {
    const m = await fetchMemory(state, 800);
    if (!m.points.length) { panel.append(el("p", {}, "this step has no nodes")); return; }
    const cc = m.category_curve;
    const cats = Object.entries(m.by_category || {}).sort((a, b) => b[1] - a[1]);
    const total = cats.reduce((s, c) => s + c[1], 0) || 1;
    panel.append(el("p", { class: "muted" }, `live bytes after each node (max per ${m.bucket_nodes} nodes); line colour = phase, areas = category; click to inspect the node`),
      el("div", { class: "legend" }, Object.entries(PHASE_COLORS).map(([p, c]) => el("span", { style: `color:${c}` }, `■ ${p} `))),
      el("div", { class: "legend" }, Object.keys((cc && cc.categories) || {}).map((k) => el("span", { style: `color:${CATEGORY_COLORS[k] || "#999"}` }, `▮ ${k} `))),
      curve(m), el("h4", {}, "at the peak, by category"),
      el("div", { class: "stack" }, cats.map(([k, v]) => el("div", { class: `cat cat-${k}`, style: `flex:${v / total}`, title: `${k} ${fmtBytes(v)}` }, k))),
      table("memory-categories", [["0", "category"], ["1", "bytes", fmtBytes]], cats.map(([k, v]) => ({ 0: k, 1: v })), null, {}));
  } catch (e) {
    showError(panel, e);
  }
}
