// Budget leases (issue 21 §3–§4): a key with sustained traffic through an isolate
// is lent a slice of its credits (KEY_LEASE_MS) and admitted from it without an
// object call; the key's object counts every slice whole, so no window goes past
// a limit; a change of the key answers once the leases lent under the old record
// have ended, so it still bites on the next request; every use is counted and
// logged once the lease is reported.
import assert from "node:assert/strict";
import { before, test } from "node:test";
import { eventually, expectError, objectStats, useKeyward } from "./harness.mjs";

const LEASE_MS = 2000; // the default
let kw, api, origin;
const setup = useKeyward({
  OBJECT_STATS: "true",
  BREAKER_ENABLED: "false",
  PLANS: JSON.stringify({ open: { api_access: true } }),
  DEFAULT_PLAN: "open",
});
before(async () => ({ server: kw, api, origin } = await setup.ready));

let seq = 0;
const unique = (label) => `${label}-${Date.now().toString(36)}-${seq++}`;

function keyCalls(keyId) {
  return objectStats(kw.persistDir)
    .filter((o) => o.class === "KeyObject" && o.key === keyId)
    .reduce((n, o) => n + (o.calls ?? 0), 0);
}

/** 16 connections, each one request after another, until `stop()` says so. */
function hammer(key, path = "/things") {
  const sent = [];
  let stopped = false;
  const loop = async () => {
    while (!stopped) {
      const at = performance.now();
      const res = await api.call("GET", path, { key });
      sent.push({ at, status: res.status, code: res.json?.code });
    }
  };
  const loops = Array.from({ length: 16 }, loop);
  return {
    sent,
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

const until = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls until the key's object is called less than once per 20 requests: leased. */
async function leased(load, keyId) {
  await eventually(async () => {
    const calls = keyCalls(keyId);
    const from = load.sent.length;
    await until(300);
    const n = load.sent.length - from;
    assert.ok(n > 16 && (keyCalls(keyId) - calls) / n <= 0.05, `${keyCalls(keyId) - calls} calls for ${n}`);
  }, 10000);
}

/** Polls until more than `n` requests were sent after `t`. */
const sentAfter = (load, t, n) =>
  eventually(() => assert.ok(load.sent.filter((s) => s.at > t).length > n), 10000);

test("sustained traffic is admitted from leases: under 0.25 object calls per request, every use counted", async () => {
  const k = await api.createKey({ account: unique("hot") });
  const load = hammer(k.key);
  await leased(load, k.id); // sustained: a lease is lent
  const calls = keyCalls(k.id);
  const from = load.sent.length;
  await until(3000);
  const during = load.sent.length - from;
  const used = keyCalls(k.id) - calls;
  await load.stop();
  console.log(`# hot key: ${used} key object calls for ${during} requests (${(used / during).toFixed(3)} per request)`);
  assert.ok(load.sent.every((s) => s.status === 200), JSON.stringify(load.sent.find((s) => s.status !== 200)));
  assert.ok(during > 100, `${during} requests in 3 s`);
  assert.ok(used / during <= 0.25, `${used} key object calls for ${during} requests`);
  // Every request the origin answered is a use, and has its row, once its
  // lease is reported.
  await eventually(async () => {
    const view = (await api.admin("GET", `/keys/${k.id}`)).json;
    assert.equal(view.usage_count, load.sent.length);
  }, 15000);
  const logs = (await api.admin("GET", `/keys/${k.id}/logs?limit=100`)).json.items;
  assert.equal(logs.length, 100);
  assert.ok(logs.every((r) => r.state === "completed" && r.status === 200 && r.credits === 1), JSON.stringify(logs[0]));
});

test("a limit under sustained traffic from leases admits exactly the limit", async () => {
  const LIMIT = 300;
  const k = await api.createKey({ account: unique("exact"), rate_limits: { per_minute: LIMIT } });
  const marker = `/exact/${k.id}`;
  const load = hammer(k.key, marker);
  // Past the limit, and past the end (and report) of every lease lent before it.
  await eventually(() => assert.ok(load.sent.filter((s) => s.status === 429).length > 200), 20000);
  await until(LEASE_MS + 1000);
  await load.stop();
  const ok = load.sent.filter((s) => s.status === 200).length;
  assert.equal(ok, LIMIT, "exactly the limit, never more");
  assert.equal(origin.received().filter((r) => r.target === marker).length, LIMIT);
  for (const s of load.sent.filter((s) => s.status !== 200)) assert.equal(s.code, "rate_limited");
  await eventually(async () => {
    assert.equal((await api.admin("GET", `/keys/${k.id}`)).json.usage_count, LIMIT);
  }, 15000);
  // Every refusal has its row too (written by the isolate when a lease of its own could not admit it).
  const limited = load.sent.length - LIMIT;
  await eventually(async () => {
    const rows = (await api.admin("GET", `/keys/${k.id}/logs?status=429&limit=100`)).json.items;
    assert.equal(rows.length, Math.min(100, limited));
  }, 15000);
});

test("a revocation while leases are out answers once they ended; every request sent after it is refused", async () => {
  const k = await api.createKey({ account: unique("revoke") });
  const load = hammer(k.key);
  await leased(load, k.id);
  const started = performance.now();
  const revoke = await api.admin("POST", `/keys/${k.id}/revoke`);
  const answered = performance.now();
  assert.equal(revoke.status, 200, revoke.text);
  assert.ok(answered - started <= LEASE_MS + 1500, `the revocation took ${answered - started} ms`);
  await sentAfter(load, answered, 32);
  await load.stop();
  const after = load.sent.filter((s) => s.at > answered);
  assert.ok(after.length > 16, `${after.length} requests after the answer`);
  assert.deepEqual(after.filter((s) => s.status !== 401 || s.code !== "key_revoked"), []);
  assert.ok(load.sent.filter((s) => s.at < started && s.status === 200).length > 16, "in use before");
  expectError(assert, await api.call("GET", "/things", { key: k.key }), 401, "key_revoked", "Revoked API Key");
});

test("a permission taken away while leases are out bites on the first request after the answer", async () => {
  const k = await api.createKey({ account: unique("patch"), permissions: ["read:all"] });
  const load = hammer(k.key);
  await leased(load, k.id);
  const patch = await api.admin("PATCH", `/keys/${k.id}`, { permissions: ["reports:view"] });
  const answered = performance.now();
  assert.equal(patch.status, 200, patch.text);
  await sentAfter(load, answered, 32);
  await load.stop();
  const after = load.sent.filter((s) => s.at > answered);
  assert.ok(after.length > 16);
  assert.deepEqual(after.filter((s) => s.status !== 403), [], "GET needs read:all: refused once the change answered");
});

test("traffic of 5 requests a second, sustained, is leased too", async () => {
  const k = await api.createKey({ account: unique("paced") });
  let calls = 0;
  for (let i = 0; i < 25; i++) {
    if (i === 10) calls = keyCalls(k.id); // past the first two seconds
    const res = await api.call("GET", "/things", { key: k.key });
    assert.equal(res.status, 200, res.text);
    await until(200);
  }
  const used = keyCalls(k.id) - calls;
  // Unleased, each of the last 15 requests is one check: 15 calls. Leased, the
  // renewals (one per half lease) and the reports: 5 to 7 on this machine.
  assert.ok(used <= 8, `${used} key object calls for the last 15 requests`);
});
