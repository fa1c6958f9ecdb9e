// The tab's one mutable state: what is selected and how each view is set up. Views read and write it;
// nothing else keeps state between renders.

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
  all: ["forward", "backward", "optimizer", "other"],
};

/**
 * @typedef {Object} State
 * @property {RunInfo[]} runs every run under the logdir, from the runs route
 * @property {string|null} run the selected run's name
 * @property {number|null} rank the selected rank (null: the run's lowest)
 * @property {number|null} step the selected step (null: the run's last)
 * @property {string} tab the view on show: a key of the entry point's view table
 * @property {Set<string>} expanded modules the graph shows open
 * @property {string} phases the graph's phase choice: a key of PHASE_SETS
 * @property {"time"|"memory"} colorBy what the graph's box colour shows
 * @property {StepGraph|null} graph the graph last fetched, painted again when only the colouring changes
 * @property {"op"|"op_shape"|"module"} opsGroup the op table's grouping
 * @property {string} opsSort the op table's sort column
 * @property {"asc"|"desc"} opsOrder the op table's sort order
 * @property {number|null} selected the node index shown in the inspector
 */

/** @type {State} */
export const state = {
  runs: [], run: null, rank: null, step: null,
  tab: "graph", expanded: new Set(), phases: "forward", colorBy: "time",
  graph: null, opsGroup: "op", opsSort: "host_self_ns", opsOrder: "desc", selected: null,
};

/**
 * The selected run's listing (the first run when none is selected yet).
 * @returns {RunInfo}
 */
export function currentRun() {
  return state.runs.find((r) => r.run === state.run) || state.runs[0];
}
