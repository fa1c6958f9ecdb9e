// The plugin's JSON routes. TensorBoard loads the tab in an iframe whose <base> is plugin/gprof/, so
// every fetch is relative ("./graph?...") and works under --path_prefix; nothing else is requested.

/**
 * Which step file a request reads: the run, its rank and its step.
 * @typedef {{run: string, rank: number, step: number}} Selection
 */

/**
 * One run under the logdir, as the runs route lists it.
 * @typedef {{run: string, ranks: number[], steps: number[]}} RunInfo
 */

/**
 * The headline of one step file.
 * @typedef {{nodes: number, time_ns: number, wall_ns: number, peak_memory_bytes: number, flops: number,
 *   complete: boolean, error: (string | null), kineto_url: (string | null)}} StepSummary
 */

/**
 * One box of the collapsed graph: a module group, a group of same-op nodes, or a single node.
 * @typedef {{id: string, kind: ("module" | "ops" | "node"), module: string, phase: string, parent: string,
 *   type?: string, op?: string, idx?: number, count: number, dur_ns: number, alloc_bytes: number,
 *   marks: {hazards?: number, chains?: number, regions?: number}}} GraphBox
 */

/**
 * The visible part of a step's graph: boxes, the expanded modules (clusters) and merged edges.
 * @typedef {{boxes: GraphBox[], clusters: string[], types: Object<string, string>,
 *   edges: {src: string, dst: string, kind: string, bytes: number}[]}} StepGraph
 */

/**
 * GET one route with the given query parameters; a non-2xx answer throws the server's plain-text message.
 * @param {string} route
 * @param {Object<string, any>} query
 * @returns {Promise<any>}
 */
async function getJSON(route, query) {
  const qs = new URLSearchParams(query).toString();
  const res = await fetch(qs ? `./${route}?${qs}` : `./${route}`);
  const text = await res.text();
  if (!res.ok) throw new Error(text || `${route}: HTTP ${res.status}`);
  return JSON.parse(text);
}

/**
 * GET a route that reads one step file.
 * @param {string} route
 * @param {Selection} sel
 * @param {Object<string, any>} [extra] the route's own parameters
 * @returns {Promise<any>}
 */
function getStepJSON(route, sel, extra = {}) {
  return getJSON(route, { run: sel.run, rank: sel.rank, step: sel.step, ...extra });
}

/** @returns {Promise<RunInfo[]>} every run under the logdir */
export const fetchRuns = () => getJSON("runs", {});

/** @param {Selection} sel @returns {Promise<StepSummary>} */
export const fetchStep = (sel) => getStepJSON("step", sel);

/**
 * @param {Selection} sel
 * @param {string[]} expanded modules shown open
 * @param {string[]} phases
 * @param {number} [limit] the most ops an expanded module shows one by one (the server's default: 150)
 * @returns {Promise<StepGraph>}
 */
export const fetchGraph = (sel, expanded, phases, limit) =>
  getStepJSON("graph", sel, { expanded: expanded.join(","), phases: phases.join(","), ...(limit ? { limit } : {}) });

/**
 * One node in full, by index or by stable key.
 * @param {Selection} sel
 * @param {number|{key: string}} which
 * @returns {Promise<Object<string, any>>}
 */
export const fetchNode = (sel, which) => getStepJSON("node", sel, typeof which === "number" ? { idx: which } : which);

/**
 * The op table; `pending` (with a `message`) while the server still computes the grouping.
 * @param {Selection} sel
 * @param {{group: string, sort: string, order: string}} opts
 * @returns {Promise<{pending?: boolean, message?: string, total: number, rows: Object<string, any>[],
 *   sort: string, order: string}>}
 */
export const fetchOps = (sel, opts) => getStepJSON("ops", sel, opts);

/** @param {Selection} sel @returns {Promise<Object<string, any>[]>} per-module rows, inclusive */
export const fetchModules = (sel) => getStepJSON("modules", sel);

/** @param {Selection} sel @param {number} points @returns {Promise<Object<string, any>>} the live-bytes curve */
export const fetchMemory = (sel, points) => getStepJSON("memory", sel, { points });

/** @param {Selection} sel @returns {Promise<Object<string, any>>} analysis results by analysis name */
export const fetchAnalyses = (sel) => getStepJSON("analyses", sel);

/** @param {Selection} sel @param {number|string} a @param {number|string} b @returns {Promise<Object<string, any>>} */
export const fetchDiff = (sel, a, b) => getStepJSON("diff", sel, { a, b });

/** @param {Selection} sel @returns {Promise<{step: number, ranks: Object<string, any>[]}>} every rank's summary */
export const fetchRanks = (sel) => getStepJSON("ranks", sel);

/**
 * Memory by operator over the nodes `start`..`end` (inclusive).
 * @param {Selection} sel
 * @param {number} start
 * @param {number} end
 * @returns {Promise<{rows: Object<string, any>[]}>}
 */
export const fetchMemoryOps = (sel, start, end) => getStepJSON("memory_ops", sel, { start, end });
