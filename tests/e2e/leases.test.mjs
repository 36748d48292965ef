// Plan leases (issue 21 §4): for a plan without account-wide limits, an account's
// object promises the isolate its plan for PLAN_LEASE_SECONDS, and the request
// path asks only the key's object; a plan change answers once the leases on the
// old plan have lapsed, so it still bites on the next request of every key.
import assert from "node:assert/strict";
import { before, test } from "node:test";
import { expectError, objectStats, useKeyward } from "./harness.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const LEASE_S = 5; // the default
let kw, api;
const setup = useKeyward({
  OBJECT_STATS: "true",
  PLANS: JSON.stringify({
    open: { api_access: true },
    closed: { api_access: false },
    shared: { api_access: true, account_limits: { per_minute: 1000 } },
  }),
  DEFAULT_PLAN: "open",
});
before(async () => ({ server: kw, api } = await setup.ready));

let seq = 0;
const unique = (label) => `${label}-${Date.now().toString(36)}-${seq++}`;

/** Calls served so far by the key's object and by its account's. */
function calls(keyId, account) {
  const objects = objectStats(kw.persistDir);
  const of = (cls, match) => objects.filter((o) => o.class === cls && match(o)).reduce((n, o) => n + (o.calls ?? 0), 0);
  return { key: of("KeyObject", (o) => o.key === keyId), account: of("AccountObject", (o) => o.account === account) };
}

async function requests(key, n) {
  for (let i = 0; i < n; i++) assert.equal((await api.call("GET", "/things", { key })).status, 200);
}

test("a key of a plan without account-wide limits asks its account once per lease, not per request", async () => {
  const account = unique("lease");
  const k = await api.createKey({ account });
  await requests(k.key, 1); // the lease is granted
  const before = calls(k.id, account);
  await requests(k.key, 30);
  const after = calls(k.id, account);
  assert.ok(after.account - before.account <= 1, `the account was asked ${after.account - before.account} times for 30 requests`);
});

test("a quiet key costs one object call per request: each settlement rides the next request's check", async () => {
  const account = unique("quiet");
  const k = await api.createKey({ account });
  await requests(k.key, 1);
  const before = calls(k.id, account);
  // Quiet: two requests a second, well under the 4 a second sustained over 2 s
  // that asks for a budget lease (see budget_leases.test.mjs), even when a busy
  // machine delivers two of them close together.
  for (let i = 0; i < 16; i++) {
    await requests(k.key, 1);
    await sleep(500);
  }
  const after = calls(k.id, account);
  // 16 checks; 15 settlements rode them; the 16th (and the first's) may have gone
  // alone after SETTLE_LINGER_MS. Without lingering it would be 32.
  assert.ok(after.key - before.key <= 18, `${after.key - before.key} key object calls for 16 requests`);
  assert.ok(after.key - before.key >= 16, JSON.stringify({ before, after }));
});

test("an account with account-wide limits is asked on every request of a burst (a slice needs sustained traffic)", async () => {
  const account = unique("lease-shared");
  assert.equal((await api.admin("PUT", `/accounts/${account}`, { plan: "shared" })).status, 200);
  const k = await api.createKey({ account });
  await requests(k.key, 1);
  const before = calls(k.id, account);
  await requests(k.key, 10);
  const after = calls(k.id, account);
  assert.ok(after.account - before.account >= 10, JSON.stringify({ before, after }));
});

test("a plan change answers once the leases lapsed, and bites on the very next request", async () => {
  const account = unique("lease-change");
  const k = await api.createKey({ account });
  await requests(k.key, 3); // this isolate holds a lease on "open"
  const started = Date.now();
  const put = await api.admin("PUT", `/accounts/${account}`, { plan: "closed" });
  const waited = Date.now() - started;
  assert.equal(put.status, 200, put.text);
  assert.ok(waited >= 1000, `the change answered after ${waited} ms, before the lease lapsed`);
  assert.ok(waited <= LEASE_S * 1000 + 2000, `the change waited ${waited} ms`);
  expectError(assert, await api.call("GET", "/things", { key: k.key }), 403, "upgrade_required", "Upgrade required");
  // Back: the refused request's account answer leased "closed"; the change waits it out.
  const again = Date.now();
  assert.equal((await api.admin("PUT", `/accounts/${account}`, { plan: "open" })).status, 200);
  assert.ok(Date.now() - again <= LEASE_S * 1000 + 2000, `${Date.now() - again} ms`);
  await requests(k.key, 1);
});
