// SPEC §4 over HTTP: the key lifecycle, its immediacy on the request path, input
// validation, listing and paging, accounts, and who may manage what.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { eventually, expectError, useKeyward } from "./harness.mjs";

let origin, kw, api;

const setup = useKeyward({});
before(async () => ({ origin, server: kw, api } = await setup.ready));

const use = (key, method = "GET", path = "/things") => api.call(method, path, { key });
let seq = 0;
const uniqueAccount = (label) => `${label}-${Date.now().toString(36)}-${seq++}`;

async function listAll(query) {
  const items = [];
  let cursor = null;
  do {
    const q = new URLSearchParams({ ...query, ...(cursor ? { cursor } : {}) });
    const res = await api.admin("GET", `/keys?${q}`);
    assert.equal(res.status, 200, res.text);
    items.push(...res.json.items);
    cursor = res.json.cursor;
  } while (cursor);
  return items;
}

describe("create", () => {
  test("returns 201 with every field and the secret, which is never shown again", async () => {
    const account = uniqueAccount("create");
    const res = await api.admin("POST", "/keys", {
      name: "ci pipeline", alias: "ci", account, environment: "development", category: "sandbox",
      permissions: ["read:all", "license:manage"], projects: ["p1"], expires_in_days: 30,
      rate_limits: { per_minute: 100 }, quotas: { daily: 1000 }, ip_allowlist: ["10.0.0.0/8"],
      metadata: { team: "platform" },
    });
    assert.equal(res.status, 201, res.text);
    const k = res.json;
    assert.match(k.id, /^key_[0-9A-Za-z]{22}$/);
    assert.match(k.key, /^kw_dev_[0-9A-Za-z]{55}$/);
    assert.ok(k.key.startsWith(k.prefix) && k.prefix.length < k.key.length);
    assert.equal(k.status, "active");
    assert.equal(k.usage_count, 0);
    assert.equal(k.last_used_at, null);
    assert.equal(k.category, "sandbox");
    assert.deepEqual(k.permissions, ["read:all", "license:manage"]);
    assert.deepEqual(k.rate_limits, { per_minute: 100 });
    assert.deepEqual(k.quotas, { daily: 1000 });
    assert.deepEqual(k.metadata, { team: "platform" });
    const days = (Date.parse(k.expires_at) - Date.parse(k.created_at)) / 86_400_000;
    assert.equal(days, 30);

    const got = await api.admin("GET", `/keys/${k.id}`);
    assert.equal(got.status, 200);
    const listed = await api.admin("GET", `/keys?account=${account}`);
    for (const text of [got.text, listed.text]) {
      assert.ok(!text.includes(k.key), "secret shown again");
      assert.ok(!text.includes(k.key.slice(k.prefix.length)), "secret body shown again");
      assert.ok(!/"(key|hash)"/.test(text), "key or hash field present");
    }
    assert.equal(got.json.name, "ci pipeline");
    assert.equal(listed.json.items.length, 1);
  });

  test("defaults: read-only, this deployment's environment, no expiry", async () => {
    const k = await api.createKey({ account: uniqueAccount("defaults") });
    assert.deepEqual(k.permissions, ["read:all"]);
    assert.equal(k.environment, "development");
    assert.equal(k.expires_at, null);
  });

  test("bad input: 400 naming the field, and nothing written", async () => {
    const account = uniqueAccount("bad");
    const cases = [
      [{}, "name"],
      [{ name: "x" }, "account"],
      [{ name: "x", account, alias: "has space" }, "alias"],
      [{ name: "x", account, environment: "prod" }, "environment"],
      [{ name: "x", account, permissions: "read:all" }, "permissions"],
      [{ name: "x", account, projects: [1] }, "projects"],
      [{ name: "x", account, expires_in_days: 7 }, "expires_in_days"],
      [{ name: "x", account, expires_at: "next week" }, "expires_at"],
      [{ name: "x", account, expires_at: "2030-13-01T00:00:00Z" }, "expires_at"],
      [{ name: "x", account, metadata: { note: "x".repeat(501) } }, "metadata.note"],
      [{ name: "x", account, rate_limits: { per_minute: 0 } }, "rate_limits.per_minute"],
      [{ name: "x", account, quotas: { yearly: 5 } }, "quotas.yearly"],
      [{ name: "x", account, ip_allowlist: ["300.0.0.1"] }, "ip_allowlist"],
      [{ name: "x", account, metadata: "notes" }, "metadata"],
      [{ name: "x", account, owner: "me" }, "owner"],
    ];
    for (const [body, field] of cases) {
      const res = await api.admin("POST", "/keys", body);
      expectError(assert, res, 400, "invalid_request");
      assert.equal(res.json.field, field, JSON.stringify(body));
      assert.ok(res.json.error.includes(`'${field}'`), res.json.error);
    }
    for (const raw of ["not json", "[1,2]", ""]) {
      const res = await api.call("POST", "/admin/v1/keys", { key: "e2e-admin-token", body: raw });
      expectError(assert, res, 400, "invalid_request");
      assert.match(res.json.error, /^invalid request body/);
    }
    assert.equal((await listAll({ account })).length, 0);
  });

  test("alias is unique per account", async () => {
    const a = uniqueAccount("alias");
    await api.createKey({ account: a, alias: "main" });
    const dup = await api.admin("POST", "/keys", { account: a, name: "n", alias: "main" });
    expectError(assert, dup, 409, "conflict");
    assert.match(dup.json.error, /alias 'main'/);
    assert.equal((await listAll({ account: a })).length, 1, "nothing written");
    await api.createKey({ account: uniqueAccount("alias"), alias: "main" });
  });
});

