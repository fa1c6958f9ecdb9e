// Formatting of times, sizes, counts and tensor shapes for display.

/**
 * A duration in nanoseconds, in the largest unit that keeps it at or above 1; "–" when absent.
 * @param {number | null | undefined} ns
 * @returns {string}
 */
export function fmtNs(ns) {
  if (ns === null || ns === undefined) return "–";
  if (ns >= 1e9) return (ns / 1e9).toFixed(2) + " s";
  if (ns >= 1e6) return (ns / 1e6).toFixed(2) + " ms";
  if (ns >= 1e3) return (ns / 1e3).toFixed(1) + " us";
  return ns + " ns";
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
  return (b < 0 ? "-" : "") + (i ? v.toFixed(2) : v) + " " + units[i];
}

/**
 * A count with thousands separators (FLOPs, nodes); an absent count reads 0.
 * @param {number | null | undefined} n
 * @returns {string}
 */
export function fmtCount(n) {
  return (n ?? 0).toLocaleString();
}

/**
 * Billions of floating-point operations, two decimals.
 * @param {number} flops
 * @returns {string}
 */
export function fmtGflop(flops) {
  return `${(flops / 1e9).toFixed(2)} GFLOP`;
}

/**
 * Tensors as `dtype[d0,d1]`, comma-separated; "–" for none.
 * @param {{dtype: string, shape: number[]}[]} tensors
 * @returns {string}
 */
export function fmtShapes(tensors) {
  return tensors.map((t) => `${t.dtype}[${t.shape.join(",")}]`).join(", ") || "–";
}
