// The timeline view: the step's nodes on a time axis per lane (thread, stream), coloured by phase, drawn
// from the timeline route only (no external trace viewer, so it works offline). Wheel zooms around the
// pointer, drag pans; once the window settles the route is asked again for it, so zooming in turns
// time buckets into single nodes. Clicking a node inspects it (the inspector's link moves the graph);
// clicking a bucket zooms into it.

import { fetchTimeline } from "../api.js";
import { el, showError } from "../dom.js";
import { fmtCount, fmtNs } from "../format.js";
import { PHASE_COLORS, colorOf } from "../palette.js";
import { state } from "../state.js";
import { selectNode } from "./inspector.js";
import { LAYOUT, drawTimeline } from "./timelinechart.js";

/** The most items one answer may hold before the server buckets them. */
const MAX_ITEMS = 3000;
const REQUERY_MS = 150;

/**
 * @param {HTMLElement} panel
 * @returns {Promise<void>}
 */
export async function timelineView(panel) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.id = "timeline";
  svg.classList.add("chart");
  const info = el("span", { id: "timeline-info", class: "muted" });
  let data = null, span = 1, lo = 0, hi = 1, timer = 0, seq = 0;

  const draw = () => drawTimeline(svg, data, lo, hi, (item) => (data.mode === "buckets"
    ? setWindow(item.start_ns, item.start_ns + item.width_ns) : selectNode(item.idx).then(draw)), state.selected);
  const load = async (whole) => {
    const mine = ++seq;
    const t = await fetchTimeline(state, whole ? null : lo, whole ? null : hi, MAX_ITEMS);
    if (mine !== seq) return;
    data = t;
    if (whole) { span = Math.max(t.span_ns, 1); lo = 0; hi = span; }
    info.textContent = `${fmtNs(hi - lo)} shown of ${fmtNs(span)}: ${fmtCount(t.count)} nodes` +
      (t.mode === "buckets" ? `, in buckets of ${fmtNs(t.bucket_ns)} (zoom in for single nodes)` : ", one bar each");
    draw();
  };
  /** Move the window (clamped to the step), redraw what is loaded now, ask for the new window soon. */
  const setWindow = (a, b) => {
    const w = Math.min(Math.max(b - a, 1000), span);
    lo = Math.min(Math.max(a, 0), span - w);
    hi = lo + w;
    draw();
    clearTimeout(timer);
    timer = setTimeout(() => load(false).catch((e) => showError(info, e)), REQUERY_MS);
  };
  /** @param {number} clientX @returns {number} the time under the pointer */
  const timeAt = (clientX) => {
    const r = svg.getBoundingClientRect();
    const x = ((clientX - r.left) / r.width) * LAYOUT.width;
    return lo + ((x - LAYOUT.left) / (LAYOUT.right - LAYOUT.left)) * (hi - lo);
  };
  const zoom = (f, at = (lo + hi) / 2) => setWindow(at - (at - lo) / f, at + (hi - at) / f);
  svg.addEventListener("wheel", (ev) => { ev.preventDefault(); zoom(ev.deltaY < 0 ? 1.4 : 1 / 1.4, timeAt(ev.clientX)); },
    { passive: false });
  svg.onmousedown = (ev) => {
    const x0 = ev.clientX, a = lo, b = hi, width = svg.getBoundingClientRect().width;
    const move = (e) => {
      const dt = ((e.clientX - x0) / width) * (LAYOUT.width / (LAYOUT.right - LAYOUT.left)) * (b - a);
      if (Math.abs(e.clientX - x0) > 2) setWindow(a - dt, b - dt);
    };
    const up = () => { window.removeEventListener("mousemove", move); window.removeEventListener("mouseup", up); };
    window.addEventListener("mousemove", move);
    window.addEventListener("mouseup", up);
  };
  const btn = (id, text, fn) => el("button", { id, onclick: fn }, text);
  panel.append(el("div", { class: "toolbar" }, btn("tl-whole", "whole step", () => setWindow(0, span)),
    btn("tl-zoom-in", "+", () => zoom(2)), btn("tl-zoom-out", "−", () => zoom(0.5)), info),
  el("div", { class: "legend" }, Object.keys(PHASE_COLORS).map((p) =>
    el("span", {}, el("span", { class: "dot", style: `background:${colorOf(PHASE_COLORS, p)}` }), p)),
  el("span", { class: "muted" }, "wheel to zoom, drag to pan, click a node to inspect it, a bucket to zoom into it")), svg);
  try {
    await load(true);
  } catch (e) {
    showError(panel, e);
  }
}
