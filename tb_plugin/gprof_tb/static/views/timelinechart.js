// Drawing the timeline: one row per lane (a thread, or on a GPU a stream), nodes as bars on a time
// axis coloured by phase, or, when too many fall in the window, per-lane time buckets whose height
// shows how busy the bucket was. Pure drawing: timeline.js owns the window and the requests.

import { axes, svgEl } from "../chart.js";
import { fmtCount, fmtNs, shortOp } from "../format.js";
import { PHASE_COLORS, colorOf } from "../palette.js";

/** Layout in SVG units: the plot area starts right of the lane labels. */
export const LAYOUT = { width: 1000, left: 90, right: 970, top: 8, lane: 30, axis: 40 };

/**
 * The answer's items as objects named by its `columns`.
 * @param {{columns: string[], items: any[][]}} t
 * @returns {Object<string, any>[]}
 */
export const rows = (t) => t.items.map((it) => Object.fromEntries(t.columns.map((c, i) => [c, it[i]])));

/**
 * x in SVG units of time `ns` in the window [lo, hi].
 * @param {number} ns @param {number} lo @param {number} hi
 * @returns {number}
 */
export const xOf = (ns, lo, hi) => LAYOUT.left + ((ns - lo) / Math.max(hi - lo, 1)) * (LAYOUT.right - LAYOUT.left);

/**
 * Draw answer `t` into `svg` for the window [lo, hi] (which may differ from the answer's while a new
 * one is on its way: bars are placed by time, so panning and zooming move them at once).
 * @param {SVGSVGElement} svg
 * @param {Object<string, any>} t the timeline route's answer
 * @param {number} lo
 * @param {number} hi
 * @param {(item: Object<string, any>) => void} onItem called when a bar is clicked
 * @param {number|null} selected the inspected node, outlined
 */
export function drawTimeline(svg, t, lo, hi, onItem, selected) {
  const height = LAYOUT.top + t.lanes.length * LAYOUT.lane + LAYOUT.axis;
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${LAYOUT.width} ${height}`);
  const bottom = LAYOUT.top + t.lanes.length * LAYOUT.lane;
  axes(svg, { left: LAYOUT.left, right: LAYOUT.right, top: LAYOUT.top, bottom },
    { lo, hi, fmt: (v) => fmtNs(v), title: "time since the step's first op" }, null);
  t.lanes.forEach((name, i) => {
    svgEl("text", { x: LAYOUT.left - 6, y: LAYOUT.top + i * LAYOUT.lane + LAYOUT.lane / 2 + 4, "text-anchor": "end" }, svg)
      .textContent = name;
  });
  const clip = svgEl("clipPath", { id: "tl-clip" }, svgEl("defs", {}, svg));
  svgEl("rect", { x: LAYOUT.left, y: 0, width: LAYOUT.right - LAYOUT.left, height: bottom }, clip);
  const g = svgEl("g", { "clip-path": "url(#tl-clip)" }, svg);
  const buckets = t.mode === "buckets";
  for (const r of rows(t)) {
    const x0 = xOf(r.start_ns, lo, hi), x1 = xOf(r.start_ns + (buckets ? r.width_ns : r.dur_ns), lo, hi);
    if (x1 < LAYOUT.left || x0 > LAYOUT.right) continue;
    const fill = buckets ? Math.min(1, r.busy_ns / Math.max(r.width_ns, 1)) : 1;
    const h = (LAYOUT.lane - 8) * (buckets ? Math.max(0.15, fill) : 1);
    const y = LAYOUT.top + r.lane * LAYOUT.lane + (LAYOUT.lane - 4) - h;
    const bar = svgEl("rect", { x: x0, y, width: Math.max(x1 - x0, 0.8), height: h, fill: colorOf(PHASE_COLORS, r.phase),
      class: buckets ? "tl-bucket" : r.idx === selected ? "tl-node selected" : "tl-node", "data-idx": r.idx ?? "" }, g);
    bar.append(Object.assign(svgEl("title", {}), { textContent: buckets
      ? `${fmtCount(r.nodes)} nodes, busy ${fmtNs(r.busy_ns)} of ${fmtNs(r.width_ns)} (mostly ${r.phase}); click to zoom in`
      : `#${r.idx} ${shortOp(r.op)} (${r.phase}), ${fmtNs(r.dur_ns)} at ${fmtNs(r.start_ns)}` }));
    bar.onclick = (ev) => { ev.stopPropagation(); onItem(r); };
  }
}