describe("list", () => {
  test("filters by account, status, environment and category", async () => {
    const account = uniqueAccount("filters");
    const a = await api.createKey({ account, category: "production" });
    const b = await api.createKey({ account, category: "staging", environment: "staging" });
    const c = await api.createKey({ account, expires_at: new Date(Date.now() + 1000).toISOString() });
    const d = await api.createKey({ account });
    await api.admin("POST", `/keys/${b.id}/deactivate`);
    await api.admin("POST", `/keys/${d.id}/revoke`);
    await eventually(async () => assert.equal((await api.admin("GET", `/keys/${c.id}`)).json.status, "expired"));
    const ids = async (q) => (await listAll({ account, ...q })).map((k) => k.id).sort();
    assert.deepEqual(await ids({}), [a.id, b.id, c.id, d.id].sort());
    assert.deepEqual(await ids({ status: "active" }), [a.id]);
    assert.deepEqual(await ids({ status: "inactive" }), [b.id]);
    assert.deepEqual(await ids({ status: "revoked" }), [d.id]);
    assert.deepEqual(await ids({ status: "expired" }), [c.id]);
    assert.deepEqual(await ids({ environment: "staging" }), [b.id]);
    assert.deepEqual(await ids({ category: "production" }), [a.id]);
    const row = (await listAll({ account, status: "inactive" }))[0];
    for (const f of ["name", "prefix", "usage_count", "last_used_at", "expires_at", "status"]) assert.ok(f in row, f);
  });

  test("cursor paging, newest first, no duplicates", async () => {
    const account = uniqueAccount("paging");
    const created = [];
    for (let i = 0; i < 5; i++) created.push((await api.createKey({ account, name: `k${i}` })).id);
    const pages = [];
    let cursor = null;
    do {
      const q = new URLSearchParams({ account, limit: "2", ...(cursor ? { cursor } : {}) });
      const res = await api.admin("GET", `/keys?${q}`);
      pages.push(res.json.items.map((k) => k.id));
      cursor = res.json.cursor;
    } while (cursor);
    assert.deepEqual(pages.map((p) => p.length), [2, 2, 1]);
    assert.deepEqual(pages.flat(), [...created].reverse());
  });

  test("bad filters are named", async () => {
    for (const [q, field] of [["status=gone", "status"], ["limit=500", "limit"], ["colour=red", "colour"]]) {
      const res = await api.admin("GET", `/keys?${q}`);
      expectError(assert, res, 400, "invalid_request");
      assert.equal(res.json.field, field);
    }
  });
});

