// The tab's one mutable state: what is selected and how each view is set up. Views read and write it;
// nothing else keeps state between renders. url.js mirrors the shareable part into the location hash.

/** @typedef {import("./api.js").RunInfo} RunInfo */
/** @typedef {import("./api.js").StepGraph} StepGraph */

/**
 * The graph's phase choices, each the phases it shows.
 * @type {Object<string, string[]>}
 */
export const PHASE_SETS = {
  forward: ["forward"],
  backward: ["backward"],
  "forward+backward": ["forward", "backward"],
  all: ["forward", "recompute", "backward", "optimizer", "other"],
};

/**
 * @typedef {Object} State
 * @property {RunInfo[]} runs every run under the logdir, from the runs route
 * @property {string|null} run the selected run's name
 * @property {number|null} rank the selected rank (null: the run's lowest)
 * @property {number|null} step the selected step (null: the run's last)
 * @property {string} tab the view on show: a name registered with router.js
 * @property {Set<string>} expanded modules the graph shows open
 * @property {string} phases the graph's phase choice: a key of PHASE_SETS
 * @property {"time"|"memory"} colorBy what the graph's box colour shows
 * @property {StepGraph|null} graph the graph last fetched, painted again when only the colouring changes
 * @property {{x: number, y: number, k: number}|null} view the graph's viewport (graph units, pixels per
 *   unit); null: fit the next graph drawn
 * @property {string[]} focus box ids (graph.js `find`) the next graph paint centres on and flashes: the
 *   first one drawn
 * @property {{ids: string[], left: number, top: number}|null} anchor a box or frame whose on-screen
 *   corner the next paint keeps in place (the module just expanded or collapsed)
 * @property {string[]} selectedBoxes the boxes that may stand for the selected node, most precise first
 * @property {"op"|"op_shape"|"module"} opsGroup the op table's grouping
 * @property {string} opsSort the op table's sort column
 * @property {"asc"|"desc"} opsOrder the op table's sort order
 * @property {{key: string, order: "asc"|"desc"}} modulesSort the module tree's sort
 * @property {Set<string>} modulesOpen modules whose children the module tree shows
 * @property {number|null} selected the node index shown in the inspector
 * @property {"cpu"|"cuda"|null} target the fusion target the findings, graph marks and inspector chains are
 *   predicted for (null: the analyses recorded with the step)
 * @property {string|null} gpu the GPU (a name the step route lists) a cuda prediction is priced for (null: the
 *   server's default)
 */

/** @type {State} */
export const state = {
  runs: [], run: null, rank: null, step: null,
  tab: "overview", expanded: new Set(), phases: "forward", colorBy: "time", graph: null, view: null,
  focus: [], anchor: null, selectedBoxes: [], opsGroup: "op", opsSort: "host_self_ns", opsOrder: "desc",
  modulesSort: { key: "total_ns", order: "desc" }, modulesOpen: new Set([""]), selected: null, target: null, gpu: null,
};

/**
 * The selected run's listing (the first run when none is selected yet).
 * @returns {RunInfo}
 */
export function currentRun() {
  return state.runs.find((r) => r.run === state.run) || state.runs[0];
}

/** Forget everything tied to one step: expansions, selection, viewport. */
export function resetStepState() {
  state.expanded = new Set();
  state.selected = null;
  state.selectedBoxes = [];
  state.view = null;
  state.graph = null;
}

/**
 * Make sure the graph shows `phase`: widen the phase choice to the smallest set that holds it.
 * @param {string} phase
 */
export function showPhase(phase) {
  if (PHASE_SETS[state.phases].includes(phase)) return;
  state.phases = phase === "forward" || phase === "backward" ? "forward+backward" : "all";
}

/**
 * A module path and every enclosing module, outermost first ("a.b" → ["a", "a.b"]; the root: none).
 * @param {string} module
 * @returns {string[]}
 */
export function prefixes(module) {
  if (!module) return [];
  const parts = module.split(".");
  return parts.map((_, i) => parts.slice(0, i + 1).join("."));
}
