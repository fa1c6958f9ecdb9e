// Small DOM builders shared by the views.

/**
 * Create an element. `onclick`/`onchange` attributes become handlers; null or undefined attributes are
 * left out; children are nodes or anything else, shown as text (nested arrays are flattened).
 * @param {string} tag
 * @param {Object<string, any>} [attrs]
 * @param {...any} children
 * @returns {HTMLElement}
 */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "onclick" || k === "onchange") e[k] = v;
    else if (v !== null && v !== undefined) e.setAttribute(k, v);
  }
  for (const c of children.flat()) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

/**
 * Replace `where`'s content with an error message.
 * @param {Element} where
 * @param {any} err an Error or anything printable
 */
export function showError(where, err) {
  where.replaceChildren(el("div", { class: "error" }, String(err.message || err)));
}

/**
 * One table column: the row field it shows, its header, and an optional formatter of the field's value.
 * @typedef {[string, string, ((value: any, row: Object<string, any>) => any)?]} Column
 */

/**
 * A sortable grid inside a box that scrolls sideways within its panel. Each cell carries `data-col` and
 * its raw value in `data-raw` (the tests read them); with `onRow`, every row is a link.
 * @param {string} id
 * @param {Column[]} columns
 * @param {Object<string, any>[]} rows
 * @param {((key: string) => void) | null} onSort called with a column's key when its header is clicked
 * @param {{key?: string, order?: string}} sort the column shown as sorted
 * @param {(row: Object<string, any>) => void} [onRow] called when a row is clicked
 * @returns {HTMLElement}
 */
export function table(id, columns, rows, onSort, sort, onRow) {
  const head = el("tr", {}, columns.map(([key, label]) => el("th", {
    "data-col": key, class: key === sort.key ? `sorted ${sort.order}` : "",
    onclick: onSort ? () => onSort(key) : null,
  }, label)));
  const body = rows.map((r) => el("tr", { class: onRow ? "link" : null, onclick: onRow ? () => onRow(r) : null },
    columns.map(([key, , fmt]) => el("td", { "data-col": key, "data-raw": r[key] }, fmt ? fmt(r[key], r) : r[key] ?? "–"))));
  return el("div", { class: "table-wrap" },
    el("table", { id, class: "grid" }, el("thead", {}, head), el("tbody", {}, body)));
}

/**
 * Only the columns whose field holds a value in some row (device times on a CPU-only step are dropped).
 * @param {Column[]} columns
 * @param {Object<string, any>[]} rows
 * @param {string[]} optional the fields that may be dropped
 * @returns {Column[]}
 */
export function presentColumns(columns, rows, optional) {
  return columns.filter(([key]) => !optional.includes(key) || rows.some((r) => r[key] !== null && r[key] !== undefined));
}

/**
 * A link that runs `action` instead of navigating.
 * @param {string} text
 * @param {() => void} action
 * @returns {HTMLElement}
 */
export function actionLink(text, action) {
  return el("a", { href: "#", onclick: (ev) => { ev.preventDefault(); action(); } }, text);
}
