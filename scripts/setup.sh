#!/usr/bin/env bash
# Installs everything keyward's build needs, from package registries only.
# Idempotent: each step is skipped when the pinned version is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# `setup.sh --browser`: also Debian's Chromium, which the dashboard's browser tests
# drive with playwright-core (Playwright's own browser download cannot work here).
if [ "${1:-}" = "--browser" ]; then
  if ! command -v chromium >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq chromium
  fi
fi

WORKER_BUILD_VERSION=0.8.7
# The CLI must match the wasm-bindgen crate in Cargo.lock exactly.
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/[^0-9.]/,""); print; exit}' Cargo.lock)

if command -v rustup >/dev/null 2>&1; then
  rustup target list --installed | grep -qx wasm32-unknown-unknown \
    || rustup target add wasm32-unknown-unknown
fi

# Both tools are built unoptimised (--debug): that halves their compile time, the
# longest step of a first run (worker-build 3m25s → 1m32s, wasm-bindgen 2m01s →
# 1m04s measured here), and costs under a second per build (wasm-bindgen 0.3 s →
# 1.1 s on keyward's module; worker-build only runs the others).
# The two installs run side by side (2m20s together against 2m36s one after the
# other, measured here): each has long single-threaded stretches.
pids=()
if [ "$(worker-build --version 2>/dev/null | awk '{print $NF}')" != "$WORKER_BUILD_VERSION" ]; then
  cargo install --debug worker-build --version "$WORKER_BUILD_VERSION" &
  pids+=($!)
fi

if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $NF}')" != "$WASM_BINDGEN_VERSION" ]; then
  # --locked fails here: one locked dependency is missing from the registry.
  cargo install --debug wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" &
  pids+=($!)
fi
for pid in "${pids[@]}"; do wait "$pid"; done

if [ ! -x node_modules/.bin/wrangler ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
fi
