// The graph's keys: "/" focuses the search, "f" fits, "+" and "-" zoom, Escape leaves the search.
// One listener on the document, acting only while the graph view is on show and no field has the focus.

import { state } from "./state.js";

let getViewport = () => null;
let listening = false;

/**
 * Route the keys to the graph's viewport (read through `get` at each key press).
 * @param {() => ({fit: () => void, zoom: (f: number) => void} | null)} get
 */
export function viewportKeys(get) {
  getViewport = get;
  if (listening) return;
  listening = true;
  document.addEventListener("keydown", (ev) => {
    const typing = ev.target instanceof HTMLInputElement || ev.target instanceof HTMLSelectElement;
    const vp = getViewport();
    if (state.tab !== "graph" || typing || !vp || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === "/") { ev.preventDefault(); document.getElementById("graph-search")?.focus(); }
    else if (ev.key === "f") vp.fit();
    else if (ev.key === "+" || ev.key === "=") vp.zoom(1.3);
    else if (ev.key === "-") vp.zoom(1 / 1.3);
  });
}
