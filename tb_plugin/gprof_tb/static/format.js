// Formatting of times, sizes, rates, counts, shares, module names and tensor shapes for display: nothing
// reaches the screen as a raw field name or a number without its unit.

/**
 * A duration in nanoseconds, in the largest unit that keeps it at or above 1; "–" when absent.
 * @param {number | null | undefined} ns
 * @returns {string}
 */
export function fmtNs(ns) {
  if (ns === null || ns === undefined) return "–";
  const a = Math.abs(ns);
  if (a >= 1e9) return (ns / 1e9).toFixed(2) + " s";
  if (a >= 1e6) return (ns / 1e6).toFixed(2) + " ms";
  if (a >= 1e3) return (ns / 1e3).toFixed(1) + " us";
  return Math.round(ns) + " ns";
}

/**
 * A byte count in binary units (KiB, MiB, ...); negative counts keep their sign; "–" when absent.
 * @param {number | null | undefined} b
 * @returns {string}
 */
export function fmtBytes(b) {
  if (b === null || b === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = Math.abs(b);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (b < 0 ? "-" : "") + (i ? v.toFixed(2) : Math.round(v)) + " " + units[i];
}

/**
 * A value in decimal SI steps (k, M, G, T) followed by `unit`.
 * @param {number} v
 * @param {string} unit
 * @returns {string}
 */
function si(v, unit) {
  const steps = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];
  for (const [f, p] of steps) if (Math.abs(v) >= f) return `${(v / f).toFixed(2)} ${p}${unit}`;
  return `${Math.round(v)} ${unit}`;
}

/** @param {number | null | undefined} flops @returns {string} FLOPs in the unit that suits them */
export const fmtFlop = (flops) => (flops === null || flops === undefined ? "–" : si(flops, "FLOP"));

/** @param {number | null | undefined} bps bytes per second @returns {string} */
export const fmtRate = (bps) => (bps === null || bps === undefined ? "–" : si(bps, "B/s"));

/**
 * A fraction (0..1) as a percentage.
 * @param {number | null | undefined} f
 * @returns {string}
 */
export function fmtPct(f) {
  if (f === null || f === undefined) return "–";
  return `${(f * 100).toFixed(f > 0 && f < 0.1 ? 1 : 0)}%`;
}

/**
 * A count with thousands separators (nodes, calls); an absent count reads 0.
 * @param {number | null | undefined} n
 * @returns {string}
 */
export function fmtCount(n) {
  return (n ?? 0).toLocaleString("en-US");
}

/**
 * A module path for display: the root model and ops outside every module are named as such.
 * @param {string | null | undefined} m
 * @returns {string}
 */
export function fmtModule(m) {
  if (m === "") return "(root model)";
  if (m === null || m === undefined || m === "-") return "(outside modules)";
  return m;
}

/** A field's name as words: "est_time_saved_ns" → "est time saved", "roofline.launch_ns" → "roofline launch". */
export function fieldLabel(key) {
  return key.replace(/_(ns|bytes|bps)$/, "").replace(/[._]/g, " ");
}

/**
 * A field's value in its unit, chosen by the field's name (`*_ns`, `*_bytes`, `*_bps`, shares, FLOPs,
 * modules); other numbers get separators, and fractional ones two decimals.
 * @param {string} key
 * @param {any} v
 * @returns {string}
 */
export function fmtField(key, v) {
  if (v === null || v === undefined) return "–";
  if (key.endsWith("_ns")) return fmtNs(v);
  if (key.endsWith("_bytes")) return fmtBytes(v);
  if (key.endsWith("_bps")) return fmtRate(v);
  if (/share|coverage|linked|fraction/.test(key)) return fmtPct(v);
  if (/flops?$/.test(key)) return fmtFlop(v);
  if (key === "module") return fmtModule(v);
  if (typeof v === "number") return Number.isInteger(v) ? fmtCount(v) : v.toFixed(2);
  if (Array.isArray(v)) return v.join(", ");
  return String(v);
}

/**
 * Tensors as `dtype[d0,d1]`, comma-separated; "–" for none.
 * @param {{dtype: string, shape: number[]}[]} tensors
 * @returns {string}
 */
export function fmtShapes(tensors) {
  return tensors.map((t) => `${t.dtype}[${t.shape.join(",")}]`).join(", ") || "–";
}

/** @param {string} op an aten op name @returns {string} its short form: "aten.addmm.default" → "addmm" */
export function shortOp(op) {
  return op.replace(/^aten\./, "").replace(/\.default$/, "");
}
