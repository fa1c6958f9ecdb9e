// torch-gprof TensorBoard tab. TensorBoard loads this ES module in an iframe whose <base> is
// plugin/gprof/, so every fetch is relative ("./graph?...") and works under --path_prefix. The page
// talks to the TensorBoard server only; Graphviz (WebAssembly) is served from ./static/vendor/.

const PHASE_SETS = {
  forward: ["forward"],
  backward: ["backward"],
  "forward+backward": ["forward", "backward"],
  all: ["forward", "backward", "optimizer", "other"],
};

const state = {
  runs: [], run: null, rank: null, step: null,
  tab: "graph", expanded: new Set(), phases: "forward", colorBy: "time",
  graph: null, opsGroup: "op", opsSort: "host_self_ns", opsOrder: "desc", selected: null,
};
let vizPromise = null;

// ------------------------------------------------------------------------------ helpers
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "onclick" || k === "onchange") e[k] = v;
    else if (v !== null && v !== undefined) e.setAttribute(k, v);
  }
  for (const c of children.flat()) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

export function fmtNs(ns) {
  if (ns === null || ns === undefined) return "–";
  if (ns >= 1e9) return (ns / 1e9).toFixed(2) + " s";
  if (ns >= 1e6) return (ns / 1e6).toFixed(2) + " ms";
  if (ns >= 1e3) return (ns / 1e3).toFixed(1) + " us";
  return ns + " ns";
}

