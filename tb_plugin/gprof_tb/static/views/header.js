// The page around the views: the header (run, rank and step selectors, the fusion target and GPU the
// findings are predicted for, view tabs, Kineto link), the step's summary strip, the view panel and the
// inspector.

import { fetchStep } from "../api.js";
import { el, showError } from "../dom.js";
import { fmtBytes, fmtFlop, fmtNs } from "../format.js";
import { state } from "../state.js";

/** @typedef {import("../api.js").RunInfo} RunInfo */
/** @typedef {import("../api.js").StepSummary} StepSummary */

/**
 * Build the page: one tab button per view, and the three selectors.
 * @param {string[]} tabs the views' names
 * @param {(tab: string) => void} onTab called when a tab button is clicked
 * @param {(ev: Event) => void} onSelect called when a selector changes (`ev.target.id` says which)
 */
export function buildShell(tabs, onTab, onSelect) {
  document.body.replaceChildren();
  document.head.append(el("link", { rel: "stylesheet", href: new URL("../style.css", import.meta.url).href }));
  const sel = (id, label) => el("label", {}, label + " ", el("select", { id, onchange: onSelect }));
  const header = el("header", {},
    el("strong", {}, "torch-gprof"), sel("sel-run", "run"), sel("sel-rank", "rank"), sel("sel-step", "step"),
    sel("sel-target", "fusion for"), sel("sel-gpu", "GPU"),
    el("nav", {}, tabs.map((t) => el("button", { class: "tab", "data-tab": t, onclick: () => onTab(t) }, t))),
    el("span", { id: "kineto" }));
  const main = el("main", {},
    el("section", { id: "panel" }),
    el("aside", { id: "inspector" }, el("p", { class: "muted" }, "Click a node to inspect it.")));
  document.body.append(header, el("div", { id: "summary" }), main);
}

/** @param {string} id @param {any[]} values @param {any} current */
function fillSelect(id, values, current) {
  const s = document.getElementById(id);
  s.replaceChildren(...values.map((v) => el("option", { value: v }, v)));
  s.value = current;
}

/**
 * Show the selection in the selectors.
 * @param {RunInfo} run the selected run's listing
 */
export function fillSelectors(run) {
  fillSelect("sel-run", state.runs.map((r) => r.run), state.run);
  fillSelect("sel-rank", run.ranks, state.rank);
  fillSelect("sel-step", run.steps, state.step);
}

/**
 * Show the fusion target choices the step's summary lists: the recorded analyses, each target, and on
 * cuda the GPU to price for. A GPU the server does not know (an edited URL) falls back to its default;
 * a step that cannot be re-targeted (written before op facts were stored) offers only what was recorded.
 * @param {StepSummary["fusion_targets"]} t
 */
function fillTargets(t) {
  const option = (value, label) => el("option", { value }, label);
  if (state.gpu !== null && !t.gpus.includes(state.gpu)) state.gpu = null;
  if (!t.retargetable) state.target = state.gpu = null;
  const target = document.getElementById("sel-target");
  target.disabled = !t.retargetable;
  target.title = t.retargetable ? "" : "this step was recorded before torch-gprof stored op facts: " +
    "re-targeting it needs torch (torch-gprof report RUN --target cuda)";
  target.replaceChildren(option("", `as recorded (${t.recorded || "none"})`), ...t.targets.map((v) => option(v, v)));
  target.value = state.target || "";
  const gpu = document.getElementById("sel-gpu");
  gpu.replaceChildren(option("", "default"), ...t.gpus.map((v) => option(v, v)));
  gpu.value = state.gpu || "";
  showGpuSelector();
}

/** The GPU selector is shown only for the cuda target. */
export function showGpuSelector() {
  document.getElementById("sel-gpu").parentElement.hidden = state.target !== "cuda";
}

/**
 * Fetch the selected step's headline into the summary strip, with the Kineto trace link when there is one.
 * @returns {Promise<void>}
 */
export async function showSummary() {
  const summary = document.getElementById("summary");
  try {
    const s = await fetchStep(state);
    fillTargets(s.fusion_targets);
    summary.replaceChildren(
      el("span", {}, `${s.nodes.toLocaleString()} nodes`),
      el("span", {}, `op time ${fmtNs(s.time_ns)} of ${fmtNs(s.wall_ns)} wall`),
      el("span", {}, `peak ${fmtBytes(s.peak_memory_bytes)}`),
      el("span", {}, fmtFlop(s.flops)),
      s.device_time_ns !== null && s.device_time_ns !== undefined ? el("span", {}, `device ${fmtNs(s.device_time_ns)}`) : "",
      s.complete ? "" : el("span", { class: "error" }, `incomplete step: ${s.error}`));
    document.getElementById("kineto").replaceChildren(
      s.kineto_url ? el("a", { href: "./" + s.kineto_url, download: "trace.json" }, "Kineto trace") : "");
  } catch (e) {
    showError(summary, e);
  }
}
