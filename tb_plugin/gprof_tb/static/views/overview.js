// The overview, the tab's landing view: the step's headline, where its time goes (by phase), the
// heaviest modules, the trend across the run's steps, and the findings ranked by estimated saving, each
// one click from its place in the graph.

import { fetchAnalyses, fetchModules, fetchStep } from "../api.js";
import { svgEl } from "../chart.js";
import { actionLink, el, showError } from "../dom.js";
import { fmtBytes, fmtCount, fmtFlop, fmtModule, fmtNs, fmtPct } from "../format.js";
import { goToModule } from "../nav.js";
import { PHASE_COLORS, colorOf } from "../palette.js";
import { currentRun, state } from "../state.js";
import { analysisCard } from "./findingcard.js";

const TREND_STEPS = 30;

/**
 * A horizontal bar split into parts, with a legend of each part's value and share.
 * @param {string} id
 * @param {[string, number][]} parts
 * @param {(v: number) => string} fmt
 * @returns {HTMLElement}
 */
function splitBar(id, parts, fmt) {
  const total = parts.reduce((s, [, v]) => s + v, 0) || 1;
  const shown = parts.filter(([, v]) => v > 0);
  return el("div", { id },
    el("div", { class: "stack" }, shown.map(([k, v]) => el("div", { style: `flex:${v / total};background:${colorOf(PHASE_COLORS, k)}`,
      title: `${k} ${fmt(v)}` }, k))),
    el("div", { class: "legend" }, shown.map(([k, v]) => el("span", {}, el("span", { class: "dot",
      style: `background:${colorOf(PHASE_COLORS, k)}` }, ""), `${k} ${fmt(v)} (${fmtPct(v / total)})`))));
}

/**
 * The heaviest modules by inclusive time, a bar each; a click moves the graph there.
 * @param {Object<string, any>[]} modules the modules route's rows
 * @returns {HTMLElement}
 */
function topModules(modules) {
  const total = (r) => (r.forward_ns || 0) + (r.backward_ns || 0) + (r.optimizer_ns || 0) + (r.other_ns || 0);
  const byName = new Map(modules.map((r) => [r.module, r]));
  // a module with one child that takes all its time adds nothing: show the child
  const rows = modules.filter((r) => r.module !== "" && ![...byName.keys()].some((m) => m.startsWith(r.module + ".")
    && total(byName.get(m)) === total(r))).sort((a, b) => total(b) - total(a)).slice(0, 8);
  const max = Math.max(1, ...rows.map(total));
  return el("table", { id: "top-modules", class: "bars" }, rows.map((r) => el("tr", { class: "link", onclick: () => goToModule(r.module) },
    el("td", { title: fmtModule(r.module) }, fmtModule(r.module)), el("td", {}, r.type || ""),
    el("td", { class: "bar" }, el("div", { style: `width:${(100 * total(r)) / max}%` })), el("td", {}, fmtNs(total(r))))));
}

/**
 * Wall time and peak memory across the run's last steps, as two small line charts.
 * @returns {Promise<HTMLElement>}
 */
async function trend() {
  const steps = currentRun().steps.slice(-TREND_STEPS);
  const heads = await Promise.all(steps.map((step) => fetchStep({ ...state, step }).catch(() => null)));
  const line = (title, values, fmt) => {
    const W = 300, H = 70, max = Math.max(1, ...values.map((v) => v ?? 0));
    const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart spark" });
    const x = (i) => 10 + (i / Math.max(1, values.length - 1)) * (W - 20), y = (v) => H - 8 - ((v ?? 0) / max) * (H - 24);
    svgEl("polyline", { points: values.map((v, i) => `${x(i)},${y(v)}`).join(" "), fill: "none", stroke: "#1565c0", "stroke-width": 2 }, svg);
    values.forEach((v, i) => svgEl("circle", { cx: x(i), cy: y(v), r: steps[i] === state.step ? 4 : 2, fill: "#1565c0" }, svg)
      .append(Object.assign(svgEl("title", {}), { textContent: `step ${steps[i]}: ${fmt(v)}` })));
    return el("div", { class: "spark-box" }, el("div", { class: "muted" }, `${title}, steps ${steps[0]}–${steps[steps.length - 1]}`), svg);
  };
  return el("div", { id: "trend", class: "row" }, line("wall time", heads.map((h) => h && h.wall_ns), fmtNs),
    line("peak memory", heads.map((h) => h && h.peak_memory_bytes), fmtBytes), line("nodes", heads.map((h) => h && h.nodes), fmtCount));
}

/**
 * Every finding with an estimated saving, highest first.
 * @param {Object<string, any>} a the analyses route's answer
 * @returns {HTMLElement[]}
 */
function rankedFindings(a) {
  const all = [];
  for (const name of ["hazards", "compile_suggestions", "fusion"]) {
    const r = a[name];
    if (r && r.present && !r.error) r.items.forEach((item, i) => all.push([item.fields.est_time_saved_ns ?? 0, analysisCard(name, item, i)]));
  }
  return all.sort((x, y) => y[0] - x[0]).slice(0, 10).map(([, card]) => card);
}

/**
 * @param {HTMLElement} panel
 * @returns {Promise<void>}
 */
export async function overviewView(panel) {
  try {
    const [s, modules, a] = await Promise.all([fetchStep(state), fetchModules(state), fetchAnalyses(state)]);
    const root = modules.find((r) => r.module === "") || {};
    const phases = ["forward", "recompute", "backward", "optimizer", "other"].map((p) => [p, root[`${p}_ns`] || 0]);
    const findings = rankedFindings(a);
    panel.append(
      el("div", { id: "headline", class: "row" }, [["step wall time", fmtNs(s.wall_ns)], ["op time", fmtNs(s.time_ns)],
        ["peak memory", fmtBytes(s.peak_memory_bytes)], ["nodes", fmtCount(s.nodes)], ["compute", fmtFlop(s.flops)]]
        .map(([k, v]) => el("div", { class: "stat" }, el("div", { class: "muted" }, k), el("strong", {}, v)))),
      el("h3", {}, "where the step's time goes, by phase"), splitBar("phase-split", phases, fmtNs),
      el("div", { class: "row" }, el("div", {}, el("h3", {}, "heaviest modules (inclusive)"), topModules(modules)),
        el("div", {}, el("h3", {}, "across steps"), await trend())),
      el("h3", {}, "findings, by estimated saving ", actionLink("all findings", () => document.querySelector("button.tab[data-tab='findings']").click())),
      el("div", { id: "findings" }, findings.length ? findings : el("p", { class: "muted" }, "nothing to improve was found in this step")));
  } catch (e) {
    showError(panel, e);
  }
}
