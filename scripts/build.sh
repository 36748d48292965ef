#!/usr/bin/env bash
# Builds the release worker into build/ with no download: worker-build is pointed at
# the wasm-bindgen CLI, esbuild and wasm-opt installed by scripts/setup.sh.
# Skips the build when nothing it depends on changed since the last one.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=build/.stamp
if [ -f "$stamp" ] && [ -z "$(find src Cargo.toml Cargo.lock -newer "$stamp" -print -quit)" ]; then
  exit 0
fi
bin="$PWD/node_modules/.bin"
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-wasm-bindgen}"
export ESBUILD_BIN="${ESBUILD_BIN:-$bin/esbuild}"
export WASM_OPT_BIN="${WASM_OPT_BIN:-$bin/wasm-opt}"
worker-build --release
# Drop the name section worker-build keeps (function names for stack traces: a
# quarter of the module, and nothing on the request path panics).
"$WASM_OPT_BIN" build/index_bg.wasm -o build/index_bg.wasm --strip-debug --strip-producers \
  --enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int --enable-bulk-memory \
  --enable-multivalue --enable-reference-types --enable-exception-handling
touch "$stamp"
