// The ranks view (multi-rank runs): where each rank's step went (compute, communication, waiting for
// peers, the rest) as bars over its wall time, the straggler and the node where the ranks diverge most,
// the collectives whose sequence differs between ranks with both ranks' source lines, and each rank's
// headline side by side. Every node link switches to that rank and moves the graph there.

import { fetchRanks } from "../api.js";
import { actionLink, el, showError } from "../dom.js";
import { fmtBytes, fmtCount, fmtFlop, fmtModule, fmtNs, fmtPct, shortOp } from "../format.js";
import { goToRankNode } from "../nav.js";
import { SHARE_COLORS, colorOf } from "../palette.js";
import { state } from "../state.js";

/** The headline rows: field, label, formatter. */
const METRICS = [["nodes", "nodes", fmtCount], ["wall_ns", "wall time", fmtNs], ["time_ns", "op time", fmtNs],
  ["device_time_ns", "device time", fmtNs], ["peak_memory_bytes", "peak memory", fmtBytes], ["flops", "FLOPs", fmtFlop]];

/**
 * A rank's wall time split into compute, communication launched, waiting and the rest.
 * @param {Object<string, any>} r a rank of the ranks route
 * @returns {[string, number][]}
 */
function parts(r) {
  const wait = r.comm_wait_ns || 0, comm = Math.max(0, (r.comm_ns || 0) - wait), compute = r.compute_ns || 0;
  return [["compute", compute], ["communication", comm], ["wait", wait],
    ["other", Math.max(0, (r.wall_ns || 0) - compute - comm - wait)]];
}

/**
 * One bar per rank, scaled to the slowest rank's wall time, the straggler marked.
 * @param {Object<string, any>} d the ranks route's answer
 * @returns {HTMLElement}
 */
function shareBars(d) {
  const max = Math.max(1, ...d.ranks.map((r) => r.wall_ns || 0));
  const color = (k) => colorOf(SHARE_COLORS, k);
  return el("div", { id: "rank-bars" },
    el("div", { class: "legend" }, ["compute", "communication", "wait", "other"].map((k) =>
      el("span", {}, el("span", { class: "dot", style: `background:${color(k)}` }), k))),
    el("table", { class: "bars" }, d.ranks.map((r) => el("tr", { class: r.rank === d.straggler ? "straggler" : null },
      el("td", {}, `rank ${r.rank}${r.rank === d.straggler ? " (straggler)" : ""}`),
      r.error ? el("td", { class: "error" }, r.error) : el("td", { class: "bar wide" },
        el("div", { class: "stack", style: `width:${(100 * r.wall_ns) / max}%` }, parts(r).filter(([, v]) => v > 0).map(([k, v]) =>
          el("div", { style: `flex:${v};background:${color(k)}`, title: `${k} ${fmtNs(v)} (${fmtPct(v / r.wall_ns)})` })))),
      el("td", {}, r.error ? "" : parts(r).slice(0, 3).map(([k, v]) => `${k} ${fmtPct(v / (r.wall_ns || 1))}`).join(" · "))))));
}

/**
 * The straggler and the node whose stretch differs most between ranks.
 * @param {Object<string, any>|null} skew
 * @returns {HTMLElement}
 */
function straggler(skew) {
  if (!skew) return el("p", { class: "muted", id: "straggler" }, "one readable rank: nothing to compare");
  const n = skew.node;
  return el("div", { id: "straggler" },
    el("p", {}, `straggler: rank ${skew.straggler_rank}, ${fmtNs(skew.lag_ns)} (${fmtPct(skew.lag_share)}) more busy time ` +
      `than rank ${skew.fastest_rank}`),
    n && n.idx !== null ? el("p", {}, "they diverge most at ", actionLink(`${shortOp(n.op || n.key)} in ${fmtModule(n.module)} (${n.phase})`,
      () => goToRankNode(skew.straggler_rank, n.idx)), `: ${fmtNs(n.spread_ns)} apart`, n.source ? ` at ${n.source}` : "") : "");
}

/**
 * Mismatched collectives: what differs and, per rank, the call, its source line and a link to the node.
 * @param {Object<string, any>[]} mismatches
 * @returns {HTMLElement}
 */
function mismatchList(mismatches) {
  if (!mismatches.length) return el("p", { class: "muted", id: "mismatches" }, "every rank issued the same collectives in the same order");
  return el("div", { id: "mismatches" }, mismatches.map((m) => el("div", { class: "card" },
    el("div", { class: "title" }, m.message || m.type),
    m.ranks.map((side) => el("div", { class: "meta" }, `rank ${side.rank}: `,
      side.idx !== null && side.idx !== undefined ? actionLink(side.call || side.key, () => goToRankNode(side.rank, side.idx))
        : side.call || "no call", side.source ? ` at ${side.source}` : "")))));
}

/**
 * @param {HTMLElement} panel
 * @returns {Promise<void>}
 */
export async function ranksView(panel) {
  try {
    const d = await fetchRanks(state);
    const shown = METRICS.filter(([k]) => d.ranks.some((r) => r[k] !== null && r[k] !== undefined));
    const head = el("tr", {}, el("th", {}, "metric"), d.ranks.map((r) => el("th", {}, `rank ${r.rank}`)));
    const rows = shown.map(([k, label, f]) => el("tr", {}, el("th", {}, label), d.ranks.map((r) => el("td", {}, f(r[k])))));
    panel.append(el("p", { class: "muted" }, `step ${d.step}: ${d.ranks.length} rank${d.ranks.length > 1 ? "s" : ""}` +
      (d.missing_ranks.length ? `; no file for rank ${d.missing_ranks.join(", ")}` : "")),
    el("h3", {}, "where each rank's step went"), shareBars(d), straggler(d.skew),
    el("h3", {}, "mismatched collectives"), mismatchList(d.mismatches),
    el("h3", {}, "side by side"),
    el("div", { class: "table-wrap" }, el("table", { id: "rank-table", class: "grid" }, el("thead", {}, head), el("tbody", {}, rows))));
  } catch (e) {
    showError(panel, e);
  }
}
