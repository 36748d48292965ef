// What the dashboard reads besides the key lifecycle: the usage series from the
// key's ledger, search over name/alias/prefix, and the caller (`GET /me`). Each
// with its admin-confinement and hostile-input cases.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { expectError, useKeyward } from "./harness.mjs";

let origin, kw, api;
let seq = 0;
const unique = (label) => `${label}-${Date.now().toString(36)}-${seq++}`;

const setup = useKeyward({ ROUTE_COSTS: JSON.stringify([{ method: "POST", path: "/reports/**", cost: 5 }]) });
before(async () => ({ origin, server: kw, api } = await setup.ready));

describe("GET /keys/{id}/usage", () => {
  test("counts admitted requests and their credits per hour and per day; refusals do not count", async () => {
    const k = await api.createKey({ account: unique("usage"), permissions: ["write:all"], rate_limits: { per_minute: 14 } });
    for (let i = 0; i < 3; i++) assert.equal((await api.call("GET", "/x", { key: k.key })).status, 200);
    for (let i = 0; i < 2; i++) assert.equal((await api.call("POST", "/reports/r", { key: k.key })).status, 200);
    // 14 credits are spent: the next two are over the per-minute limit, refused, not counted.
    assert.equal((await api.call("GET", "/x", { key: k.key })).status, 200);
    for (let i = 0; i < 2; i++) expectError(assert, await api.call("GET", "/x", { key: k.key }), 429, "rate_limited");

    const hour = await api.admin("GET", `/keys/${k.id}/usage?resolution=hour`);
    assert.equal(hour.status, 200, hour.text);
    assert.equal(hour.json.resolution, "hour");
    assert.equal(hour.json.items.length, 24);
    const last = hour.json.items.at(-1);
    assert.deepEqual([last.requests, last.credits], [6, 14]);
    assert.equal(Date.parse(last.start) % 3_600_000, 0);
    assert.ok(Date.now() - Date.parse(last.start) < 3_600_000);
    const total = (items, f) => items.reduce((n, p) => n + p[f], 0);
    assert.equal(total(hour.json.items, "requests"), 6);

    const day = await api.admin("GET", `/keys/${k.id}/usage?resolution=day`);
    assert.equal(day.json.items.length, 30);
    assert.deepEqual([total(day.json.items, "requests"), total(day.json.items, "credits")], [6, 14]);
    assert.equal(Date.parse(day.json.items.at(-1).start) % 86_400_000, 0);
    assert.deepEqual((await api.admin("GET", `/keys/${k.id}/usage`)).json.items, hour.json.items, "hour is the default");
  });

  test("bad input is named; keys beyond an admin key's reach are 404", async () => {
    const account = unique("usage-reach");
    const k = await api.createKey({ account });
    for (const q of ["resolution=minute", "resolution=", "resolution=HOUR", "from=2026-01-01T00:00:00Z"]) {
      const res = await api.admin("GET", `/keys/${k.id}/usage?${q}`);
      expectError(assert, res, 400, "invalid_request");
      assert.ok(["resolution", "from"].includes(res.json.field));
    }
    expectError(assert, await api.admin("GET", "/keys/key_nope/usage"), 404, "not_found");
    const other = await api.createKey({ account: unique("elsewhere"), permissions: ["admin"] });
    expectError(assert, await api.admin("GET", `/keys/${k.id}/usage`, undefined, other.key), 404, "not_found");
    const weaker = await api.createKey({ account, permissions: ["admin"], projects: ["p1"] });
    expectError(assert, await api.admin("GET", `/keys/${k.id}/usage`, undefined, weaker.key), 404, "not_found");
    const peer = await api.createKey({ account, permissions: ["admin"] });
    assert.equal((await api.admin("GET", `/keys/${k.id}/usage`, undefined, peer.key)).status, 200);
  });
});

describe("search", () => {
  test("finds keys by part of the name, alias or prefix, in any case; % and _ are literal", async () => {
    const account = unique("search");
    const a = await api.createKey({ account, name: "Prod Main App", alias: "crm-integration" });
    const b = await api.createKey({ account, name: "staging 100%_done" });
    const ids = async (term) =>
      (await api.admin("GET", `/keys?account=${account}&search=${encodeURIComponent(term)}`)).json.items.map((x) => x.id).sort();
    assert.deepEqual(await ids("main"), [a.id]);
    assert.deepEqual(await ids("MAIN APP"), [a.id]);
    assert.deepEqual(await ids("crm-int"), [a.id]);
    assert.deepEqual(await ids(a.prefix.slice(-5)), [a.id]);
    assert.deepEqual(await ids("%"), [b.id]);
    assert.deepEqual(await ids("0%_d"), [b.id]);
    // As a wildcard, "a_p" would match "App"; as a literal it matches nothing.
    assert.deepEqual(await ids("a_p"), []);
    assert.deepEqual(await ids("' OR 1=1 --"), []);
    assert.deepEqual(await ids("nothing like it"), []);
    for (const bad of ["", "   ", "a\u0000b", "x".repeat(101)]) {
      const res = await api.admin("GET", `/keys?account=${account}&search=${encodeURIComponent(bad)}`);
      expectError(assert, res, 400, "invalid_request");
      assert.equal(res.json.field, "search");
    }
  });

  test("an admin key's search stays inside its reach", async () => {
    const account = unique("search-reach");
    await api.createKey({ account, name: "strong findme", permissions: ["admin", "license:manage"] });
    const mine = await api.createKey({ account, name: "weak findme", permissions: ["read:all"] });
    const admin = await api.createKey({ account, name: "the admin", permissions: ["admin"] });
    const res = await api.admin("GET", `/keys?search=findme`, undefined, admin.key);
    assert.deepEqual(res.json.items.map((x) => x.id), [mine.id]);
    const other = await api.createKey({ account: unique("search-other"), permissions: ["admin"] });
    assert.deepEqual((await api.admin("GET", `/keys?search=findme`, undefined, other.key)).json.items, []);
  });
});

describe("GET /me", () => {
  test("says who calls: the bootstrap token, or an admin key with its account and powers", async () => {
    const root = await api.admin("GET", "/me");
    assert.equal(root.status, 200);
    assert.deepEqual([root.json.actor, root.json.account], ["admin_token", null]);
    const account = unique("me");
    const k = await api.createKey({ account, permissions: ["admin"], projects: ["p1"], expires_in_days: 30 });
    const me = await api.admin("GET", "/me", undefined, k.key);
    assert.equal(me.status, 200, me.text);
    assert.deepEqual([me.json.actor, me.json.key_id, me.json.account], [`key:${k.id}`, k.id, account]);
    assert.deepEqual(me.json.permissions, ["admin"]);
    assert.deepEqual(me.json.projects, ["p1"]);
    assert.equal(me.json.expires_at, k.expires_at);
    assert.ok(!me.text.includes(k.key), "never the secret");
    // A key without admin, a wrong token, none: the answers of every management route.
    const reader = await api.createKey({ account });
    expectError(assert, await api.admin("GET", "/me", undefined, reader.key), 403, "insufficient_permissions");
    expectError(assert, await api.admin("GET", "/me", undefined, "wrong"), 401, "invalid_key");
    expectError(assert, await api.admin("POST", "/me"), 405, "method_not_allowed");
  });
});
