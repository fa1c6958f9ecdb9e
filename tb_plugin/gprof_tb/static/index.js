// torch-gprof TensorBoard tab: the entry point. TensorBoard imports this ES module into the tab's iframe
// and calls render(). The modules beside it: api.js (the plugin's routes), state.js (the one mutable
// state), format.js, dom.js, graph.js (Graphviz rendering) and views/ (the header and one file per view).

import { fetchRuns } from "./api.js";
import { el, showError } from "./dom.js";
import { currentRun, state } from "./state.js";
import { analysesView } from "./views/analyses.js";
import { diffView } from "./views/diff.js";
import { graphView } from "./views/graph.js";
import { buildShell, fillSelectors, showSummary } from "./views/header.js";
import { memoryView } from "./views/memory.js";
import { modulesView } from "./views/modules.js";
import { opsView } from "./views/ops.js";
import { ranksView } from "./views/ranks.js";

/** Each view by its tab name; a view fills the (emptied) panel for the selected step. */
const VIEWS = {
  graph: graphView, ops: opsView, modules: modulesView, memory: memoryView, analyses: analysesView,
  diff: diffView, ranks: ranksView,
};

/** @param {string} tab a key of VIEWS */
function showTab(tab) {
  state.tab = tab;
  for (const b of document.querySelectorAll("button.tab")) b.classList.toggle("active", b.dataset.tab === tab);
  const panel = document.getElementById("panel");
  panel.replaceChildren();
  VIEWS[tab](panel);
}

/** A selector changed: a new run starts at its defaults; any change starts collapsed with nothing inspected. */
function onSelect(ev) {
  const v = ev.target.value;
  if (ev.target.id === "sel-run") { state.run = v; state.rank = state.step = null; }
  if (ev.target.id === "sel-rank") state.rank = Number(v);
  if (ev.target.id === "sel-step") state.step = Number(v);
  state.expanded = new Set();
  state.selected = null;
  loadStep();
}

/** Settle the selection on a step that exists (rank: lowest, step: last by default), then show it. */
async function loadStep() {
  const run = currentRun();
  state.run = run.run;
  if (state.rank === null || !run.ranks.includes(state.rank)) state.rank = run.ranks[0];
  if (state.step === null || !run.steps.includes(state.step)) state.step = run.steps[run.steps.length - 1];
  fillSelectors(run);
  await showSummary();
  showTab(state.tab);
}

/** Called by TensorBoard when the tab opens. */
export async function render() {
  buildShell(Object.keys(VIEWS), showTab, onSelect);
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
  state.run = state.runs[0].run;
  await loadStep();
}
