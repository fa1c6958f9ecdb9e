// Search over the selected step: modules (by path or type), ops (by name) and nodes (by stable key). The
// index is built on first use from the modules route and the graph route with every module expanded (one
// box per node, or per op type in modules with very many ops); above INDEX_MAX_NODES nodes only modules
// and exact node keys are searched.

import { fetchGraph, fetchModules, fetchNode } from "./api.js";
import { fmtModule, shortOp } from "./format.js";
import { PHASE_SETS, state } from "./state.js";

const INDEX_MAX_NODES = 200000;

/**
 * One search result: a module, or a node (idx) or op group (idx null) with its module and phase.
 * @typedef {{kind: "module"|"node"|"ops", label: string, module: string, phase: string, idx: (number|null),
 *   op: (string|null), key: (string|null), type: (string|null)}} Hit
 */

/** @type {{sel: string, hits: Promise<Hit[]>}|null} */
let cache = null;

/**
 * Every searchable item of the selected step, fetched once per step.
 * @param {number} nodeCount the step's node count
 * @returns {Promise<Hit[]>}
 */
function index(nodeCount) {
  const sel = `${state.run}|${state.rank}|${state.step}`;
  if (cache && cache.sel === sel) return cache.hits;
  const build = async () => {
    const modules = await fetchModules(state);
    const hits = modules.filter((m) => m.module !== "").map((m) => ({ kind: "module", label: m.module, module: m.module,
      phase: "forward", idx: null, op: null, key: null, type: m.type || null }));
    if (nodeCount > INDEX_MAX_NODES) return hits;
    const all = modules.map((m) => m.module).filter(Boolean).concat(["-"]);
    const g = await fetchGraph(state, all, PHASE_SETS.all, 1000);
    for (const b of g.boxes) {
      if (b.kind === "module") continue;
      hits.push({ kind: b.kind, label: `${shortOp(b.op)}${b.kind === "ops" ? ` ×${b.count}` : ` #${b.idx}`}`,
        module: b.module, phase: b.phase, idx: b.kind === "node" ? b.idx : null, op: b.op, key: b.key || null, type: null });
    }
    return hits;
  };
  cache = { sel, hits: build() };
  return cache.hits;
}

/**
 * Items matching `query` (case-insensitive) by op name, module path or type, or node key; exact op names
 * first, then modules, then the rest in step order. A query holding ":" is also tried as an exact key.
 * @param {string} query
 * @param {number} nodeCount the step's node count (decides how much is indexed)
 * @param {number} [limit]
 * @returns {Promise<Hit[]>}
 */
export async function search(query, nodeCount, limit = 40) {
  const q = query.trim().toLowerCase();
  if (!q) return [];
  const hits = await index(nodeCount);
  const score = (h) => {
    if (h.op && (shortOp(h.op).toLowerCase() === q || h.op.toLowerCase() === q)) return 0;
    if (h.kind === "module" && (h.module.toLowerCase().endsWith(q) || (h.type || "").toLowerCase() === q)) return 1;
    const text = [h.op, h.key, h.kind === "module" ? h.module : null, h.type].filter(Boolean).join(" ").toLowerCase();
    return text.includes(q) ? 2 : -1;
  };
  const found = hits.map((h, i) => [score(h), i, h]).filter(([s]) => s >= 0).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const out = found.slice(0, limit).map(([, , h]) => h);
  if (query.includes(":") && !out.some((h) => h.key === query.trim())) {
    const n = await fetchNode(state, { key: query.trim() }).catch(() => null);
    if (n) out.unshift({ kind: "node", label: `${shortOp(n.op)} #${n.idx}`, module: n.module ?? "-", phase: n.phase,
      idx: n.idx, op: n.op, key: n.key, type: null });
  }
  return out;
}

/** @param {Hit} h @returns {string} where a hit lives, for its result line */
export const hitPlace = (h) => (h.kind === "module" ? (h.type || "module") : `${fmtModule(h.module)} · ${h.phase}`);