describe("lifecycle changes bite on the very next request", () => {
  test("deactivate and activate", async () => {
    const k = await api.createKey({});
    assert.equal((await use(k.key)).status, 200);
    const off = await api.admin("POST", `/keys/${k.id}/deactivate`);
    assert.equal(off.json.status, "inactive");
    expectError(assert, await use(k.key), 401, "key_inactive");
    const on = await api.admin("POST", `/keys/${k.id}/activate`);
    assert.equal(on.json.status, "active");
    assert.equal((await use(k.key)).status, 200);
  });

  test("revoke is permanent and keeps history", async () => {
    const k = await api.createKey({});
    await use(k.key);
    assert.equal((await api.admin("POST", `/keys/${k.id}/revoke`)).json.status, "revoked");
    expectError(assert, await use(k.key), 401, "key_revoked");
    const again = await api.admin("POST", `/keys/${k.id}/activate`);
    expectError(assert, again, 409, "conflict");
    assert.match(again.json.error, /revoked/);
    expectError(assert, await api.admin("POST", `/keys/${k.id}/rotate`), 409, "conflict");
    expectError(assert, await api.admin("PATCH", `/keys/${k.id}`, { name: "x" }), 409, "conflict");
    expectError(assert, await use(k.key), 401, "key_revoked");
    const view = (await api.admin("GET", `/keys/${k.id}`)).json;
    assert.equal(view.status, "revoked");
    await eventually(async () => assert.equal((await api.admin("GET", `/keys/${k.id}`)).json.usage_count, 1));
  });

  test("rotate: same configuration, new secret, old one refused at once", async () => {
    const k = await api.createKey({ permissions: ["write:all"], projects: ["p1"] });
    assert.equal((await use(k.key)).status, 200);
    const r = await api.admin("POST", `/keys/${k.id}/rotate`);
    assert.equal(r.status, 200, r.text);
    assert.notEqual(r.json.key, k.key);
    assert.ok(r.json.key.startsWith(r.json.prefix));
    assert.equal(r.json.id, k.id);
    assert.deepEqual(r.json.permissions, ["write:all"]);
    expectError(assert, await use(k.key), 401, "invalid_key");
    assert.equal((await use(r.json.key, "POST", "/projects/p1")).status, 200);
    assert.ok(!(await api.admin("GET", `/keys/${k.id}`)).text.includes(r.json.key));
  });

  test("rotate with a grace period: the old secret works until it ends", async () => {
    const k = await api.createKey({});
    const r = await api.admin("POST", `/keys/${k.id}/rotate`, { grace_period_seconds: 2 });
    assert.equal(r.status, 200, r.text);
    assert.ok(r.json.previous_secret_valid_until);
    assert.equal((await use(k.key)).status, 200);
    assert.equal((await use(r.json.key)).status, 200);
    await eventually(async () => expectError(assert, await use(k.key), 401, "invalid_key"), 5000);
    assert.equal((await use(r.json.key)).status, 200);
    const bad = await api.admin("POST", `/keys/${k.id}/rotate`, { grace_period_seconds: "soon" });
    expectError(assert, bad, 400, "invalid_request");
    assert.equal(bad.json.field, "grace_period_seconds");
  });

  test("permission and scope changes", async () => {
    const k = await api.createKey({ permissions: ["read:all"] });
    expectError(assert, await use(k.key, "POST"), 403, "insufficient_permissions");
    const p = await api.admin("PATCH", `/keys/${k.id}`, { permissions: ["write:all"], name: "renamed" });
    assert.equal(p.status, 200, p.text);
    assert.equal(p.json.name, "renamed");
    assert.equal((await use(k.key, "POST")).status, 200);
    await api.admin("PATCH", `/keys/${k.id}`, { projects: ["p1"] });
    expectError(assert, await use(k.key, "GET", "/projects/p2"), 403, "project_forbidden");
    await api.admin("PATCH", `/keys/${k.id}`, { ip_allowlist: ["192.0.2.0/24"] });
    expectError(assert, await use(k.key, "GET", "/projects/p1"), 403, "ip_not_allowed");
    await api.admin("PATCH", `/keys/${k.id}`, { ip_allowlist: [], expires_at: "soon" }).then((r) => {
      expectError(assert, r, 400, "invalid_request");
      assert.equal(r.json.field, "expires_at");
    });
    assert.equal((await api.admin("GET", `/keys/${k.id}`)).json.ip_allowlist.length, 1, "nothing half-written");
    // An expiry already past ends the key at once, without revoking it.
    const ended = await api.admin("PATCH", `/keys/${k.id}`, { ip_allowlist: [], expires_at: new Date(Date.now() - 1).toISOString() });
    assert.equal(ended.json.status, "expired");
    expectError(assert, await use(k.key, "GET", "/projects/p1"), 401, "key_expired", "Expired API Key");
  });

  test("patch validates and refuses fixed fields", async () => {
    const k = await api.createKey({ alias: "x1", account: uniqueAccount("patch") });
    for (const [body, field] of [[{ environment: "staging" }, "environment"], [{ account: "other" }, "account"], [{ alias: 5 }, "alias"]]) {
      const res = await api.admin("PATCH", `/keys/${k.id}`, body);
      expectError(assert, res, 400, "invalid_request");
      assert.equal(res.json.field, field);
    }
    const other = await api.createKey({ account: k.account, alias: "x2" });
    expectError(assert, await api.admin("PATCH", `/keys/${other.id}`, { alias: "x1" }), 409, "conflict");
    assert.equal((await api.admin("PATCH", `/keys/${k.id}`, { alias: null })).json.alias, null);
    assert.equal((await api.admin("PATCH", `/keys/${other.id}`, { alias: "x1" })).json.alias, "x1");
  });
});

