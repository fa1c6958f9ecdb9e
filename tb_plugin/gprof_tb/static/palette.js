// The tab's one palette: the same colour for a phase or a memory category in every view (graph legend,
// memory curve, overview bars, timeline lanes).

/** @type {Object<string, string>} */
export const PHASE_COLORS = { forward: "#1e88e5", recompute: "#00acc1", backward: "#8e24aa", optimizer: "#43a047",
  other: "#757575" };

/** @type {Object<string, string>} */
export const CATEGORY_COLORS = {
  parameter: "#1565c0", buffer: "#00838f", gradient: "#6a1b9a", activation: "#ef6c00",
  optimizer: "#2e7d32", temporary: "#c0ca33", other: "#9e9e9e", uncategorised: "#e0e0e0",
};

/** @type {Object<string, string>} rank bars: compute, communication, waiting */
export const SHARE_COLORS = { compute: "#1e88e5", communication: "#f57c00", wait: "#bdbdbd" };

/**
 * A colour for any key of a palette, grey for unknown keys.
 * @param {Object<string, string>} palette
 * @param {string} key
 * @returns {string}
 */
export const colorOf = (palette, key) => palette[key] || "#bdbdbd";
