// Budget leases on accounts (issue 21 §3, last point): an account whose plan
// sets account-wide limits and whose keys have sustained traffic through an
// isolate lends it a slice of what those limits have left, and row 15 is
// decided there without a call to the account's object. The account's object
// counts every slice whole, so the account-wide window never goes past its
// limit; a plan change answers once the slices lent under the old plan ended,
// so it bites on the next request.
import assert from "node:assert/strict";
import { before, test } from "node:test";
import { eventually, expectError, objectStats, useKeyward } from "./harness.mjs";

const LEASE_MS = 2000; // KEY_LEASE_MS's default; a per-minute window leaves it whole
let kw, api, origin;
const setup = useKeyward({
  OBJECT_STATS: "true",
  BREAKER_ENABLED: "false",
  PLANS: JSON.stringify({
    wide: { api_access: true, account_limits: { per_minute: 100000 } },
    tight: { api_access: true, account_limits: { per_minute: 300 } },
    closed: { api_access: false, account_limits: { per_minute: 100000 } },
  }),
  DEFAULT_PLAN: "wide",
});
before(async () => ({ server: kw, api, origin } = await setup.ready));

let seq = 0;
const unique = (label) => `${label}-${Date.now().toString(36)}-${seq++}`;

function accountCalls(account) {
  return objectStats(kw.persistDir)
    .filter((o) => o.class === "AccountObject" && o.account === account)
    .reduce((n, o) => n + (o.calls ?? 0), 0);
}

/** 16 connections over the account's keys, each one request after another. */
function hammer(keys, path = "/things") {
  const sent = [];
  let stopped = false;
  const loop = async (i) => {
    const key = keys[i % keys.length];
    while (!stopped) {
      const at = performance.now();
      const res = await api.call("GET", path, { key });
      sent.push({ at, status: res.status, code: res.json?.code });
    }
  };
  const loops = Array.from({ length: 16 }, (_, i) => loop(i));
  return {
    sent,
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

async function account(label, n, plan) {
  const name = unique(label);
  if (plan) assert.equal((await api.admin("PUT", `/accounts/${name}`, { plan })).status, 200);
  const keys = [];
  for (let i = 0; i < n; i++) keys.push((await api.createKey({ account: name })).key);
  return { name, keys };
}

/** Polls until the account's object is called less than once per 20 requests. */
async function leased(load, name) {
  await eventually(async () => {
    const calls = accountCalls(name);
    const from = load.sent.length;
    await new Promise((r) => setTimeout(r, 300));
    const n = load.sent.length - from;
    assert.ok(n > 16 && (accountCalls(name) - calls) / n <= 0.05, `${accountCalls(name) - calls} calls for ${n}`);
  }, 10000);
}

test("sustained traffic on an account with account-wide limits is admitted from slices: under 0.05 account object calls per request", async () => {
  const a = await account("wide", 4);
  const load = hammer(a.keys);
  await leased(load, a.name);
  const calls = accountCalls(a.name);
  const from = load.sent.length;
  await new Promise((r) => setTimeout(r, 3000));
  const during = load.sent.length - from;
  const used = accountCalls(a.name) - calls;
  await load.stop();
  console.log(`# account-wide limits: ${used} account object calls for ${during} requests (${(used / during).toFixed(3)} per request)`);
  assert.ok(load.sent.every((s) => s.status === 200), JSON.stringify(load.sent.find((s) => s.status !== 200)));
  assert.ok(during > 100, `${during} requests in 3 s`);
  assert.ok(used / during <= 0.05, `${used} account object calls for ${during} requests`);
});

test("an account-wide limit under sustained traffic from slices admits exactly the limit", async () => {
  const LIMIT = 300;
  const a = await account("tight", 4, "tight");
  const marker = `/account-exact/${a.name}`;
  const load = hammer(a.keys, marker);
  // Past the limit, and past the end (and report) of every slice lent before it.
  await eventually(() => assert.ok(load.sent.filter((s) => s.status === 429).length > 200), 20000);
  await new Promise((r) => setTimeout(r, LEASE_MS + 1000));
  await load.stop();
  const ok = load.sent.filter((s) => s.status === 200).length;
  assert.equal(ok, LIMIT, "exactly the limit, never more");
  assert.equal(origin.received().filter((r) => r.target === marker).length, LIMIT);
  for (const s of load.sent.filter((s) => s.status !== 200)) assert.equal(s.code, "plan_rate_limited");
  const r = await api.call("GET", marker, { key: a.keys[0] });
  expectError(assert, r, 429, "plan_rate_limited", "exceeded the per-minute rate limit on your subscription");
});

test("a plan change while slices are out answers once they ended; every request sent after it is refused", async () => {
  const a = await account("change", 4);
  const load = hammer(a.keys);
  await leased(load, a.name);
  const started = performance.now();
  const put = await api.admin("PUT", `/accounts/${a.name}`, { plan: "closed" });
  const answered = performance.now();
  assert.equal(put.status, 200, put.text);
  assert.ok(answered - started <= LEASE_MS + 1500, `the change took ${answered - started} ms`);
  await eventually(() => assert.ok(load.sent.filter((s) => s.at > answered).length > 32), 10000);
  await load.stop();
  const after = load.sent.filter((s) => s.at > answered);
  assert.deepEqual(after.filter((s) => s.status !== 403 || s.code !== "upgrade_required"), []);
  assert.ok(load.sent.filter((s) => s.at < started && s.status === 200).length > 16, "in use before");
});
