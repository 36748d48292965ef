// Issue 12: each account's object holds its keys' index rows and its audit trail;
// the bootstrap token's cross-account views walk a directory of accounts a group
// at a time; plan changes reach the keys in batches from the account's alarm, and
// no key is admitted past a stricter new plan before its turn; events expire.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { client, eventually, expectError, startKeyward, startOrigin } from "./harness.mjs";

let origin;
before(async () => (origin = await startOrigin()));
after(async () => origin?.stop());

const PLANS = {
  free: { api_access: false },
  roomy: { api_access: true, rate_limits: { per_minute: 100 } },
  tight: { api_access: true, rate_limits: { per_minute: 3 } },
};
// fanout::GROUP: accounts asked per cross-account page.
const GROUP = 40;

async function instance(vars = {}) {
  const kw = await startKeyward({ originUrl: origin.url, vars: { PLANS: JSON.stringify(PLANS), DEFAULT_PLAN: "roomy", ...vars } });
  return { kw, api: client(kw.base) };
}

/** Every page of a listing, following cursors; the pages too. */
async function walk(api, path, limit) {
  const items = [];
  const pages = [];
  let cursor = null;
  for (let i = 0; i < 200; i++) {
    const sep = path.includes("?") ? "&" : "?";
    const q = `${path}${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
    const res = await api.admin("GET", q);
    assert.equal(res.status, 200, res.text);
    items.push(...res.json.items);
    pages.push(res.json);
    cursor = res.json.cursor;
    if (!cursor) return { items, pages };
  }
  throw new Error("listing never ended");
}

describe("the index and audit trail per account, and across accounts", () => {
  let kw, api;
  const made = new Map(); // account -> [ids in creation order]
  const accounts = Array.from({ length: GROUP + 5 }, (_, i) => `acct-${String(i).padStart(2, "0")}`);
  before(async () => {
    ({ kw, api } = await instance());
    for (const account of accounts) {
      const n = account === "acct-07" ? 5 : 1;
      for (let i = 0; i < n; i++) {
        const k = await api.createKey({ account, name: `key ${i} of ${account}`, category: i % 2 ? "odd" : "even" });
        made.set(account, [...(made.get(account) ?? []), k.id]);
      }
    }
  });
  after(async () => kw?.stop());

  test("one account's listing: newest first, filters, search and paging", async () => {
    const own = made.get("acct-07");
    const { items, pages } = await walk(api, "/keys?account=acct-07", 2);
    assert.deepEqual(items.map((k) => k.id), [...own].reverse());
    assert.equal(pages.length, 3);
    const odd = (await api.admin("GET", "/keys?account=acct-07&category=odd")).json.items.map((k) => k.id);
    assert.deepEqual(odd, [own[3], own[1]]);
    const found = (await api.admin("GET", "/keys?account=acct-07&search=KEY%202")).json.items.map((k) => k.id);
    assert.deepEqual(found, [own[2]]);
  });

  test("across accounts: every key exactly once, a group of accounts per page run", async () => {
    const all = [...made.values()].flat();
    const { items, pages } = await walk(api, "/keys", 7);
    const ids = items.map((k) => k.id);
    assert.equal(new Set(ids).size, ids.length, "no key twice");
    assert.deepEqual([...ids].sort(), [...all].sort());
    // The first group (accounts acct-00 … acct-39) comes newest first, then the next.
    const firstGroup = new Set(accounts.slice(0, GROUP).flatMap((a) => made.get(a)));
    const head = ids.filter((id) => firstGroup.has(id));
    assert.deepEqual(head, ids.slice(0, head.length));
    assert.deepEqual(head, [...head].sort().reverse());
    assert.ok(pages.some((p) => p.cursor?.includes("~acct-40")), "a cursor names the next group");
  });

  test("events: per account, and across accounts every event exactly once", async () => {
    const own = (await api.admin("GET", "/events?account=acct-07&action=key.created")).json.items;
    assert.deepEqual(own.map((e) => e.key_id), [...made.get("acct-07")].reverse());
    const { items } = await walk(api, "/events?action=key.created", 9);
    const keys = items.map((e) => e.key_id);
    assert.equal(new Set(keys).size, keys.length);
    assert.deepEqual([...keys].sort(), [...made.values()].flat().sort());
  });

  test("an alias is unique within its account only", async () => {
    assert.equal((await api.admin("POST", "/keys", { account: "acct-01", name: "a", alias: "shared" })).status, 201);
    assert.equal((await api.admin("POST", "/keys", { account: "acct-02", name: "b", alias: "shared" })).status, 201);
    const dup = await api.admin("POST", "/keys", { account: "acct-01", name: "c", alias: "shared" });
    expectError(assert, dup, 409, "conflict", "alias 'shared' is already used in account 'acct-01'");
  });

  test("an admin key sees its own account only, in keys and events", async () => {
    const admin = await api.createKey({ account: "acct-03", name: "admin", permissions: ["admin"] });
    const mine = (await api.admin("GET", "/keys?limit=100", undefined, admin.key)).json.items;
    assert.ok(mine.length >= 1 && mine.every((k) => k.account === "acct-03"));
    expectError(assert, await api.admin("GET", "/keys?account=acct-04", undefined, admin.key), 403, "forbidden");
    const events = (await api.admin("GET", "/events?limit=100", undefined, admin.key)).json.items;
    assert.ok(events.length >= 1 && events.every((e) => e.account === "acct-03"));
    expectError(assert, await api.admin("GET", "/events?account=acct-04", undefined, admin.key), 403, "forbidden");
    // A cross-account cursor gives an admin key nothing beyond its account either.
    const other = (await api.admin("GET", "/keys?cursor=~acct-40", undefined, admin.key)).json.items;
    assert.ok(other.every((k) => k.account === "acct-03"));
    // An admin key holding less than a key does not see that key listed.
    const narrow = await api.createKey({ account: "acct-03", name: "narrow", permissions: ["admin"], projects: ["p1"] });
    const seen = (await api.admin("GET", "/keys?limit=100", undefined, narrow.key)).json.items.map((k) => k.id);
    assert.ok(!seen.includes(admin.id));
  });

  test("long searches and out-of-range cursors are answered, not failed", async () => {
    for (const term of ["x".repeat(100), "é".repeat(60), "%_\\".repeat(30)]) {
      const res = await api.admin("GET", `/keys?account=acct-07&search=${encodeURIComponent(term)}`);
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.json.items, []);
    }
    const res = await api.admin("GET", "/events?account=acct-07&cursor=999999999999999.999999999999999999.acct-07");
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.items.length, 5);
  });

  test("hostile cursors are refused, naming the field", async () => {
    for (const bad of ["x", "key_a~", "key_a~a b", "~../x", "key_%00", "key_a~~b"]) {
      const res = await api.admin("GET", `/keys?cursor=${encodeURIComponent(bad)}`);
      expectError(assert, res, 400, "invalid_request");
      assert.equal(res.json.field, "cursor", bad);
    }
    for (const bad of ["1", "1.2", "1.2.", "a.2.x", "1.2.x~", "99999999999999999.1.x", "1.2.x'--"]) {
      const res = await api.admin("GET", `/events?cursor=${encodeURIComponent(bad)}`);
      expectError(assert, res, 400, "invalid_request");
      assert.equal(res.json.field, "cursor", bad);
    }
  });
});

describe("plan changes at any size", () => {
  let kw, api;
  before(async () => ({ kw, api } = await instance({ PLAN_UPDATE_BATCH: "5" })));
  after(async () => kw?.stop());

  test("recorded at once, carried to every key in batches, progress shown", async () => {
    const keys = [];
    for (let i = 0; i < 12; i++) keys.push(await api.createKey({ account: "big", name: `k${i}` }));
    const put = await api.admin("PUT", "/accounts/big", { plan: "tight" });
    assert.equal(put.status, 200);
    assert.equal(put.json.plan, "tight");
    assert.equal(put.json.keys_total, 12);
    assert.ok(put.json.keys_updated < 12);
    await eventually(async () => {
      const view = (await api.admin("GET", "/accounts/big")).json;
      assert.deepEqual([view.keys_updated, view.keys_total], [12, 12]);
    }, 20000);
    // Every key holds the new plan: 3 a minute each.
    for (const k of keys) {
      for (let i = 0; i < 3; i++) assert.equal((await api.call("GET", "/things", { key: k.key })).status, 200);
      expectError(assert, await api.call("GET", "/things", { key: k.key }), 429, "rate_limited");
    }
    const event = (await api.admin("GET", "/events?account=big&action=account.plan_changed")).json.items;
    assert.equal(event.length, 1);
    assert.equal(event[0].details.keys, 12);
    assert.equal(event[0].details.to, "tight");
  });

  test("bad input is refused naming the field; admin keys cannot change plans", async () => {
    const bad = await api.admin("PUT", "/accounts/big", { plan: "platinum" });
    expectError(assert, bad, 400, "invalid_request");
    assert.equal(bad.json.field, "plan");
    const admin = await api.createKey({ account: "big", name: "admin", permissions: ["admin"] });
    expectError(assert, await api.admin("PUT", "/accounts/big", { plan: "roomy" }, admin.key), 403, "forbidden");
    const other = await api.createKey({ account: "elsewhere", name: "admin", permissions: ["admin"] });
    expectError(assert, await api.admin("GET", "/accounts/big", undefined, other.key), 404, "not_found");
  });
});

describe("a stricter plan bites before the key's turn", () => {
  let kw, api;
  // The account's alarm is held: no key is brought to the new plan by it.
  // Plan leases of 1 s: each plan change waits out one (see leases.test.mjs).
  before(async () => ({ kw, api } = await instance({ TEST_HOLD_PLAN_UPDATES: "true", PLAN_LEASE_SECONDS: "1" })));
  after(async () => kw?.stop());

  test("keys not yet updated are checked against the account's current plan", async () => {
    const used = await api.createKey({ account: "held", name: "used" });
    const fresh = await api.createKey({ account: "held", name: "fresh" });
    for (let i = 0; i < 5; i++) assert.equal((await api.call("GET", "/things", { key: used.key })).status, 200);
    assert.equal((await api.admin("PUT", "/accounts/held", { plan: "tight" })).status, 200);
    const view = (await api.admin("GET", "/accounts/held")).json;
    assert.deepEqual([view.keys_updated, view.keys_total], [0, 2], "the alarm is held");
    // 5 used of a new limit of 3: refused on its very next request.
    expectError(assert, await api.call("GET", "/things", { key: used.key }), 429, "rate_limited");
    // Concurrent first requests under the new plan: exactly its limit admitted.
    const burst = await Promise.all(Array.from({ length: 10 }, () => api.call("GET", "/things", { key: fresh.key })));
    assert.equal(burst.filter((r) => r.status === 200).length, 3);
    assert.equal(burst.filter((r) => r.status === 429).length, 7);
    await eventually(async () => assert.equal((await api.admin("GET", `/keys/${fresh.id}`)).json.usage_count, 3));
  });

  test("a looser plan: at most one refusal under the old one, then the new one", async () => {
    const k = await api.createKey({ account: "held2", name: "k" });
    await api.admin("PUT", "/accounts/held2", { plan: "tight" });
    for (let i = 0; i < 3; i++) await api.call("GET", "/things", { key: k.key });
    expectError(assert, await api.call("GET", "/things", { key: k.key }), 429, "rate_limited");
    await api.admin("PUT", "/accounts/held2", { plan: "roomy" });
    const next = [];
    for (let i = 0; i < 3; i++) next.push((await api.call("GET", "/things", { key: k.key })).status);
    assert.ok(next.filter((s) => s === 429).length <= 1, String(next));
    assert.equal(next.at(-1), 200);
  });

  test("an account without API access refuses keys at once", async () => {
    const k = await api.createKey({ account: "held3", name: "k" });
    assert.equal((await api.call("GET", "/things", { key: k.key })).status, 200);
    await api.admin("PUT", "/accounts/held3", { plan: "free" });
    expectError(assert, await api.call("GET", "/things", { key: k.key }), 403, "upgrade_required");
  });
});

describe("audit retention", () => {
  let kw, api;
  // 0.0001 days = 8.64 s.
  before(async () => ({ kw, api } = await instance({ AUDIT_RETENTION_DAYS: "0.0001" })));
  after(async () => kw?.stop());

  test("events older than AUDIT_RETENTION_DAYS are deleted by the account's alarm", async () => {
    const k = await api.createKey({ account: "short-lived", name: "k" });
    await api.admin("POST", `/keys/${k.id}/revoke`);
    const events = async () => (await api.admin("GET", "/events?account=short-lived")).json.items.length;
    assert.equal(await events(), 2);
    await eventually(async () => assert.equal(await events(), 0), 30000);
    // The key itself is untouched: only its history expired.
    assert.equal((await api.admin("GET", `/keys/${k.id}`)).json.status, "revoked");
  });

  test("index rows of deleted keys go away", async () => {
    const k = await api.createKey({ account: "short-lived", name: "gone" });
    assert.equal((await api.admin("DELETE", `/keys/${k.id}`)).status, 204);
    const listed = (await api.admin("GET", "/keys?account=short-lived")).json.items.map((x) => x.id);
    assert.ok(!listed.includes(k.id));
  });
});
