#!/usr/bin/env bash
# Builds the release worker into build/ and the dashboard into dashboard/dist, with
# no download: worker-build is pointed at the wasm-bindgen CLI, esbuild and wasm-opt
# installed by scripts/setup.sh. Each part is skipped when nothing it depends on
# changed since its last build.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$PWD/node_modules/.bin"

changed_since() { # stamp, sources...
  local stamp=$1
  shift
  [ ! -f "$stamp" ] || [ -n "$(find "$@" -newer "$stamp" -print -quit)" ]
}

if changed_since build/.stamp src Cargo.toml Cargo.lock openapi.json; then
  export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-wasm-bindgen}"
  export ESBUILD_BIN="${ESBUILD_BIN:-$bin/esbuild}"
  export WASM_OPT_BIN="${WASM_OPT_BIN:-$bin/wasm-opt}"
  worker-build --release
  # A copy with its names, for `bench/wasm_parts.mjs` (the size of each part).
  cp build/index_bg.wasm target/keyward-names.wasm
  # Drop the name section worker-build keeps (function names for stack traces: a
  # quarter of the module, and nothing on the request path panics).
  "$WASM_OPT_BIN" build/index_bg.wasm -o build/index_bg.wasm --strip-debug --strip-producers \
    --enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int --enable-bulk-memory \
    --enable-multivalue --enable-reference-types --enable-exception-handling
  touch build/.stamp
fi

if changed_since dashboard/dist/.stamp dashboard/src dashboard/index.html dashboard/app.css dashboard/build.mjs; then
  node dashboard/build.mjs
  touch dashboard/dist/.stamp
fi
