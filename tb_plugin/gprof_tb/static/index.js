// torch-gprof TensorBoard tab: the entry point. TensorBoard imports this ES module into the tab's iframe
// and calls render(). The modules beside it: api.js (the plugin's routes), state.js (the one mutable
// state), url.js (that state in the frame's URL), router.js (switching views), nav.js (moving the graph
// to a node), format.js, palette.js, dom.js, graph.js and viewport.js (Graphviz rendering, pan and zoom),
// search.js, and views/ (the header and one file per view).

import { fetchRuns } from "./api.js";
import { el, showError } from "./dom.js";
import { registerViews, showView, viewNames } from "./router.js";
import { currentRun, resetStepState, state } from "./state.js";
import { loadUrl } from "./url.js";
import { analysesView } from "./views/analyses.js";
import { diffView } from "./views/diff.js";
import { graphView } from "./views/graph.js";
import { buildShell, fillSelectors, showGpuSelector, showSummary } from "./views/header.js";
import { selectNode } from "./views/inspector.js";
import { memoryView } from "./views/memory.js";
import { modulesView } from "./views/modules.js";
import { opsView } from "./views/ops.js";
import { overviewView } from "./views/overview.js";
import { ranksView } from "./views/ranks.js";
import { timelineView } from "./views/timeline.js";

/** Each view by its tab name, in tab order; a view fills the (emptied) panel for the selected step. */
const VIEWS = {
  overview: overviewView, graph: graphView, timeline: timelineView, ops: opsView, modules: modulesView,
  memory: memoryView, findings: analysesView, diff: diffView, ranks: ranksView,
};

/**
 * The fusion target or GPU changed: the same step, view, expansions and selection, with the findings, graph
 * marks and inspector chains predicted for the new choice.
 * @param {string} id the selector's id
 * @param {string} v its value ("" for the recorded analyses or the default GPU)
 */
async function onTarget(id, v) {
  if (id === "sel-target") {
    state.target = v === "cpu" || v === "cuda" ? v : null;
    if (state.target !== "cuda") state.gpu = null;
  } else {
    state.gpu = v || null;
  }
  showGpuSelector();
  await showView(state.tab);
  if (state.selected !== null) await selectNode(state.selected);
}

/** A selector changed: a new run starts at its defaults; any change starts collapsed with nothing inspected. */
function onSelect(ev) {
  const v = ev.target.value;
  if (ev.target.id === "sel-target" || ev.target.id === "sel-gpu") {
    onTarget(ev.target.id, v);
    return;
  }
  if (ev.target.id === "sel-run") { state.run = v; state.rank = state.step = null; }
  if (ev.target.id === "sel-rank") state.rank = Number(v);
  if (ev.target.id === "sel-step") state.step = Number(v);
  resetStepState();
  document.getElementById("inspector").replaceChildren(el("p", { class: "muted" }, "Click a node to inspect it."));
  loadStep();
}

/** Settle the selection on a step that exists (rank: lowest, step: last by default), then show it. */
async function loadStep() {
  const run = currentRun();
  if (state.run !== run.run) resetStepState();
  state.run = run.run;
  if (state.rank === null || !run.ranks.includes(state.rank)) state.rank = run.ranks[0];
  if (state.step === null || !run.steps.includes(state.step)) state.step = run.steps[run.steps.length - 1];
  fillSelectors(run);
  await showSummary();
  await showView(state.tab);
  if (state.selected !== null && state.tab !== "graph") await selectNode(state.selected);
  document.body.dataset.ready = "1";
}

/** Called by TensorBoard when the tab opens: restore the state from the URL, then show it. */
export async function render() {
  registerViews(VIEWS);
  buildShell(viewNames(), showView, onSelect);
  loadUrl(viewNames());
  if (!viewNames().includes(state.tab)) state.tab = viewNames()[0];
  try {
    state.runs = await fetchRuns();
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
  await loadStep();
}
