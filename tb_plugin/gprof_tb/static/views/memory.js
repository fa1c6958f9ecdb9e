// The memory view: live bytes after each node, stacked by category up to the total (the part no category
// accounts for drawn as "uncategorised"), the line coloured by phase, axes with units, the peak linked to
// its node, and the category split at the peak. Clicking the curve inspects the nearest node.

import { fetchMemory } from "../api.js";
import { svgEl, axes } from "../chart.js";
import { actionLink, el, showError, table } from "../dom.js";
import { fmtBytes, fmtCount } from "../format.js";
import { goToNode } from "../nav.js";
import { CATEGORY_COLORS, PHASE_COLORS, colorOf } from "../palette.js";
import { state } from "../state.js";
import { selectNode } from "./inspector.js";
import { memoryOpsSection } from "./memoryops.js";

const W = 1000, H = 300, BOX = { left: 70, top: 24, right: 985, bottom: 260 };

/** @param {number} max @returns {number} the binary unit (1, KiB, MiB, GiB) an axis up to `max` ticks in */
const byteUnit = (max) => 1024 ** Math.max(0, Math.floor(Math.log(Math.max(max, 1)) / Math.log(1024)));

/**
 * Stacked category areas: each category over the ones before it, then "uncategorised" up to the total.
 * @param {Object<string, any>} m the memory route's answer
 * @returns {{nodes: number[], layers: [string, number[]][]}}
 */
function layers(m) {
  const cc = m.category_curve;
  if (!cc || !cc.nodes || cc.nodes.length < 2) return { nodes: [], layers: [] };
  const total = new Map(m.points.map((p) => [p[0], p[1]]));
  const out = Object.entries(cc.categories);
  const sums = cc.nodes.map((_, k) => out.reduce((s, [, v]) => s + v[k], 0));
  const rest = cc.nodes.map((n, k) => Math.max(0, (total.get(n) ?? sums[k]) - sums[k]));
  if (rest.some((v) => v > 0)) out.push(["uncategorised", rest]);
  return { nodes: cc.nodes, layers: out };
}

/**
 * The curve as an SVG (`#memory-curve`).
 * @param {Object<string, any>} m
 * @returns {SVGSVGElement}
 */
function curve(m) {
  const pts = m.points;
  const x0 = pts[0][0], x1 = Math.max(pts[pts.length - 1][0], x0 + 1);
  const ymax = Math.max(...pts.map((p) => p[1]), m.peak_bytes, 1) * 1.05;
  const sx = (i) => BOX.left + ((i - x0) / (x1 - x0)) * (BOX.right - BOX.left);
  const sy = (v) => BOX.bottom - (v / ymax) * (BOX.bottom - BOX.top);
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, id: "memory-curve", class: "chart" });
  axes(svg, BOX, { lo: x0, hi: x1, fmt: (v) => `#${v}`, title: "node (step order)" },
    { lo: 0, hi: ymax, fmt: (v) => fmtBytes(v), title: "live memory", unit: byteUnit(ymax) });
  const { nodes, layers: ls } = layers(m);
  let below = nodes.map(() => 0);
  for (const [cat, values] of ls) {
    const above = below.map((b, k) => b + values[k]);
    const top = nodes.map((n, k) => `${sx(n)},${sy(above[k])}`);
    const bottom = nodes.map((n, k) => `${sx(n)},${sy(below[k])}`).reverse();
    svgEl("polygon", { points: [...top, ...bottom].join(" "), fill: colorOf(CATEGORY_COLORS, cat), "fill-opacity": 0.55,
      class: `cat-area cat-${cat}` }, svg).append(Object.assign(svgEl("title", {}), { textContent: cat }));
    below = above;
  }
  for (let i = 1; i < pts.length; i++) {
    svgEl("line", { x1: sx(pts[i - 1][0]), y1: sy(pts[i - 1][1]), x2: sx(pts[i][0]), y2: sy(pts[i][1]),
      stroke: colorOf(PHASE_COLORS, pts[i][2]), "stroke-width": 2 }, svg);
  }
  if (m.peak_node !== null) {
    svgEl("line", { x1: sx(m.peak_node), x2: sx(m.peak_node), y1: BOX.top, y2: BOX.bottom, stroke: "#d32f2f",
      "stroke-dasharray": "4 3" }, svg);
  }
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
 * A legend of coloured dots.
 * @param {string} title @param {string[]} keys @param {Object<string, string>} palette
 * @returns {HTMLElement}
 */
const dots = (title, keys, palette) => el("div", { class: "legend" }, el("span", { class: "muted" }, title), keys.map((k) =>
  el("span", {}, el("span", { class: "dot", style: `background:${colorOf(palette, k)}` }), k)));

/**
 * @param {HTMLElement} panel
 * @returns {Promise<void>}
 */
export async function memoryView(panel) {
  try {
    const m = await fetchMemory(state, 800);
    if (!m.points.length) { panel.append(el("p", {}, "this step has no nodes")); return; }
    const cats = Object.entries(m.by_category || {}).sort((a, b) => b[1] - a[1]);
    const total = cats.reduce((s, c) => s + c[1], 0) || 1;
    const per = m.bucket_nodes > 1 ? `the highest of each ${fmtCount(m.bucket_nodes)} consecutive nodes` : "after each node";
    panel.append(
      el("p", { id: "memory-peak" }, `peak ${fmtBytes(m.peak_bytes)} at `,
        m.peak_node !== null ? actionLink(`node #${m.peak_node}`, () => goToNode(m.peak_node)) : "–",
        el("span", { class: "muted" }, ` · live memory ${per}; line colour = phase, areas = category; click the curve to inspect a node`)),
      dots("line: phase", Object.keys(PHASE_COLORS), PHASE_COLORS),
      dots("areas: category", layers(m).layers.map(([k]) => k), CATEGORY_COLORS), curve(m),
      el("h3", {}, "at the peak, by category"),
      el("div", { class: "stack" }, cats.map(([k, v]) => el("div", { style: `flex:${v / total};background:${colorOf(CATEGORY_COLORS, k)}`,
        title: `${k} ${fmtBytes(v)}` }, k))),
      table("memory-categories", [["0", "category"], ["1", "live at the peak", fmtBytes]], cats.map(([k, v]) => ({ 0: k, 1: v })), null, {}),
      await memoryOpsSection(m));
  } catch (e) {
    showError(panel, e);
  }
}
