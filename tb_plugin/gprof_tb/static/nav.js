// Moving the graph to a node or a module from anywhere (inspector links, table rows, findings, search):
// expand the modules that hold it, show its phase, select it, and let the graph view centre on it.

import { fetchNode } from "./api.js";
import { showView } from "./router.js";
import { prefixes, showPhase, state } from "./state.js";
import { showSummary } from "./views/header.js";

/**
 * The graph module a node's module is drawn in ("-" for ops outside every module).
 * @param {string|null} module
 * @returns {string}
 */
export const graphModule = (module) => (module === null ? "-" : module);

/**
 * Show node `idx` in the graph: its modules expanded, its phase shown, it selected and centred.
 * @param {number} idx
 * @returns {Promise<void>}
 */
export async function goToNode(idx) {
  const n = await fetchNode(state, idx);
  for (const m of prefixes(graphModule(n.module))) state.expanded.add(m);
  showPhase(n.phase);
  state.selected = idx;
  state.selectedBoxes = [];
  state.focus = boxesFor(n);
  showView("graph");
}

/**
 * Show node `idx` of another rank of the same step: switch the rank (selector and summary strip), then
 * move the graph there. The ranks view links both sides of a mismatched collective this way.
 * @param {number} rank
 * @param {number} idx
 * @returns {Promise<void>}
 */
export async function goToRankNode(rank, idx) {
  if (rank !== state.rank) {
    state.rank = rank;
    state.expanded = new Set();
    document.getElementById("sel-rank").value = String(rank);
    await showSummary();
  }
  await goToNode(idx);
}

/**
 * Show a module's box in the graph (its enclosing modules expanded), centred and flashed.
 * @param {string} module a module path ("" is the root model, which is always open)
 * @param {string} [phase] the phase whose box to show
 */
export function goToModule(module, phase = "forward") {
  const chain = prefixes(graphModule(module));
  for (const m of chain.slice(0, -1)) state.expanded.add(m);
  showPhase(phase);
  state.focus = module === "" ? [] : [`m:${chain[chain.length - 1]}@${phase}`];
  showView("graph");
}

/**
 * Show the box of one op's calls in a module drawn one box per op type (its modules expanded).
 * @param {string} module the graph module ("-": outside modules)
 * @param {string} phase
 * @param {string} op
 */
export function goToOps(module, phase, op) {
  for (const m of prefixes(module)) state.expanded.add(m);
  showPhase(phase);
  state.focus = [`o:${module}@${phase}@${op}`, `m:${module}@${phase}`];
  showView("graph");
}

/**
 * The boxes that may stand for node `n` in the drawn graph, most precise first: the node itself, its op
 * group in its module, then each enclosing module's box, innermost first.
 * @param {{idx: number, op: string, phase: string, module: string|null}} n
 * @returns {string[]}
 */
export function boxesFor(n) {
  const m = graphModule(n.module);
  return [`n:${n.idx}`, `o:${m}@${n.phase}@${n.op}`, ...prefixes(m).reverse().map((p) => `m:${p}@${n.phase}`)];
}
