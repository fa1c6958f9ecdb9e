// Graph rendering: the server's visible boxes and merged edges become Graphviz DOT, laid out by Graphviz
// compiled to WebAssembly (vendor/viz.js, loaded on first use from this plugin's own static route).

import { fmtBytes, fmtModule, fmtNs, shortOp } from "./format.js";

/** @typedef {import("./api.js").StepGraph} StepGraph */
/** @typedef {import("./api.js").GraphBox} GraphBox */

/** @type {Promise<any> | null} */
let vizPromise = null;

function quote(s) {
  return '"' + String(s).replace(/\\/g, "\\\\").replace(/"/g, '\\"') + '"';
}

function heat(v, max) {
  // white -> amber -> red on a square-root scale, so small boxes stay readable
  const t = max > 0 ? Math.sqrt(Math.max(0, v) / max) : 0;
  const r = 255, g = Math.round(255 - 170 * t), b = Math.round(255 - 235 * t);
  return "#" + [r, g, b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

function boxLabel(b, colorBy) {
  const metric = colorBy === "time" ? fmtNs(b.dur_ns) : fmtBytes(b.alloc_bytes);
  const phase = b.phase === "forward" ? "" : ` [${b.phase.slice(0, 3)}]`;
  let title;
  if (b.kind === "module") {
    const name = b.module === "-" ? fmtModule("-") : b.module.split(".").pop();
    title = `${name}${b.type ? " : " + b.type : ""}${phase}\n${b.count} ops`;
  } else if (b.kind === "ops") {
    title = `${shortOp(b.op)} ×${b.count}${phase}`;
  } else {
    title = `${shortOp(b.op)}${phase}\n#${b.idx}`;
  }
  const marks = [];
  // plain words: headless and minimal systems often lack fonts for symbols
  if (b.marks.hazards) marks.push(`${b.marks.hazards} hazard`);
  if (b.marks.chains) marks.push(`${b.marks.chains} unfused`);
  if (b.marks.regions) marks.push(`${b.marks.regions} in compile region`);
  return `${title}\n${metric}${marks.length ? "\n" + marks.join(", ") : ""}`;
}

/**
 * The graph as DOT: expanded modules are nested clusters (`c<i>`, i indexing `graph.clusters`), boxes are
 * nodes (`b<i>`, i indexing `graph.boxes`) filled by time or allocated bytes.
 * @param {StepGraph} graph
 * @param {"time"|"memory"} colorBy
 * @returns {string}
 */
export function toDot(graph, colorBy) {
  const metric = (b) => (colorBy === "time" ? b.dur_ns : b.alloc_bytes);
  const max = Math.max(0, ...graph.boxes.map(metric));
  const byParent = new Map();
  graph.boxes.forEach((b, i) => {
    const parent = graph.clusters.includes(b.parent) ? b.parent : "";
    if (!byParent.has(parent)) byParent.set(parent, []);
    byParent.get(parent).push(i);
  });
  const ids = new Map(graph.boxes.map((b, i) => [b.id, `b${i}`]));
  const lines = ["digraph G {", 'graph [rankdir=TB, fontname="Helvetica", fontsize=10, nodesep=0.25, ranksep=0.35];',
    'node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10, margin="0.08,0.04"];',
    'edge [fontname="Helvetica", fontsize=8, color="#777777", arrowsize=0.6];'];
  const emit = (parent, indent) => {
    for (const i of byParent.get(parent) || []) {
      const b = graph.boxes[i];
      const attrs = [`id="b${i}"`, `label=${quote(boxLabel(b, colorBy))}`, `fillcolor="${heat(metric(b), max)}"`];
      if (b.kind === "module") attrs.push('shape=box3d');
      if (b.marks.hazards) attrs.push('color="#d32f2f"', "penwidth=2.5");
      else if (b.marks.chains) attrs.push('color="#f57c00"', "penwidth=2.5");
      lines.push(`${indent}b${i} [${attrs.join(", ")}];`);
    }
    graph.clusters.filter((c) => (c.includes(".") ? c.slice(0, c.lastIndexOf(".")) : "") === parent && c !== parent)
      .forEach((c) => {
        const ci = graph.clusters.indexOf(c);
        const name = c === "-" ? "(outside modules)" : c;
        lines.push(`${indent}subgraph cluster_${ci} { id="c${ci}"; label=${quote(`▾ ${name} : ${graph.types[c] || ""}`)}; ` +
          'style="rounded,dashed"; color="#1565c0"; fontcolor="#1565c0";');
        emit(c, indent + "  ");
        lines.push(`${indent}}`);
      });
  };
  emit("", "  ");
  for (const e of graph.edges) {
    const a = ids.get(e.src), b = ids.get(e.dst);
    if (!a || !b) continue;
    if (e.kind === "partner") lines.push(`  ${a} -> ${b} [style=dashed, color="#7e57c2", constraint=false, arrowhead=empty];`);
    else lines.push(`  ${a} -> ${b} [label=${quote(fmtBytes(e.bytes))}, penwidth=${(1 + Math.log10(1 + e.bytes) / 3).toFixed(2)}];`);
  }
  lines.push("}");
  return lines.join("\n");
}

/**
 * What a box's hover tooltip says: op or module in full, phase, size and cost.
 * @param {GraphBox} b
 * @returns {string}
 */
function boxTooltip(b) {
  const cost = `${fmtNs(b.dur_ns)}, ${fmtBytes(b.alloc_bytes)} allocated`;
  if (b.kind === "module") return `${fmtModule(b.module)}${b.type ? " : " + b.type : ""} (${b.phase}), ${b.count} ops, ${cost}; click to expand`;
  if (b.kind === "ops") return `${b.op} ×${b.count} in ${fmtModule(b.module)} (${b.phase}), ${cost}`;
  return `${b.op} #${b.idx} in ${fmtModule(b.module)} (${b.phase}), ${cost}`;
}

/** @param {Element} g a Graphviz group @param {string} text its new hover text (replacing the Graphviz id) */
function setTitle(g, text) {
  const t = g.querySelector(":scope > title");
  if (t) t.textContent = text;
}

/**
 * Lay the graph out as an SVG whose boxes carry `data-box` (the box id) and whose expanded-module frames
 * carry `data-cluster` (the module), edges `data-src`/`data-dst` (box ids); clicks on them call the handlers (a click on a box inside a frame
 * goes to the box only). Hover texts name ops and modules.
 * @param {StepGraph} graph
 * @param {"time"|"memory"} colorBy
 * @param {{onBox: (box: GraphBox, g: Element) => void, onCluster: (module: string, g: Element) => void}} handlers
 * @returns {Promise<SVGSVGElement>}
 */
export async function renderGraph(graph, colorBy, { onBox, onCluster }) {
  vizPromise = vizPromise || import("./vendor/viz.js").then((m) => m.instance());
  const viz = await vizPromise;
  const svg = viz.renderSVGElement(toDot(graph, colorBy));
  const byIndex = (id) => graph.boxes[Number(id.slice(1))];
  for (const g of svg.querySelectorAll("g.node")) {
    const b = byIndex(g.id);
    if (!b) continue;
    g.dataset.box = b.id;
    setTitle(g, boxTooltip(b));
    g.onclick = () => onBox(b, g);
  }
  for (const g of svg.querySelectorAll("g.cluster")) {
    const c = graph.clusters[Number(g.id.slice(1))];
    g.dataset.cluster = c;
    setTitle(g, `${fmtModule(c)}${graph.types[c] ? " : " + graph.types[c] : ""}; click the frame to collapse`);
    g.onclick = (ev) => { if (ev.target.closest("g.node")) return; onCluster(c, g); };
  }
  for (const g of svg.querySelectorAll("g.edge")) {
    const [a, b] = (g.querySelector("title")?.textContent || "").split("->").map(byIndex);
    if (!a || !b) continue;
    g.dataset.src = a.id;
    g.dataset.dst = b.id;
    setTitle(g, `${boxTooltip(a).split(",")[0]} → ${boxTooltip(b).split(",")[0]}`);
  }
  return svg;
}

/**
 * The first drawn element among `ids`: box ids (`m:…`, `o:…`, `n:…`) or `cluster:<module>` for a frame.
 * @param {string[]} ids
 * @returns {Element|null}
 */
export function find(ids) {
  for (const id of ids) {
    const sel = id.startsWith("cluster:") ? `g.cluster[data-cluster="${CSS.escape(id.slice(8))}"]`
      : `g.node[data-box="${CSS.escape(id)}"]`;
    const e = document.querySelector(`#graph-box ${sel}`);
    if (e) return e;
  }
  return null;
}

/**
 * Give class `cls` to the first drawn element among `ids` only (the selection, a search hit).
 * @param {string} cls
 * @param {string[]} ids
 * @returns {Element|null} the element marked
 */
export function mark(cls, ids) {
  for (const e of document.querySelectorAll(`#graph-box .${cls}`)) e.classList.remove(cls);
  const e = find(ids);
  if (e) e.classList.add(cls);
  return e;
}
