// Switching views: the entry point registers every view by name; anything may then show one (a table
// row, a finding or a search result moves to the graph). Kept apart from the views to avoid import cycles.

import { state } from "./state.js";
import { saveUrl } from "./url.js";

/** @type {Object<string, (panel: HTMLElement) => void>} */
let views = {};

/** @param {Object<string, (panel: HTMLElement) => void>} table each view by name */
export function registerViews(table) {
  views = table;
}

/** @returns {string[]} the registered views' names, in tab order */
export const viewNames = () => Object.keys(views);

/**
 * Show view `name` in the emptied panel and record it in the URL.
 * @param {string} name
 * @returns {Promise<void>} settled once the view has drawn
 */
export async function showView(name) {
  state.tab = name;
  for (const b of document.querySelectorAll("button.tab")) b.classList.toggle("active", b.dataset.tab === name);
  const panel = document.getElementById("panel");
  panel.replaceChildren();
  panel.className = `view-${name}`;
  panel.scrollTop = 0;
  saveUrl();
  await views[name](panel);
  // ms since the frame's navigation started when its first view had drawn: benchmarks/tb_latency.py's first paint
  if (!document.body.dataset.paintedAt) document.body.dataset.paintedAt = String(Math.round(performance.now()));
}
