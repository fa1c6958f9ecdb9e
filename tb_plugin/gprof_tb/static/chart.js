// SVG chart helpers shared by the memory curve, the timeline and the rank bars: element creation, tick
// values at round numbers, and labelled axes.

const SVG_NS = "http://www.w3.org/2000/svg";

/**
 * An SVG element with attributes, appended to `parent` when given.
 * @param {string} tag
 * @param {Object<string, any>} attrs
 * @param {Element} [parent]
 * @returns {SVGElement}
 */
export function svgEl(tag, attrs, parent) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.append(e);
  return e;
}

/**
 * About `n` round tick values from `lo` to `hi` (steps of 1, 2 or 5 times a power of ten).
 * @param {number} lo
 * @param {number} hi
 * @param {number} [n]
 * @returns {number[]}
 */
export function ticks(lo, hi, n = 5) {
  const span = Math.max(hi - lo, 1e-9);
  const raw = span / n, p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(v);
  return out;
}

/**
 * Axes in the rectangle `box`: tick labels formatted by `fmtX`/`fmtY` and an axis title each.
 * @param {SVGElement} svg
 * @param {{left: number, top: number, right: number, bottom: number}} box the plot area in SVG units
 * @param {{lo: number, hi: number, fmt: (v: number) => string, title: string}} x
 * @param {{lo: number, hi: number, fmt: (v: number) => string, title: string, unit?: number}|null} y ticks
 *   fall on round multiples of `unit` (e.g. 1024 ** 2 for MiB)
 */
export function axes(svg, box, x, y) {
  const g = svgEl("g", { class: "axes" }, svg);
  const sx = (v) => box.left + ((v - x.lo) / Math.max(x.hi - x.lo, 1e-9)) * (box.right - box.left);
  svgEl("line", { x1: box.left, x2: box.right, y1: box.bottom, y2: box.bottom, stroke: "#999" }, g);
  for (const v of ticks(x.lo, x.hi, 8)) {
    svgEl("line", { x1: sx(v), x2: sx(v), y1: box.bottom, y2: box.bottom + 4, stroke: "#999" }, g);
    svgEl("text", { x: sx(v), y: box.bottom + 16, "text-anchor": "middle" }, g).textContent = x.fmt(v);
  }
  svgEl("text", { x: box.right, y: box.bottom + 30, "text-anchor": "end" }, g).textContent = x.title;
  if (!y) return;
  const sy = (v) => box.bottom - ((v - y.lo) / Math.max(y.hi - y.lo, 1e-9)) * (box.bottom - box.top);
  svgEl("line", { x1: box.left, x2: box.left, y1: box.top, y2: box.bottom, stroke: "#999" }, g);
  const u = y.unit || 1;
  for (const v of ticks(y.lo / u, y.hi / u, 4).map((t) => t * u)) {
    svgEl("line", { x1: box.left - 4, x2: box.right, y1: sy(v), y2: sy(v), stroke: "#eee" }, g);
    svgEl("text", { x: box.left - 6, y: sy(v) + 4, "text-anchor": "end" }, g).textContent = y.fmt(v);
  }
  svgEl("text", { x: box.left, y: box.top - 8, "text-anchor": "start" }, g).textContent = y.title;
}
