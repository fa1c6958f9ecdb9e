// The overview, the tab's landing view: the step's headline and where its time goes by phase, then what
// to look at first: the findings ranked by estimated saving, numbered as in the text report and the graph,
// each one click from its place in the graph; below them time by op class, the heaviest modules and the
// trend across the run's steps.
// Everything comes from one request (the overview route).

import { fetchOverview } from "../api.js";
import { svgEl } from "../chart.js";
import { actionLink, el, showError } from "../dom.js";
import { fmtBytes, fmtCount, fmtFlop, fmtModule, fmtNs, fmtPct } from "../format.js";
import { goToModule } from "../nav.js";
import { PHASE_COLORS, colorOf } from "../palette.js";
import { state } from "../state.js";
import { rankedCard } from "./findingcard.js";

const FINDINGS_SHOWN = 10;

/**
 * A horizontal bar split into parts, with a legend of each part's time and share.
 * @param {string} id
 * @param {{name: string, time_ns: number, share: number}[]} parts
 * @returns {HTMLElement}
 */
function splitBar(id, parts) {
  const shown = parts.filter((p) => p.time_ns > 0);
  const color = (p) => colorOf(PHASE_COLORS, p.name);
  return el("div", { id },
    el("div", { class: "stack" }, shown.map((p) => el("div", { style: `flex:${p.share};background:${color(p)}`,
      title: `${p.name} ${fmtNs(p.time_ns)}` }, p.name))),
    el("div", { class: "legend" }, shown.map((p) => el("span", {}, el("span", { class: "dot", style: `background:${color(p)}` }),
      `${p.name} ${fmtNs(p.time_ns)} (${fmtPct(p.share)})`))));
}

/**
 * Rows of a bar table: label, note, a bar scaled to the largest value, and the value in its unit.
 * @param {string} id
 * @param {{label: string, note: string, value: number, text: string, onclick?: () => void}[]} rows
 * @returns {HTMLElement}
 */
function barTable(id, rows) {
  const max = Math.max(1, ...rows.map((r) => r.value));
  return el("table", { id, class: "bars" }, rows.map((r) => el("tr", { class: r.onclick ? "link" : null, onclick: r.onclick || null },
    el("td", { title: r.label }, r.label), el("td", { class: "muted" }, r.note),
    el("td", { class: "bar" }, el("div", { style: `width:${(100 * r.value) / max}%` })), el("td", {}, r.text))));
}

/**
 * One small line chart of a value across steps, the selected step marked.
 * @param {string} title
 * @param {{step: number}[]} trend
 * @param {string} field
 * @param {(v: number) => string} fmt
 * @returns {HTMLElement}
 */
function spark(title, trend, field, fmt) {
  const W = 300, H = 70, values = trend.map((t) => t[field] ?? 0), max = Math.max(1, ...values);
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart spark" });
  const x = (i) => 10 + (i / Math.max(1, values.length - 1)) * (W - 20), y = (v) => H - 8 - (v / max) * (H - 24);
  svgEl("polyline", { points: values.map((v, i) => `${x(i)},${y(v)}`).join(" "), fill: "none", stroke: "#1565c0", "stroke-width": 2 }, svg);
  values.forEach((v, i) => svgEl("circle", { cx: x(i), cy: y(v), r: trend[i].step === state.step ? 4 : 2, fill: "#1565c0" }, svg)
    .append(Object.assign(svgEl("title", {}), { textContent: `step ${trend[i].step}: ${fmt(v)}` })));
  const now = trend.find((t) => t.step === state.step);
  return el("div", { class: "spark-box" }, el("div", { class: "muted" },
    `${title}: ${now ? fmt(now[field]) : "–"} (steps ${trend[0].step}–${trend[trend.length - 1].step})`), svg);
}

/**
 * @param {HTMLElement} panel
 * @returns {Promise<void>}
 */
export async function overviewView(panel) {
  try {
    const o = await fetchOverview(state);
    const h = o.headline;
    const findings = o.findings.slice(0, FINDINGS_SHOWN);
    panel.append(
      el("div", { id: "headline", class: "row" }, [["step wall time", fmtNs(h.wall_ns)], ["op time", fmtNs(h.time_ns)],
        ["peak memory", fmtBytes(h.peak_memory_bytes)], ["nodes", fmtCount(h.nodes)], ["compute", fmtFlop(h.flops)],
        ["findings", fmtCount(o.findings.length)]]
        .map(([k, v]) => el("div", { class: "stat" }, el("div", { class: "muted" }, k), el("strong", {}, v)))),
      el("h3", {}, "where the step's time goes, by phase"), splitBar("phase-split", o.time.by_phase),
      el("h3", {}, `findings, by estimated saving (${fmtCount(o.findings.length)}) `,
        actionLink("all analyses", () => document.querySelector("button.tab[data-tab='findings']").click())),
      el("p", { class: "muted", id: "marking" }, "numbered as in torch-gprof report; the graph marks the " +
        `${o.marking.marked} unfused chains that matter most with an orange border`),
      el("div", { id: "findings" }, findings.length ? findings.map(rankedCard)
        : el("p", { class: "muted" }, "nothing to improve was found in this step")),
      el("div", { class: "row" },
        el("div", {}, el("h3", {}, "by op class"), barTable("op-classes", o.time.by_op_class.map((c) => ({
          label: c.name, note: `${fmtCount(c.nodes)} ops`, value: c.time_ns, text: `${fmtNs(c.time_ns)} (${fmtPct(c.share)})` })))),
        el("div", {}, el("h3", {}, "heaviest modules (inclusive)"), barTable("top-modules", o.top_modules.map((m) => ({
          label: fmtModule(m.module), note: m.type || "", value: m.time_ns, text: fmtNs(m.time_ns),
          onclick: () => goToModule(m.module) }))))),
      ...(o.trend.length > 1 ? [el("h3", {}, "across steps"), el("div", { id: "trend", class: "row" },
        spark("wall time", o.trend, "wall_ns", fmtNs), spark("peak memory", o.trend, "peak_memory_bytes", fmtBytes),
        spark("nodes", o.trend, "nodes", fmtCount))] : []));
  } catch (e) {
    showError(panel, e);
  }
}