describe("delete", () => {
  test("a never-used key is deleted; its secret stops working", async () => {
    const k = await api.createKey({});
    const del = await api.admin("DELETE", `/keys/${k.id}`);
    assert.equal(del.status, 204);
    expectError(assert, await api.admin("GET", `/keys/${k.id}`), 404, "not_found", "key not found");
    expectError(assert, await use(k.key), 401, "invalid_key");
    assert.ok(!(await listAll({ account: "acme" })).some((x) => x.id === k.id));
  });
  test("a used key is kept: 409", async () => {
    const k = await api.createKey({});
    await use(k.key);
    const del = await api.admin("DELETE", `/keys/${k.id}`);
    expectError(assert, del, 409, "conflict");
    assert.match(del.json.error, /used 1 times/);
    assert.equal((await use(k.key)).status, 200);
  });
});

describe("routes and errors", () => {
  test("unknown ids and routes are 404, wrong methods 405", async () => {
    expectError(assert, await api.admin("GET", "/keys/key_doesnotexist"), 404, "not_found");
    expectError(assert, await api.admin("POST", "/keys/key_doesnotexist/revoke"), 404, "not_found");
    expectError(assert, await api.admin("GET", "/nothing-here"), 404, "not_found");
    expectError(assert, await api.admin("PUT", "/keys"), 405, "method_not_allowed");
  });

  test("accounts and plans", async () => {
    const id = uniqueAccount("acct");
    const fresh = await api.admin("GET", `/accounts/${id}`);
    assert.equal(fresh.json.plan, "pro", "default plan");
    const set = await api.admin("PUT", `/accounts/${id}`, { plan: "business" });
    assert.equal(set.status, 200);
    assert.equal(set.json.plan, "business");
    assert.equal(set.json.plan_details.rate_limits.per_minute, 2000);
    assert.equal((await api.admin("GET", `/accounts/${id}`)).json.plan, "business");
    const bad = await api.admin("PUT", `/accounts/${id}`, { plan: "platinum" });
    expectError(assert, bad, 400, "invalid_request");
    assert.equal(bad.json.field, "plan");
    assert.equal((await api.admin("GET", `/accounts/${id}`)).json.plan, "business");
  });
});

