// A key's object moves near its clients (issue 21 §2), under the simulated
// geography of geography.test.mjs: the admin, and so every object it makes, is in
// weur (TEST_GEO). A key's first request from far away moves its object there; a
// run of requests from one far region moves it again (KEY_MOVE_EVERY_SECONDS
// apart); a key used from two regions in turn stays. Nothing the key holds is lost
// by a move, and it is always found by its id.
import assert from "node:assert/strict";
import { before, test } from "node:test";
import { eventually, expectError, objectStats, settledUsage, useKeyward } from "./harness.mjs";

// Round trips of src/request/regions.rs.
const RTT = { weur_oc: 280, weur_enam: 85, oc_enam: 210, near: 5 };
// objects::key::placement::STREAK
const STREAK = 8;

let api, kw;
const setup = useKeyward({ TEST_GEO: "weur", KEY_MOVE_EVERY_SECONDS: "2" });
before(async () => ({ api, server: kw } = await setup.ready));

let seq = 0;
const unique = (label) => `${label}-${Date.now().toString(36)}-${seq++}`;

async function timed(key, region) {
  const started = performance.now();
  const res = await api.call("GET", "/things", { key, headers: { "x-keyward-test-region": region } });
  return { res, ms: performance.now() - started };
}

/** Requests from `region` until one is answered near there (its object moved). */
async function untilNear(key, region, sent) {
  return eventually(async () => {
    const t = await timed(key, region);
    sent.push(t.res.status);
    assert.equal(t.res.status, 200, t.res.text);
    assert.ok(t.ms < RTT.weur_enam, `a request from ${region} took ${t.ms.toFixed(0)} ms`);
    return t;
  }, 10_000);
}

const moves = async (account) =>
  (await api.admin("GET", `/events?account=${account}&action=key.moved`)).json.items;

/** One object holds the key; each it moved through holds only a tombstone. */
async function heldOnce(id, moved) {
  await eventually(() => {
    const objects = objectStats(kw.persistDir);
    const holders = objects.filter((o) => o.key === id);
    const stones = objects.filter((o) => o.moved_to?.startsWith(`${id}~`));
    assert.equal(holders.length, 1, JSON.stringify(holders));
    assert.equal(stones.length, moved, JSON.stringify(stones));
  });
}

test("a key made from Europe moves to Oceania on its first request there, with its limit, count, log and trail", async () => {
  const account = unique("moves");
  const k = await api.createKey({ account, rate_limits: { per_minute: 12 } });
  const sent = [];
  const first = await timed(k.key, "oc");
  sent.push(first.res.status);
  assert.equal(first.res.status, 200, first.res.text);
  // Served where the key was made: the round trip to Europe, once.
  assert.ok(first.ms >= RTT.weur_oc, `the first request from oc took ${first.ms.toFixed(0)} ms`);
  await untilNear(k.key, "oc", sent);
  // The per-minute limit counts what was admitted before the move: exactly 12.
  for (let i = 0; i < 20 && sent.filter((s) => s === 200).length < 12; i++) {
    sent.push((await timed(k.key, "oc")).res.status);
  }
  const refused = await timed(k.key, "oc");
  sent.push(refused.res.status);
  expectError(assert, refused.res, 429, "rate_limited");
  assert.equal(sent.filter((s) => s === 200).length, 12, JSON.stringify(sent));
  // Its use count and its request log hold every request, from both objects.
  assert.equal(await settledUsage(api, k.id), 12);
  const logs = (await api.admin("GET", `/keys/${k.id}/logs?limit=100`)).json.items;
  assert.equal(logs.length, sent.length, JSON.stringify(logs.map((l) => l.status)));
  // The move is audited once, from weur to oc.
  const events = await eventually(async () => {
    const e = await moves(account);
    assert.equal(e.length, 1, JSON.stringify(e));
    return e;
  });
  assert.equal(events[0].key_id, k.id);
  assert.equal(events[0].details.from, "weur");
  assert.equal(events[0].details.to, "oc");
  await heldOnce(k.id, 1);
  // Found by its id, from the admin's region: read and revoked there, refused in oc.
  const read = await api.admin("GET", `/keys/${k.id}`);
  assert.equal(read.status, 200, read.text);
  assert.equal(read.json.usage_count, 12);
  assert.equal((await api.admin("POST", `/keys/${k.id}/revoke`)).status, 200);
  expectError(assert, (await timed(k.key, "oc")).res, 401, "key_revoked", "Revoked API Key");
});

