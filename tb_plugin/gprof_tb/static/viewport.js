// Pan and zoom of the laid-out graph through the SVG's viewBox: wheel zooms about the pointer, a drag pans,
// fit shows everything. The viewport ({x, y, k}: top-left in graph units, pixels per unit) lives in the
// state, so a new layout (after an expand) keeps the scale and position of the last one.

/** @typedef {{x: number, y: number, k: number}} View */

/**
 * Attach pan and zoom to `svg` inside `box` (a fixed-size element that clips it).
 * @param {HTMLElement} box
 * @param {SVGSVGElement} svg a Graphviz SVG (its viewBox holds the graph's size)
 * @param {View|null} initial the viewport to start from; null fits the graph
 * @param {(v: View) => void} onChange called with the viewport after every change
 * @returns {{fit: () => void, zoom: (factor: number) => void, center: (el: Element, minK?: number) => void,
 *   place: (el: Element, left: number, top: number) => void}}
 */
export function attachViewport(box, svg, initial, onChange) {
  const [, , gw, gh] = (svg.getAttribute("viewBox") || "0 0 100 100").split(/[ ,]+/).map(Number);
  svg.removeAttribute("width");
  svg.removeAttribute("height");
  svg.setAttribute("preserveAspectRatio", "xMinYMin meet");
  const v = { ...(initial || { x: 0, y: 0, k: 1 }) };
  const size = () => box.getBoundingClientRect();
  const apply = () => {
    const r = size();
    svg.setAttribute("viewBox", `${v.x} ${v.y} ${Math.max(r.width, 1) / v.k} ${Math.max(r.height, 1) / v.k}`);
    onChange({ ...v });
  };
  /** @param {number} f @param {number} px @param {number} py zoom by f about a point of the box */
  const zoomAt = (f, px, py) => {
    const k = Math.min(4, Math.max(0.02, v.k * f));
    v.x += px / v.k - px / k;
    v.y += py / v.k - py / k;
    v.k = k;
    apply();
  };
  const api = {
    fit() {
      const r = size();
      v.k = Math.min(1.2, (0.96 * r.width) / gw, (0.96 * r.height) / gh);
      v.x = -(r.width / v.k - gw) / 2;
      v.y = -Math.max(0, (r.height / v.k - gh) / 2);
      apply();
    },
    zoom(f) { const r = size(); zoomAt(f, r.width / 2, r.height / 2); },
    center(el, minK = 0) {
      if (v.k < minK) { v.k = minK; apply(); }
      const r = size(), e = el.getBoundingClientRect();
      v.x += (e.left + e.width / 2 - r.left - r.width / 2) / v.k;
      v.y += (e.top + e.height / 2 - r.top - r.height / 2) / v.k;
      apply();
    },
    place(el, left, top) {
      const e = el.getBoundingClientRect();
      v.x += (e.left - left) / v.k;
      v.y += (e.top - top) / v.k;
      apply();
    },
  };
  if (initial) apply(); else api.fit();
  box.onwheel = (ev) => {
    ev.preventDefault();
    const r = size();
    zoomAt(Math.exp(-ev.deltaY * 0.0015), ev.clientX - r.left, ev.clientY - r.top);
  };
  let drag = null;
  box.onpointerdown = (ev) => { drag = { x: ev.clientX, y: ev.clientY, moved: false }; };
  box.onpointermove = (ev) => {
    if (!drag || !(ev.buttons & 1)) return;
    const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (!drag.moved && Math.abs(dx) + Math.abs(dy) < 4) return;
    drag.moved = true;
    box.classList.add("dragging");
    v.x -= dx / v.k;
    v.y -= dy / v.k;
    drag.x = ev.clientX;
    drag.y = ev.clientY;
    apply();
  };
  box.onpointerup = () => { box.classList.remove("dragging"); };
  // a drag ends in a click on whatever is under the pointer: swallow it
  box.addEventListener("click", (ev) => { if (drag && drag.moved) ev.stopPropagation(); drag = null; }, true);
  return api;
}