export function fmtBytes(b) {
  if (b === null || b === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = Math.abs(b);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (b < 0 ? "-" : "") + (i ? v.toFixed(2) : v) + " " + units[i];
}

function params(extra = {}) {
  const p = new URLSearchParams({ run: state.run, rank: state.rank, step: state.step, ...extra });
  return p.toString();
}

async function getJSON(route, extra = {}) {
  const res = await fetch(`./${route}?${params(extra)}`);
  const text = await res.text();
  if (!res.ok) throw new Error(text || `${route}: HTTP ${res.status}`);
  return JSON.parse(text);
}

function showError(where, err) {
  where.replaceChildren(el("div", { class: "error" }, String(err.message || err)));
}

function shapes(ts) {
  return ts.map((t) => `${t.dtype}[${t.shape.join(",")}]`).join(", ") || "–";
}

// ------------------------------------------------------------------------------ layout
function buildShell() {
  document.body.replaceChildren();
  const style = el("link", { rel: "stylesheet", href: new URL("./style.css", import.meta.url).href });
  document.head.append(style);
  const sel = (id, label) => el("label", {}, label + " ", el("select", { id }));
  const tabs = ["graph", "ops", "modules", "memory", "analyses", "diff", "ranks"];
  const header = el("header", {},
    el("strong", {}, "torch-gprof"), sel("sel-run", "run"), sel("sel-rank", "rank"), sel("sel-step", "step"),
    el("nav", {}, tabs.map((t) => el("button", { class: "tab", "data-tab": t, onclick: () => showTab(t) }, t))),
    el("span", { id: "kineto" }));
  const main = el("main", {},
    el("section", { id: "panel" }),
    el("aside", { id: "inspector" }, el("p", { class: "muted" }, "Click a node to inspect it.")));
  document.body.append(header, el("div", { id: "summary" }), main);
  for (const id of ["sel-run", "sel-rank", "sel-step"]) {
    document.getElementById(id).onchange = onSelect;
  }
}

function fillSelect(id, values, current, label = (v) => v) {
  const s = document.getElementById(id);
  s.replaceChildren(...values.map((v) => el("option", { value: v }, label(v))));
  s.value = current;
}

function onSelect(ev) {
  const v = ev.target.value;
  if (ev.target.id === "sel-run") { state.run = v; state.rank = state.step = null; }
  if (ev.target.id === "sel-rank") state.rank = Number(v);
  if (ev.target.id === "sel-step") state.step = Number(v);
  state.expanded = new Set();
  state.selected = null;
  loadStep();
}

async function loadStep() {
  const run = state.runs.find((r) => r.run === state.run) || state.runs[0];
  state.run = run.run;
  if (state.rank === null || !run.ranks.includes(state.rank)) state.rank = run.ranks[0];
  if (state.step === null || !run.steps.includes(state.step)) state.step = run.steps[run.steps.length - 1];
  fillSelect("sel-run", state.runs.map((r) => r.run), state.run);
  fillSelect("sel-rank", run.ranks, state.rank);
  fillSelect("sel-step", run.steps, state.step);
  const summary = document.getElementById("summary");
  try {
    const s = await getJSON("step");
    state.summary = s;
    summary.replaceChildren(
      el("span", {}, `${s.nodes.toLocaleString()} nodes`),
      el("span", {}, `op time ${fmtNs(s.time_ns)} of ${fmtNs(s.wall_ns)} wall`),
      el("span", {}, `peak ${fmtBytes(s.peak_memory_bytes)}`),
      el("span", {}, `${(s.flops / 1e9).toFixed(2)} GFLOP`),
      s.complete ? "" : el("span", { class: "error" }, `incomplete step: ${s.error}`));
    const k = document.getElementById("kineto");
    k.replaceChildren(s.kineto_url ? el("a", { href: "./" + s.kineto_url, download: "trace.json" }, "Kineto trace") : "");
  } catch (e) {
    showError(summary, e);
  }
  showTab(state.tab);
}

function showTab(tab) {
  state.tab = tab;
  for (const b of document.querySelectorAll("button.tab")) b.classList.toggle("active", b.dataset.tab === tab);
  const panel = document.getElementById("panel");
  panel.replaceChildren();
  ({ graph: graphTab, ops: opsTab, modules: modulesTab, memory: memoryTab, analyses: analysesTab,
     diff: diffTab, ranks: ranksTab })[tab](panel);
}

// ------------------------------------------------------------------------------ graph
function graphTab(panel) {
  const phaseSel = el("select", { id: "sel-phases" }, Object.keys(PHASE_SETS).map((p) => el("option", { value: p }, p)));
  phaseSel.value = state.phases;
  phaseSel.onchange = () => { state.phases = phaseSel.value; loadGraph(); };
  const colorSel = el("select", { id: "sel-color" }, el("option", { value: "time" }, "time"),
    el("option", { value: "memory" }, "memory"));
  colorSel.value = state.colorBy;
  colorSel.onchange = () => { state.colorBy = colorSel.value; paintGraph(); };
  const collapse = el("button", { onclick: () => { state.expanded = new Set(); loadGraph(); } }, "collapse all");
  panel.append(
    el("div", { class: "toolbar" }, el("label", {}, "phases ", phaseSel), el("label", {}, "colour by ", colorSel),
      collapse, el("span", { class: "muted" }, "click a module to expand it, its frame to collapse it; ",
        "dashed: backward → forward partner; orange: unfused chain; red: hazard")),
    el("div", { id: "graph" }, el("p", { class: "muted" }, "laying out…")));
  loadGraph();
}

async function loadGraph() {
  const target = document.getElementById("graph");
  try {
    state.graph = await getJSON("graph", {
      expanded: [...state.expanded].join(","), phases: PHASE_SETS[state.phases].join(","),
    });
    await paintGraph();
  } catch (e) {
    if (target) showError(target, e);
  }
}

function quote(s) {
  return '"' + String(s).replace(/\\/g, "\\\\").replace(/"/g, '\\"') + '"';
}

function heat(v, max) {
  // white -> amber -> red on a square-root scale, so small boxes stay readable
  const t = max > 0 ? Math.sqrt(Math.max(0, v) / max) : 0;
  const r = 255, g = Math.round(255 - 170 * t), b = Math.round(255 - 235 * t);
  return "#" + [r, g, b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

function boxLabel(b) {
  const metric = state.colorBy === "time" ? fmtNs(b.dur_ns) : fmtBytes(b.alloc_bytes);
  const phase = b.phase === "forward" ? "" : ` [${b.phase.slice(0, 3)}]`;
  let title;
  if (b.kind === "module") {
    const name = b.module === "-" ? "(outside modules)" : b.module.split(".").pop();
    title = `${name}${b.type ? " : " + b.type : ""}${phase}\n${b.count} ops`;
  } else if (b.kind === "ops") {
    title = `${b.op.replace(/^aten\./, "").replace(/\.default$/, "")} ×${b.count}${phase}`;
  } else {
    title = `${b.op.replace(/^aten\./, "").replace(/\.default$/, "")}${phase}\n#${b.idx}`;
  }
  const marks = [];
  // plain words: headless and minimal systems often lack fonts for symbols
  if (b.marks.hazards) marks.push(`${b.marks.hazards} hazard`);
  if (b.marks.chains) marks.push(`${b.marks.chains} unfused`);
  if (b.marks.regions) marks.push(`${b.marks.regions} in compile region`);
  return `${title}\n${metric}${marks.length ? "\n" + marks.join(", ") : ""}`;
}

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
      const attrs = [`id="b${i}"`, `label=${quote(boxLabel(b))}`, `fillcolor="${heat(metric(b), max)}"`];
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

async function paintGraph() {
  const target = document.getElementById("graph");
  if (!target || !state.graph) return;
  const t0 = performance.now();
  vizPromise = vizPromise || import("./vendor/viz.js").then((m) => m.instance());
  const viz = await vizPromise;
  const svg = viz.renderSVGElement(toDot(state.graph, state.colorBy));
  target.replaceChildren(svg);
  for (const g of svg.querySelectorAll("g.node")) {
    const b = state.graph.boxes[Number(g.id.slice(1))];
    if (!b) continue;
    g.dataset.box = b.id;
    g.style.cursor = "pointer";
    g.onclick = () => onBoxClick(b);
  }
  for (const g of svg.querySelectorAll("g.cluster")) {
    const c = state.graph.clusters[Number(g.id.slice(1))];
    g.dataset.cluster = c;
    g.style.cursor = "pointer";
    g.onclick = (ev) => { if (ev.target.closest("g.node")) return; collapse(c); };
  }
  document.body.dataset.graphMs = String(Math.round(performance.now() - t0));
  // ms since this page's navigation started: the benchmark's "first paint" of the collapsed graph
  if (!document.body.dataset.paintedAt) document.body.dataset.paintedAt = String(Math.round(performance.now()));
  document.body.dataset.ready = "1";
}

function collapse(module) {
  for (const m of [...state.expanded]) if (m === module || m.startsWith(module + ".")) state.expanded.delete(m);
  loadGraph();
}

function onBoxClick(b) {
  if (b.kind === "module") {
    state.expanded.add(b.module);
    loadGraph();
  } else if (b.kind === "node") {
    selectNode(b.idx);
  } else {
    document.getElementById("inspector").replaceChildren(el("h3", {}, b.op), el("p", {}, `${b.count} calls in ${b.module}` +
      ` (${b.phase}), ${fmtNs(b.dur_ns)} total, ${fmtBytes(b.alloc_bytes)} allocated`),
    el("p", { class: "muted" }, "Too many ops to show one by one; the op table lists them by shape."));
  }
}

// ------------------------------------------------------------------------------ inspector
async function selectNode(idx) {
  state.selected = idx;
  const pane = document.getElementById("inspector");
  try {
    const n = await getJSON("node", { idx });
    const row = (k, v) => el("tr", {}, el("th", {}, k), el("td", {}, v));
    const link = (p) => (p ? el("a", { href: "#", onclick: (ev) => { ev.preventDefault(); selectNode(p.idx); } },
      `#${p.idx} ${p.op} (${p.phase})`) : "–");
    const analysisList = (items, what) => (items.length ? el("ul", {}, items.map((i) =>
      el("li", {}, `${what} ${i.number + 1}: `, Object.entries(i.fields).map(([k, v]) => `${k}=${v}`).join(", ")))) : "–");
    pane.replaceChildren(
      el("h3", { id: "insp-op" }, n.op),
      el("table", { class: "kv", id: "insp-table" },
        row("node", `#${n.idx}`), row("key", n.key), row("phase", n.phase),
        row("module", n.module === null ? "(outside modules)" : `${n.module || "(root)"}${n.module_type ? " : " + n.module_type : ""}`),
        row("inputs", shapes(n.inputs)), row("outputs", shapes(n.outputs)),
        row("host time", fmtNs(n.dur_ns)), row("device time", fmtNs(n.device_ns)),
        row("allocated", fmtBytes(n.alloc_bytes)), row("freed", fmtBytes(n.freed_bytes)),
        row("live after", fmtBytes(n.live_bytes)), row("FLOPs", n.flops.toLocaleString()),
        row("source", n.source || "–"), row("grad_fn", n.grad_fn || "–"), row("parameter", n.param || "–"),
        row("forward partner", link(n.forward_partner)),
        row("backward partners", n.backward_partners.length ? el("span", {}, n.backward_partners.map((p) => el("div", {}, link(p)))) : "–"),
        row("producers", n.producers.length ? el("span", {}, n.producers.map((p) => el("div", {}, link(p)))) : "–"),
        row("consumers", n.consumers.length ? el("span", {}, n.consumers.map((p) => el("div", {}, link(p)))) : "–"),
        row("fusion chain", analysisList(n.fusion_chains, "chain")),
        row("hazards", analysisList(n.hazards, "hazard")),
        row("compile region", analysisList(n.compile_regions, "region"))));
  } catch (e) {
    showError(pane, e);
  }
}

// ------------------------------------------------------------------------------ tables
function table(id, columns, rows, onSort, sort) {
  const head = el("tr", {}, columns.map(([key, label]) => el("th", {
    "data-col": key, class: key === sort.key ? `sorted ${sort.order}` : "",
    onclick: onSort ? () => onSort(key) : null,
  }, label)));
  const body = rows.map((r) => el("tr", {}, columns.map(([key, , fmt]) => el("td", { "data-col": key, "data-raw": r[key] },
    fmt ? fmt(r[key], r) : r[key] ?? "–"))));
  return el("table", { id, class: "grid" }, el("thead", {}, head), el("tbody", {}, body));
}

async function opsTab(panel) {
  const groupSel = el("select", { id: "sel-opgroup" }, el("option", { value: "op" }, "op"),
    el("option", { value: "op_shape" }, "op + input shape"), el("option", { value: "module" }, "module"));
  groupSel.value = state.opsGroup;
  groupSel.onchange = () => { state.opsGroup = groupSel.value; showTab("ops"); };
  const holder = el("div", {}, "loading…");
  panel.append(el("div", { class: "toolbar" }, el("label", {}, "group by ", groupSel),
    el("span", { class: "muted" }, "click a column to sort; host self = total for leaf aten ops")), holder);
  try {
    const d = await getJSON("ops", { group: state.opsGroup, sort: state.opsSort, order: state.opsOrder });
    if (d.pending) {
      holder.replaceChildren(el("p", { class: "muted" }, `${d.message}…`));
      setTimeout(() => { if (state.tab === "ops" && panel.isConnected) showTab("ops"); }, 1000);
      return;
    }
    const first = state.opsGroup === "module" ? [["module", "module", (v) => (v === null ? "(outside)" : v || "(root)")]]
      : [["op", "op"]];
    if (state.opsGroup === "op_shape") first.push(["input_shapes", "input shapes"]);
    const cols = [...first, ["calls", "calls"], ["host_self_ns", "host self", fmtNs], ["host_total_ns", "host total", fmtNs],
      ["device_self_ns", "device self", fmtNs], ["device_total_ns", "device total", fmtNs], ["mean_ns", "mean", fmtNs],
      ["min_ns", "min", fmtNs], ["max_ns", "max", fmtNs], ["alloc_bytes", "allocated", fmtBytes],
      ["flops", "FLOPs", (v) => v.toLocaleString()], ["phases", "phases"]];
    const onSort = (key) => {
      state.opsOrder = state.opsSort === key && state.opsOrder === "desc" ? "asc" : "desc";
      state.opsSort = key;
      showTab("ops");
    };
    holder.replaceChildren(el("p", { class: "muted" }, `${d.total} rows${d.total > d.rows.length ? `, first ${d.rows.length} shown` : ""}`),
      table("op-table", cols, d.rows, onSort, { key: d.sort, order: d.order }));
  } catch (e) {
    showError(holder, e);
  }
}

async function modulesTab(panel) {
  try {
    const rows = await getJSON("modules");
    const name = (v) => (v === "" ? "(root)" : "  ".repeat(v.split(".").length) + v.split(".").pop());
    panel.append(table("module-table", [["module", "module", name], ["type", "type"], ["forward_ns", "forward", fmtNs],
      ["backward_ns", "backward", fmtNs], ["optimizer_ns", "optimizer", fmtNs], ["alloc_bytes", "allocated", fmtBytes],
      ["saved_activation_bytes", "activations saved", fmtBytes], ["nodes", "ops"], ["flops", "FLOPs", (v) => v.toLocaleString()]],
    rows, null, {}));
  } catch (e) {
    showError(panel, e);
  }
}

// ------------------------------------------------------------------------------ memory
const PHASE_COLORS = { forward: "#1e88e5", backward: "#8e24aa", optimizer: "#43a047", other: "#757575" };
const CATEGORY_COLORS = { parameter: "#90caf9", buffer: "#b0bec5", gradient: "#ce93d8", activation: "#ffcc80",
  optimizer: "#a5d6a7", temporary: "#ef9a9a", other: "#e0e0e0" };

async function memoryTab(panel) {
  try {
    const m = await getJSON("memory", { points: 800 });
    const W = 900, H = 260, pad = 40;
    const pts = m.points;
    if (!pts.length) { panel.append(el("p", {}, "this step has no nodes")); return; }
    const x0 = pts[0][0], x1 = Math.max(pts[pts.length - 1][0], x0 + 1);
    const ymax = Math.max(...pts.map((p) => p[1]), m.peak_bytes, 1);
    const sx = (i) => pad + ((i - x0) / (x1 - x0)) * (W - 2 * pad);
    const sy = (v) => H - pad - (v / ymax) * (H - 2 * pad);
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("id", "memory-curve");
    const add = (tag, attrs) => { const e = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); svg.append(e); return e; };
    const cc = m.category_curve;
    if (cc && cc.nodes && cc.nodes.length > 1) {  // stacked areas: live bytes by category along the step
      let below = cc.nodes.map(() => 0);
      for (const [cat, values] of Object.entries(cc.categories)) {
        const above = below.map((b, k) => b + values[k]);
        const top = cc.nodes.map((n, k) => `${sx(n)},${sy(above[k])}`);
        const bottom = cc.nodes.map((n, k) => `${sx(n)},${sy(below[k])}`).reverse();
        add("polygon", { points: [...top, ...bottom].join(" "), fill: CATEGORY_COLORS[cat] || "#bbb",
          "fill-opacity": 0.45, class: `cat-area cat-${cat}` }).append(
          Object.assign(document.createElementNS(ns, "title"), { textContent: cat }));
        below = above;
      }
    }
    for (let i = 1; i < pts.length; i++) {
      add("line", { x1: sx(pts[i - 1][0]), y1: sy(pts[i - 1][1]), x2: sx(pts[i][0]), y2: sy(pts[i][1]),
        stroke: PHASE_COLORS[pts[i][2]] || "#333", "stroke-width": 2 });
    }
    if (m.peak_node !== null) {
      add("line", { x1: sx(m.peak_node), x2: sx(m.peak_node), y1: pad, y2: H - pad, stroke: "#d32f2f", "stroke-dasharray": "4 3" });
      add("text", { x: sx(m.peak_node) + 4, y: pad + 10, fill: "#d32f2f", "font-size": 11 }).textContent =
        `peak ${fmtBytes(m.peak_bytes)} at node #${m.peak_node}`;
    }
    add("text", { x: pad, y: H - 10, "font-size": 11 }).textContent = `node #${x0}`;
    add("text", { x: W - pad - 60, y: H - 10, "font-size": 11 }).textContent = `node #${x1}`;
    add("text", { x: 2, y: pad - 8, "font-size": 11 }).textContent = fmtBytes(ymax);
    svg.onclick = (ev) => {
      const r = svg.getBoundingClientRect();
      const x = ((ev.clientX - r.left) / r.width) * W;
      let best = pts[0];
      for (const p of pts) if (Math.abs(sx(p[0]) - x) < Math.abs(sx(best[0]) - x)) best = p;
      selectNode(best[0]);
    };
    const cats = Object.entries(m.by_category || {}).sort((a, b) => b[1] - a[1]);
    const total = cats.reduce((s, c) => s + c[1], 0) || 1;
    panel.append(el("p", { class: "muted" }, `live bytes after each node (max per ${m.bucket_nodes} nodes); line colour = phase, areas = category; click to inspect the node`),
      el("div", { class: "legend" }, Object.entries(PHASE_COLORS).map(([p, c]) => el("span", { style: `color:${c}` }, `■ ${p} `))),
      el("div", { class: "legend" }, Object.keys((cc && cc.categories) || {}).map((k) => el("span", { style: `color:${CATEGORY_COLORS[k] || "#999"}` }, `▮ ${k} `))),
      svg, el("h4", {}, "at the peak, by category"),
      el("div", { class: "stack" }, cats.map(([k, v]) => el("div", { class: `cat cat-${k}`, style: `flex:${v / total}`, title: `${k} ${fmtBytes(v)}` }, k))),
      table("memory-categories", [["0", "category"], ["1", "bytes", fmtBytes]], cats.map(([k, v]) => ({ 0: k, 1: v })), null, {}));
  } catch (e) {
    showError(panel, e);
  }
}

// ------------------------------------------------------------------------------ analyses
async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const t = el("textarea", {}, text);
    document.body.append(t);
    t.select();
    document.execCommand("copy");
    t.remove();
  }
  button.textContent = "copied";
}

async function analysesTab(panel) {
  try {
    const a = await getJSON("analyses");
    const titles = { fusion: "Unfused chains", hazards: "Graph-break hazards", compile_suggestions: "Compile suggestions",
      op_classes: "Op classes" };
    for (const [name, title] of Object.entries(titles)) {
      const r = a[name];
      const sec = el("section", { class: "analysis", id: `analysis-${name}` }, el("h3", {}, title));
      if (!r.present) sec.append(el("p", { class: "muted" }, "no analysis results"));
      else if (r.error) sec.append(el("p", { class: "error" }, `analysis failed: ${r.error}`));
      else {
        if (Object.keys(r.summary).length) sec.append(el("p", {}, Object.entries(r.summary).map(([k, v]) => `${k}: ${v}`).join(" · ")));
        r.items.forEach((item, i) => {
          const card = el("div", { class: "card" }, el("strong", {}, `${i + 1}. `),
            Object.entries(item.fields).map(([k, v]) => el("span", { class: "field" }, `${k}: ${v} `)),
            Object.entries(item.lists).map(([k, v]) => el("div", { class: "field" }, `${k}: ${v.join(", ")}`)));
          if (item.nodes.length) {
            card.append(el("div", {}, "nodes: ", item.nodes.slice(0, 30).map((idx) =>
              el("a", { href: "#", onclick: (ev) => { ev.preventDefault(); selectNode(idx); } }, `#${idx} `))));
          }
          if (item.snippet) {
            const btn = el("button", { class: "copy" }, "copy");
            btn.onclick = () => copyText(item.snippet, btn);
            card.append(el("div", { class: "snippet" }, btn, el("pre", {}, item.snippet)));
          }
          sec.append(card);
        });
        if (!r.items.length && !Object.keys(r.summary).length) sec.append(el("p", { class: "muted" }, "nothing found"));
      }
      panel.append(sec);
    }
  } catch (e) {
    showError(panel, e);
  }
}

// ------------------------------------------------------------------------------ diff, ranks
async function diffTab(panel) {
  const run = state.runs.find((r) => r.run === state.run);
  const a = el("select", { id: "diff-a" }, run.steps.map((s) => el("option", { value: s }, s)));
  const b = el("select", { id: "diff-b" }, run.steps.map((s) => el("option", { value: s }, s)));
  a.value = run.steps[0];
  b.value = state.step;
  const out = el("div", {});
  const go = async () => {
    try {
      const d = await getJSON("diff", { a: a.value, b: b.value });
      out.replaceChildren(el("p", { id: "diff-summary" }, `step ${a.value}: ${d.nodes_a} nodes → step ${b.value}: ${d.nodes_b} nodes; ` +
        `${d.added} added, ${d.removed} removed, ${d.unchanged} unchanged (by stable node key)`),
      table("diff-table", [["change", "change"], ["module", "module", (v) => (v === null ? "-" : v || "(root)")], ["phase", "phase"],
        ["op", "op"], ["count_a", `in step ${a.value}`], ["count_b", `in step ${b.value}`], ["first_key", "first differing key"]],
      d.changes, null, {}));
    } catch (e) {
      showError(out, e);
    }
  };
  a.onchange = b.onchange = go;
  panel.append(el("div", { class: "toolbar" }, el("label", {}, "step A ", a), el("label", {}, "step B ", b)), out);
  go();
}

async function ranksTab(panel) {
  try {
    const d = await getJSON("ranks");
    const metrics = [["nodes", "nodes", (v) => v], ["time_ns", "op time", fmtNs], ["wall_ns", "wall", fmtNs],
      ["peak_memory_bytes", "peak memory", fmtBytes], ["flops", "FLOPs", (v) => (v ?? 0).toLocaleString()],
      ["backward_linked", "backward linked", (v) => v], ["error", "error", (v) => v ?? ""]];
    const head = el("tr", {}, el("th", {}, "metric"), d.ranks.map((r) => el("th", {}, `rank ${r.rank}`)));
    const rows = metrics.map(([k, label, f]) => el("tr", {}, el("th", {}, label), d.ranks.map((r) => el("td", {}, f(r[k])))));
    panel.append(el("p", { class: "muted" }, `step ${d.step}: ${d.ranks.length} rank(s) side by side`),
      el("table", { id: "rank-table", class: "grid" }, el("thead", {}, head), el("tbody", {}, rows)));
  } catch (e) {
    showError(panel, e);
  }
}

// ------------------------------------------------------------------------------ entry
export async function render() {
  buildShell();
  try {
    const res = await fetch("./runs");
    state.runs = await res.json();
  } catch (e) {
    showError(document.getElementById("panel"), e);
    return;
  }
  if (!state.runs.length) {
    document.getElementById("panel").replaceChildren(el("p", {}, "No torch-gprof runs in this logdir yet. " +
      "Record one with `with gprof.profile(logdir=..., run=...) as prof:`."));
    document.body.dataset.ready = "1";
    return;
  }
  state.run = state.runs[0].run;
  await loadStep();
}
