#!/usr/bin/env bash
# `make deploy`: builds the release worker and deploys wrangler.toml's production
# environment to your Cloudflare account (README, "Deploying"). With --dry-run
# (`make deploy-check`, part of `make test`): bundles and checks the same
# deployment without uploading anything or needing an account.
set -euo pipefail
cd "$(dirname "$0")/.."
wrangler="node_modules/.bin/wrangler"

if [ "${1:-}" = "--dry-run" ]; then
  out="$(mktemp -d)"
  WRANGLER_SEND_METRICS=false "$wrangler" deploy --env production --dry-run --outdir "$out" >"$out/log" 2>&1 || {
    cat "$out/log"; exit 1
  }
  # The production configuration must be one keyward accepts: no test switch.
  if grep -Eq 'TEST_[A-Z_]+' <(sed -n '/^\[env.production\]/,$p' wrangler.toml); then
    echo "deploy-check: [env.production] sets a TEST_ switch, which production refuses" >&2
    exit 1
  fi
  for binding in KEY_OBJECTS ACCOUNT_OBJECTS IP_GUARDS DIRECTORY KEYS; do
    grep -q "env.$binding " "$out/log" || { echo "deploy-check: binding $binding missing" >&2; cat "$out/log"; exit 1; }
  done
  wasm=$(find "$out" -name '*.wasm' -printf '%s')
  echo "deploy-check: the production bundle builds (entry.js $(stat -c %s "$out/entry.js") B, Wasm $wasm B), every binding present"
  exit 0
fi

if grep -q "REPLACE_WITH_YOUR_KV_NAMESPACE_ID" wrangler.toml; then
  echo "Set [env.production]'s KV namespace id in wrangler.toml first:" >&2
  echo "  npx wrangler kv namespace create KEYS --env production" >&2
  exit 1
fi
"$wrangler" deploy --env production
