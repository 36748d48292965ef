#!/usr/bin/env bash
# Local keyward: the example origin on :8788 and `wrangler dev` on :8787, with KV and
# Durable Objects persisted under .wrangler/state (they survive restarts).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f .dev.vars ]; then
  echo "ADMIN_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" > .dev.vars
  echo "Wrote a new ADMIN_TOKEN to .dev.vars"
fi
token=$(sed -n 's/^ADMIN_TOKEN=//p' .dev.vars)

node examples/origin.mjs 8788 &
origin=$!
trap 'kill $origin 2>/dev/null || true' EXIT

cat <<MSG

keyward is starting on http://127.0.0.1:8787 (origin: http://127.0.0.1:8788)

Dashboard: http://127.0.0.1:8787/admin/  (sign in with the ADMIN_TOKEN below)

ADMIN_TOKEN=$token

Or create a first key from the command line (the secret is shown once):
  curl -s -X POST http://127.0.0.1:8787/admin/v1/keys \\
    -H 'Authorization: Bearer $token' \\
    -d '{"name": "first", "account": "acme", "permissions": ["read:all"]}'

Then call the API through keyward with it:
  curl -s http://127.0.0.1:8787/projects/p1/tasks -H 'Authorization: Bearer <key>'

MSG
WRANGLER_SEND_METRICS=false npx wrangler dev --ip 127.0.0.1 --port 8787 --persist-to .wrangler/state
