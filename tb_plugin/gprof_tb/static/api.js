// The plugin's JSON routes. TensorBoard loads the tab in an iframe whose <base> is plugin/gprof/, so
// every fetch is relative ("./graph?...") and works under --path_prefix; nothing else is requested.

/**
 * Which step file a request reads (the run, its rank and its step) and, for the routes that show fusion
 * or findings, which fusion target and GPU they are predicted for (null: the recorded analyses).
 * @typedef {{run: string, rank: number, step: number, target?: (string|null), gpu?: (string|null)}} Selection
 */

/**
 * One run under the logdir, as the runs route lists it.
 * @typedef {{run: string, ranks: number[], steps: number[]}} RunInfo
 */

/**
 * The headline of one step file.
 * @typedef {{nodes: number, time_ns: number, wall_ns: number, peak_memory_bytes: number, flops: number,
 *   complete: boolean, error: (string | null), kineto_url: (string | null),
 *   fusion_targets: {recorded: (string | null), retargetable: boolean, targets: string[], gpus: string[]}}} StepSummary
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

/**
 * The `target` and `gpu` parameters of a selection, only those it sets.
 * @param {Selection} sel
 * @returns {Object<string, string>}
 */
function fusionQuery(sel) {
  const q = {};
  if (sel.target) q.target = sel.target;
  if (sel.gpu) q.gpu = sel.gpu;
  return q;
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
  getStepJSON("graph", sel, {
    expanded: expanded.join(","), phases: phases.join(","), ...(limit ? { limit } : {}), ...fusionQuery(sel),
  });

/**
 * One node in full, by index or by stable key.
 * @param {Selection} sel
 * @param {number|{key: string}} which
 * @returns {Promise<Object<string, any>>}
 */
export const fetchNode = (sel, which) =>
  getStepJSON("node", sel, { ...(typeof which === "number" ? { idx: which } : which), ...fusionQuery(sel) });

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
export const fetchAnalyses = (sel) => getStepJSON("analyses", sel, fusionQuery(sel));

/**
 * What changed from step `base` to the selected step: tensor (shape, dtype, device) changes first.
 * @param {Selection} sel
 * @param {number|null} base the baseline step (null: the server's default, the previous step)
 * @returns {Promise<Object<string, any>>}
 */
export const fetchDiff = (sel, base) => getStepJSON("diff", sel, base === null ? {} : { base });

/**
 * Every rank of the selected step: headline, compute/communication/wait, the straggler, mismatched collectives.
 * @param {Selection} sel
 * @returns {Promise<{step: number, ranks: Object<string, any>[], skew: (Object<string, any>|null),
 *   straggler: (number|null), mismatches: Object<string, any>[], missing_ranks: number[]}>}
 */
export const fetchRanks = (sel) => getStepJSON("ranks", sel);

/** @type {Map<string, Promise<Object<string, any>>>} overview answers by "run|rank|step|target|gpu" */
const overviews = new Map();

/**
 * The landing view's data: headline, time by phase and op class, top modules, trend, ranked findings and
 * the rule that limits the graph's unfused marking. Kept per step: the graph's legend reads it too.
 * @param {Selection} sel
 * @returns {Promise<Object<string, any>>}
 */
export function fetchOverview(sel) {
  const key = `${sel.run}|${sel.rank}|${sel.step}|${sel.target || ""}|${sel.gpu || ""}`;
  if (!overviews.has(key)) {
    overviews.set(key, getStepJSON("overview", sel, fusionQuery(sel)).catch((e) => { overviews.delete(key); throw e; }));
  }
  return overviews.get(key);
}

/**
 * The step's nodes on a time axis, per lane (thread, stream): one by one when at most `max` fall in the
 * window, else bucketed (`mode` says which; `columns` names each item's fields).
 * @param {Selection} sel
 * @param {number|null} from_ns window start (null: the step's start)
 * @param {number|null} to_ns window end (null: the step's end)
 * @param {number} max
 * @returns {Promise<{mode: string, lanes: string[], from_ns: number, to_ns: number, span_ns: number,
 *   count: number, bucket_ns?: number, columns: string[], items: any[][]}>}
 */
export const fetchTimeline = (sel, from_ns, to_ns, max) =>
  getStepJSON("timeline", sel, { max, ...(from_ns === null ? {} : { from_ns: Math.floor(from_ns), to_ns: Math.ceil(to_ns) }) });

/**
 * Memory by operator over the nodes `start`..`end` (inclusive).
 * @param {Selection} sel
 * @param {number} start
 * @param {number} end
 * @returns {Promise<{rows: Object<string, any>[]}>}
 */
export const fetchMemoryOps = (sel, start, end) => getStepJSON("memory_ops", sel, { start, end });
