#!/usr/bin/env bash
# Rebuild tb_plugin/gprof_tb/static/vendor/ from the npm registry.
#
# The tab lays out its graph with Graphviz compiled to WebAssembly (@viz-js/viz, MIT). Its ES module
# bundle embeds the .wasm, so one file plus its license is all the page needs; nothing is fetched
# from a CDN at run time. Usage: tb_plugin/scripts/build_vendor.sh [VERSION]   (default 3.31.0)
set -euo pipefail
VERSION="${1:-3.31.0}"
HERE="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$HERE/gprof_tb/static/vendor"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
npm init -y >/dev/null
npm install --no-audit --no-fund "@viz-js/viz@$VERSION" >/dev/null
PKG="$WORK/node_modules/@viz-js/viz"
mkdir -p "$DEST"
cp "$PKG/dist/viz.js" "$DEST/viz.js"
# The npm package carries no LICENSE file; its package.json says MIT and the bundle's header names
# the copyright holder and the bundled Graphviz (EPL-1.0) and Expat (MIT) object code.
{
  echo "@viz-js/viz $VERSION (https://github.com/mdaines/viz-js), license: $(node -p "require('$PKG/package.json').license")"
  echo
  head -n 7 "$PKG/dist/viz.js"
  echo
  cat "$HERE/scripts/MIT.txt"
  echo
  echo "Graphviz (https://graphviz.org) is distributed under the Eclipse Public License 1.0;"
  echo "its source is available at https://gitlab.com/graphviz/graphviz."
  echo "Expat (https://libexpat.github.io) is distributed under the MIT license."
} > "$DEST/LICENSE-viz-js.txt"
echo "wrote $DEST/viz.js ($(wc -c < "$DEST/viz.js") bytes) and LICENSE-viz-js.txt"
