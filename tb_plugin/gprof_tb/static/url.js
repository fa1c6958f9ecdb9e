// The shareable state in the URL: run, rank, step, view, selected node, expanded modules, phases,
// colouring and the fusion target (and GPU) live in the location hash of the tab's own iframe (TensorBoard owns the top page's hash).
// A reload of the frame, or a pasted frame URL, restores them. The same string is kept in
// sessionStorage, because reloading the whole TensorBoard page recreates the frame without its hash.

import { PHASE_SETS, state } from "./state.js";

const STORE_KEY = "gprof-tab-state";

/** @returns {string} the state as `view=graph&run=...` */
function encode() {
  const q = new URLSearchParams();
  q.set("view", state.tab);
  if (state.run !== null) q.set("run", state.run);
  if (state.rank !== null) q.set("rank", String(state.rank));
  if (state.step !== null) q.set("step", String(state.step));
  if (state.selected !== null) q.set("node", String(state.selected));
  if (state.expanded.size) q.set("exp", [...state.expanded].sort().join(","));
  if (state.phases !== "forward") q.set("phases", state.phases);
  if (state.colorBy !== "time") q.set("color", state.colorBy);
  if (state.target !== null) q.set("target", state.target);
  if (state.gpu !== null) q.set("gpu", state.gpu);
  return q.toString();
}

/** Write the state into the frame's hash (replacing the history entry) and into sessionStorage. */
export function saveUrl() {
  const s = encode();
  // a full path: the frame's <base> would resolve a bare "#..." against the plugin's route
  if (location.hash.slice(1) !== s) history.replaceState(null, "", `${location.pathname}${location.search}#${s}`);
  try { sessionStorage.setItem(STORE_KEY, s); } catch { /* storage refused: the hash still holds it */ }
}

/** @param {string|null} v @returns {number|null} a non-negative integer, or null */
const integer = (v) => (v !== null && /^\d+$/.test(v) ? Number(v) : null);

/**
 * Read the state from the frame's hash, or else from sessionStorage; unknown values are ignored.
 * @param {string[]} views the registered view names
 */
export function loadUrl(views) {
  let s = location.hash.slice(1);
  if (!s) try { s = sessionStorage.getItem(STORE_KEY) || ""; } catch { s = ""; }
  const q = new URLSearchParams(s);
  if (views.includes(q.get("view"))) state.tab = q.get("view");
  state.run = q.get("run");
  state.rank = integer(q.get("rank"));
  state.step = integer(q.get("step"));
  state.selected = integer(q.get("node"));
  state.expanded = new Set((q.get("exp") || "").split(",").filter(Boolean));
  if (q.get("phases") in PHASE_SETS) state.phases = q.get("phases");
  if (q.get("color") === "memory") state.colorBy = "memory";
  state.target = ["cpu", "cuda"].includes(q.get("target")) ? q.get("target") : null;
  // the server checks the name against its GPU list; this only keeps odd text out of requests
  state.gpu = state.target === "cuda" && /^[\w .-]{1,40}$/.test(q.get("gpu") || "") ? q.get("gpu") : null;
}
