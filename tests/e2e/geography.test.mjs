// Geography, simulated (issue 21 §1): with TEST_GEO=<region> every object call
// waits the round trip between the caller's region (X-Keyward-Test-Region, else
// TEST_GEO's) and the object's, which is where its first call came from — as in
// production, where an object is created where it is first asked for and stays.
import assert from "node:assert/strict";
import { before, test } from "node:test";
import { ADMIN_TOKEN, expectError, useKeyward } from "./harness.mjs";

// Round trips of src/request/regions.rs.
const RTT = { weur_oc: 280, oc_oc: 5 };

let origin, api;
const setup = useKeyward({ TEST_GEO: "weur" });
before(async () => ({ origin, api } = await setup.ready));

let seq = 0;
const unique = (label) => `${label}-${Date.now().toString(36)}-${seq++}`;

async function timed(key, region) {
  const started = performance.now();
  const res = await api.call("GET", "/things", { key, headers: region ? { "x-keyward-test-region": region } : {} });
  return { res, ms: performance.now() - started };
}

test("a key created from Europe costs a client in Oceania the round trip to Europe", async () => {
  const k = await api.createKey({ account: unique("geo") }); // the admin is in TEST_GEO's region, weur
  const near = await timed(k.key);
  assert.equal(near.res.status, 200, near.res.text);
  for (let i = 0; i < 3; i++) {
    const far = await timed(k.key, "oc");
    assert.equal(far.res.status, 200, far.res.text);
    // The key's and the account's objects are asked concurrently: one round trip.
    assert.ok(far.ms >= RTT.weur_oc, `a request from oc took ${far.ms.toFixed(0)} ms`);
    // And only one: the previous request's settlement, still on its way, does not
    // hold this admission back (it would wait for it: two round trips).
    assert.ok(far.ms < 1.5 * RTT.weur_oc, `a request from oc took ${far.ms.toFixed(0)} ms: it waited behind a settlement`);
  }
  // The header is the simulation's, never the origin's.
  const seen = origin.received().at(-1);
  assert.equal(seen.headers["x-keyward-test-region"], undefined, JSON.stringify(seen.headers));
});

test("two requests at a time from Oceania each pay one round trip to Europe, not one behind the other", async () => {
  const k = await api.createKey({ account: unique("geo-two") });
  // First used where it was made, so it stays in Europe: 6 requests from oc are
  // fewer than a run that moves it (placement.test.mjs).
  assert.equal((await timed(k.key)).res.status, 200);
  for (let round = 0; round < 3; round++) {
    const both = await Promise.all([timed(k.key, "oc"), timed(k.key, "oc")]);
    for (const { res, ms } of both) {
      assert.equal(res.status, 200, res.text);
      // With one admission call in flight per lane the second waited for the
      // first's answer: two round trips.
      assert.ok(ms < 1.5 * RTT.weur_oc, `a request from oc took ${ms.toFixed(0)} ms: it waited behind the other`);
    }
  }
});

test("an object is made where its first call came from: created from Oceania, a first request from Europe pays", async () => {
  const account = unique("geo-oc");
  const created = await api.call("POST", "/admin/v1/keys", {
    key: ADMIN_TOKEN,
    body: { account, name: "from oc" },
    headers: { "x-keyward-test-region": "oc" },
  });
  assert.equal(created.status, 201, created.text);
  const k = created.json;
  const far = await timed(k.key, "weur");
  assert.equal(far.res.status, 200, far.res.text);
  assert.ok(far.ms >= RTT.weur_oc, `a request from weur took ${far.ms.toFixed(0)} ms`);
  const near = await timed(k.key, "oc");
  assert.equal(near.res.status, 200, near.res.text);
  assert.ok(near.ms >= RTT.oc_oc, `${near.ms}`);
});

test("an unknown region is 400 naming the header", async () => {
  const k = await api.createKey({ account: unique("geo") });
  const res = await api.call("GET", "/things", { key: k.key, headers: { "x-keyward-test-region": "mars" } });
  expectError(assert, res, 400, "invalid_request");
  assert.match(res.json.error, /x-keyward-test-region/i);
  assert.match(res.json.error, /'mars' is not a region \(wnam, enam, sam, weur, eeur, apac, oc, afr, me\)/);
});

test("an account that declares its region has its keys' objects made there, wherever the admin is", async () => {
  const account = unique("geo-declared");
  // The admin is in weur; the account's clients are in oc.
  const put = await api.admin("PUT", `/accounts/${account}`, { plan: "pro", region: "oc" });
  assert.equal(put.status, 200, put.text);
  assert.equal(put.json.region, "oc");
  assert.equal((await api.admin("GET", `/accounts/${account}`)).json.region, "oc");
  const k = await api.createKey({ account });
  await timed(k.key, "oc"); // the isolate knows the key
  const near = await timed(k.key, "oc");
  assert.equal(near.res.status, 200, near.res.text);
  assert.ok(near.ms < RTT.weur_oc, `a request from oc took ${near.ms.toFixed(0)} ms: its objects are not in oc`);
  const far = await timed(k.key, "weur");
  assert.ok(far.ms >= RTT.weur_oc, `a request from weur took ${far.ms.toFixed(0)} ms`);
  // A plan change alone keeps the region; null withdraws it (keys made since stay).
  assert.equal((await api.admin("PUT", `/accounts/${account}`, { plan: "business" })).json.region, "oc");
  const cleared = await api.admin("PUT", `/accounts/${account}`, { plan: "business", region: null });
  assert.equal(cleared.json.region, null);
  // The declaration is audited with the plan change.
  const events = (await api.admin("GET", `/events?account=${account}&action=account.plan_changed`)).json.items;
  assert.ok(events.some((e) => e.details.region === "oc"), JSON.stringify(events));
});

test("a region is declared only by the bootstrap token, and only as a region's name", async () => {
  const account = unique("geo-powers");
  const admin = await api.createKey({ account, permissions: ["admin"] });
  const other = await api.createKey({ account: unique("geo-other"), permissions: ["admin"] });
  for (const token of [admin.key, other.key]) {
    const res = await api.admin("PUT", `/accounts/${account}`, { plan: "pro", region: "oc" }, token);
    expectError(assert, res, 403, "forbidden");
  }
  assert.equal((await api.admin("GET", `/accounts/${account}`)).json.region, null);
  for (const bad of ["OC", "mars", "", 5, ["oc"], { oc: true }, "oc\u0000", "weur,oc"]) {
    const res = await api.admin("PUT", `/accounts/${account}`, { plan: "pro", region: bad });
    expectError(assert, res, 400, "invalid_request");
    assert.match(res.json.error, /region/, JSON.stringify(bad));
  }
  assert.equal((await api.admin("GET", `/accounts/${account}`)).json.region, null, "nothing was written");
});