describe("who may manage", () => {
  test("no credential, a wrong token, a non-admin key", async () => {
    expectError(assert, await api.call("GET", "/admin/v1/keys"), 401, "invalid_key");
    expectError(assert, await api.admin("GET", "/keys", undefined, "not-the-token"), 401, "invalid_key");
    const reader = await api.createKey({ permissions: ["write:all"] });
    expectError(assert, await api.admin("GET", "/keys", undefined, reader.key), 403, "insufficient_permissions", "Forbidden: missing permission 'admin'");
  });

  test("an admin key manages only its own account and grants only what it holds", async () => {
    const mine = uniqueAccount("mine");
    const theirs = uniqueAccount("theirs");
    const adminKey = (await api.createKey({ account: mine, permissions: ["admin", "license:manage"] })).key;
    const foreign = await api.createKey({ account: theirs });
    const as = (method, path, body) => api.admin(method, path, body, adminKey);

    const created = await as("POST", "/keys", { name: "delegated", permissions: ["write:all", "license:manage"] });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.json.account, mine);
    expectError(assert, await as("POST", "/keys", { name: "x", account: theirs }), 403, "forbidden");
    const tooMuch = await as("POST", "/keys", { name: "x", permissions: ["customer:read"] });
    expectError(assert, tooMuch, 403, "forbidden");
    assert.match(tooMuch.json.error, /customer:read/);
    expectError(assert, await as("PATCH", `/keys/${created.json.id}`, { permissions: ["telemetry:write"] }), 403, "forbidden");

    const listed = await as("GET", "/keys");
    assert.equal(listed.status, 200);
    assert.ok(listed.json.items.every((k) => k.account === mine));
    assert.ok(listed.json.items.some((k) => k.id === created.json.id));
    expectError(assert, await as("GET", `/keys?account=${theirs}`), 403, "forbidden");
    expectError(assert, await as("GET", `/keys/${foreign.id}`), 404, "not_found");
    expectError(assert, await as("POST", `/keys/${foreign.id}/revoke`), 404, "not_found");
    assert.equal((await use(foreign.key)).status, 200, "the foreign key is untouched");
    expectError(assert, await as("PUT", `/accounts/${mine}`, { plan: "business" }), 403, "forbidden");
    assert.equal((await as("GET", `/accounts/${mine}`)).json.plan, "pro");
    expectError(assert, await as("GET", `/accounts/${theirs}`), 404, "not_found");
    assert.equal((await as("POST", `/keys/${created.json.id}/revoke`)).status, 200);
  });

  test("a project-scoped admin key creates keys only inside its projects", async () => {
    const acct = uniqueAccount("scoped");
    const adminKey = (await api.createKey({ account: acct, permissions: ["admin"], projects: ["p1", "p2"] })).key;
    expectError(assert, await api.admin("POST", "/keys", { name: "x" }, adminKey), 403, "forbidden");
    expectError(assert, await api.admin("POST", "/keys", { name: "x", projects: ["p3"] }, adminKey), 403, "forbidden");
    assert.equal((await api.admin("POST", "/keys", { name: "x", projects: ["p2"] }, adminKey)).status, 201);
  });
});

describe("OpenAPI document", () => {
  test("is served without credentials, and every operation in it answers as documented", async () => {
    const res = await api.call("GET", "/admin/v1/openapi.json");
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/json");
    const doc = res.json;
    const account = uniqueAccount("openapi");
    const k = await api.createKey({ account, name: "documented" });
    const bodies = {
      createKey: { name: "x", account },
      updateKey: { name: "renamed" },
      setAccountPlan: { plan: "pro" },
      rotateKey: { grace_period_seconds: 0 },
      verifyKey: { key: "kw_dev_not-a-key" },
      reportLeak: { key: "kw_dev_not-a-key", source: "e2e" },
      changeKeyCredits: { op: "set", amount: 10 },
      changeAccountCredits: { op: "increment", amount: 5 },
    };
    const ops = [];
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        if (method !== "parameters") ops.push({ path, method: method.toUpperCase(), op });
      }
    }
    // Revoke, then delete (never used), come last.
    const rank = (o) => ["revokeKey", "deleteKey"].indexOf(o.op.operationId);
    ops.sort((a, b) => rank(a) - rank(b));
    assert.equal(ops.length, 22);
    for (const { path, method, op } of ops) {
      const url = path.replace("{id}", path.startsWith("/accounts") ? account : k.id);
      const r = await api.admin(method, url, bodies[op.operationId]);
      assert.ok(Object.keys(op.responses).includes(String(r.status)), `${method} ${url}: ${r.status} not documented`);
      // GitHub's endpoint takes no credentials, only its signature: without one, 401.
      const expected = op.operationId === "githubSecretScanning" ? [401, 401] : [200, 299];
      assert.ok(r.status >= expected[0] && r.status <= expected[1], `${op.operationId}: ${r.status} ${r.text}`);
    }
    expectError(assert, await api.admin("GET", `/keys/${k.id}`), 404, "not_found");
  });
});