test("a key whose traffic moves follows it, and is still found by its id", async () => {
  const account = unique("follows");
  const k = await api.createKey({ account });
  const sent = [];
  // Used first where it was made: it stays.
  assert.equal((await timed(k.key, "weur")).res.status, 200);
  // A run of requests from oc moves it there...
  for (let i = 0; i < STREAK; i++) {
    const t = await timed(k.key, "oc");
    assert.equal(t.res.status, 200, t.res.text);
    assert.ok(t.ms >= RTT.weur_oc, `request ${i} from oc took ${t.ms.toFixed(0)} ms: moved before its run`);
  }
  await untilNear(k.key, "oc", sent);
  // ...and, KEY_MOVE_EVERY_SECONDS later, a run from enam moves it again.
  await untilNear(k.key, "enam", sent);
  const events = await eventually(async () => {
    const e = await moves(account);
    assert.equal(e.length, 2, JSON.stringify(e));
    return e;
  });
  const hops = events.map((e) => `${e.details.from}>${e.details.to}`).sort();
  assert.deepEqual(hops, ["oc>enam", "weur>oc"]);
  await heldOnce(k.id, 2);
  assert.equal(await settledUsage(api, k.id), 1 + STREAK + sent.length);
  // Its first object leads to the latest: a revocation from weur bites everywhere.
  assert.equal((await api.admin("POST", `/keys/${k.id}/revoke`)).status, 200);
  for (const r of ["oc", "enam", "weur"]) {
    expectError(assert, (await timed(k.key, r)).res, 401, "key_revoked", "Revoked API Key");
  }
});

test("a key used from two regions in turn stays where it was made", async () => {
  const account = unique("stays");
  const k = await api.createKey({ account });
  assert.equal((await timed(k.key, "weur")).res.status, 200);
  for (let i = 0; i < 3 * STREAK; i++) {
    const region = i % 4 === 0 ? "weur" : "oc";
    const t = await timed(k.key, region);
    assert.equal(t.res.status, 200, t.res.text);
    if (region === "oc") assert.ok(t.ms >= RTT.weur_oc, `request ${i} from oc took ${t.ms.toFixed(0)} ms`);
  }
  assert.deepEqual(await moves(account), []);
});

test("a key moving under load admits exactly its limit, and settles every request", async () => {
  const account = unique("busy");
  const L = 30;
  const k = await api.createKey({ account, rate_limits: { per_minute: L } });
  // 8 at a time from oc: the first answers ask for the move, the rest run through it.
  const statuses = [];
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let i = 0; i < 8; i++) statuses.push((await timed(k.key, "oc")).res.status);
    }),
  );
  assert.equal(statuses.filter((s) => s === 200).length, L, JSON.stringify(statuses));
  assert.deepEqual([...new Set(statuses)].sort(), [200, 429]);
  assert.equal(await settledUsage(api, k.id), L);
  assert.equal((await moves(account)).length, 1);
});

test("a key's later objects are not key ids: a management route naming one is 404", async () => {
  const k = await api.createKey({ account: unique("names") });
  assert.equal((await timed(k.key, "oc")).res.status, 200);
  await untilNear(k.key, "oc", []);
  // Its object now is `<id>~1`; only its id names it.
  assert.equal((await api.admin("GET", `/keys/${k.id}`)).status, 200);
  for (const id of [`${k.id}~1`, `${k.id}%7E1`, `${k.id}~0`]) {
    const res = await api.admin("GET", `/keys/${id}`);
    expectError(assert, res, 404, "not_found");
  }
});
