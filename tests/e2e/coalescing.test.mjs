// Group commit (issue 10): requests for one key that arrive while a call to its
// object is in flight travel together in the next call, and the object decides
// each of them in arrival order. Limits stay exact and a revocation bites on the
// very next request; the objects' own counters prove that batching happened.
import assert from "node:assert/strict";
import { before, test } from "node:test";
import { eventually, expectError, objectStats, useKeyward } from "./harness.mjs";

let origin, kw, api;
const PLANS = {
  open: { api_access: true },
  metered: { api_access: true, account_limits: { per_minute: 30 } },
};

const setup = useKeyward({ PLANS: JSON.stringify(PLANS), DEFAULT_PLAN: "open", BREAKER_ENABLED: "false", OBJECT_STATS: "true" });
before(async () => ({ origin, server: kw, api } = await setup.ready));

let seq = 0;
const fresh = (label) => `${label}-${Date.now().toString(36)}-${seq++}`;

async function keyOf(plan, body = {}) {
  const account = fresh("acct");
  assert.equal((await api.admin("PUT", `/accounts/${account}`, { plan })).status, 200);
  return api.createKey({ account, ...body });
}

const statsOf = (pred) => objectStats(kw.persistDir).filter(pred);

test("200 concurrent requests on a key limited to 50 admit exactly 50, in batches", async () => {
  const k = await keyOf("open", { rate_limits: { per_minute: 50 } });
  const marker = `/coalesce/${k.id}`;
  const results = await Promise.all(
    Array.from({ length: 200 }, () => api.call("GET", marker, { key: k.key })),
  );
  const ok = results.filter((r) => r.status === 200);
  const limited = results.filter((r) => r.status === 429);
  assert.equal(ok.length, 50);
  assert.equal(limited.length, 150);
  for (const r of limited) expectError(assert, r, 429, "rate_limited", "Rate limit exceeded");
  assert.equal(origin.received().filter((r) => r.target === marker).length, 50);
  await eventually(async () => {
    const view = await api.admin("GET", `/keys/${k.id}`);
    assert.equal(view.json.usage_count, 50);
  });
  // The key's object served every request in group commits, some of more than one.
  const [mine] = statsOf((o) => o.class === "KeyObject" && o.key === k.id);
  assert.equal(mine.requests, 200, JSON.stringify(mine));
  assert.ok(mine.largest > 1 && mine.batches < 200, `no batch of more than one: ${JSON.stringify(mine)}`);
});

test("an account-wide limit hit through a batch admits exactly up to it", async () => {
  const a = await keyOf("metered");
  const b = await api.createKey({ account: a.account });
  const results = await Promise.all(
    Array.from({ length: 80 }, (_, i) => api.call("GET", "/things", { key: i % 2 ? a.key : b.key })),
  );
  assert.equal(results.filter((r) => r.status === 200).length, 30);
  for (const r of results.filter((r) => r.status !== 200)) expectError(assert, r, 429, "plan_rate_limited");
  const [acct] = statsOf((o) => o.class === "AccountObject" && o.account === a.account);
  assert.equal(acct.requests, 80, JSON.stringify(acct));
  assert.ok(acct.largest > 1, `no account batch of more than one: ${JSON.stringify(acct)}`);
  // What the account admitted and a key refused is given back: the two keys'
  // counts add up to the account's admissions.
  await eventually(async () => {
    const counts = await Promise.all([a, b].map((k) => api.admin("GET", `/keys/${k.id}`)));
    assert.equal(counts[0].json.usage_count + counts[1].json.usage_count, 30);
  });
});

test("a key revoked while 16 connections hammer it refuses every request sent after the revoke answered", async () => {
  const k = await keyOf("open");
  const sent = [];
  let stop = false;
  let revokedAt = null;
  const loop = async () => {
    while (!stop) {
      const at = performance.now();
      const res = await api.call("GET", "/things", { key: k.key });
      sent.push({ at, status: res.status, code: res.json?.code });
    }
  };
  const loops = Array.from({ length: 16 }, loop);
  await new Promise((r) => setTimeout(r, 1500));
  const revoke = await api.admin("POST", `/keys/${k.id}/revoke`);
  revokedAt = performance.now();
  assert.equal(revoke.status, 200);
  await new Promise((r) => setTimeout(r, 1500));
  stop = true;
  await Promise.all(loops);
  const before = sent.filter((s) => s.at < revokedAt);
  const afterRevoke = sent.filter((s) => s.at > revokedAt);
  assert.ok(before.filter((s) => s.status === 200).length > 16, "the key was in use before the revoke");
  assert.ok(afterRevoke.length > 16, `too few requests after the revoke: ${afterRevoke.length}`);
  const wrong = afterRevoke.filter((s) => s.status !== 401 || s.code !== "key_revoked");
  assert.deepEqual(wrong, [], "every request sent after the revoke's answer is refused");
  const [mine] = statsOf((o) => o.class === "KeyObject" && o.key === k.id);
  assert.ok(mine.largest > 1, `no batch of more than one: ${JSON.stringify(mine)}`);
});
