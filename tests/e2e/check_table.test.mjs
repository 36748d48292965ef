// SPEC §3 over HTTP: every row of the check table this build enforces (1, 3–11),
// public paths, forwarding, and the order in which rows are checked.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { eventually, expectError, settledUsage, useKeyward } from "./harness.mjs";

let origin, kw, api;

const setup = useKeyward({
  ROUTE_PERMISSIONS: JSON.stringify([
    { method: "POST", path: "/licenses/**", permission: "license:manage" },
    { path: "/customers/**", permission: "customer:read" },
  ]),
  PUBLIC_PATHS: "/health,/docs/**",
});
before(async () => ({ origin, server: kw, api } = await setup.ready));

const get = (path, key, headers) => api.call("GET", path, { key, headers });

describe("row 3: invalid key", () => {
  const INVALID = ["Invalid API Key", "invalid_key"];
  test("missing Authorization", async () => {
    const res = await get("/things");
    expectError(assert, res, 401, "invalid_key", INVALID[0]);
    assert.equal(res.headers.get("www-authenticate"), "Bearer");
  });
  test("wrong scheme, malformed, bad checksum, unknown", async () => {
    const { key } = await api.createKey({});
    const flipped = key.slice(0, -1) + (key.endsWith("A") ? "B" : "A");
    const unknownButValid = await api.createKey({});
    await api.admin("DELETE", `/keys/${unknownButValid.id}`);
    for (const auth of [`Basic ${key}`, "Bearer", "Bearer kw_dev_short", `Bearer ${flipped}`, `Bearer ${unknownButValid.key}`]) {
      const res = await api.call("GET", "/things", { headers: { authorization: auth } });
      expectError(assert, res, 401, "invalid_key", "Invalid API Key");
      assert.equal(res.headers.get("www-authenticate"), "Bearer", auth);
    }
  });
});

describe("a valid key is forwarded", () => {
  test("method, path, query and body unchanged; Authorization removed; identity added", async () => {
    const k = await api.createKey({ permissions: ["write:all"], projects: ["p1"] });
    const res = await api.call("POST", "/projects/p1/tasks?a=1&b=two", {
      key: k.key,
      body: { title: "hello" },
      headers: { "x-keyward-account": "someone-else", "x-custom": "kept" },
    });
    assert.equal(res.status, 200, res.text);
    const seen = res.json;
    assert.equal(seen.origin, "example");
    assert.equal(seen.method, "POST");
    assert.equal(seen.path, "/projects/p1/tasks");
    assert.equal(seen.query, "?a=1&b=two");
    assert.deepEqual(JSON.parse(seen.body), { title: "hello" });
    assert.equal(seen.headers.authorization, undefined);
    assert.equal(seen.headers["x-custom"], "kept");
    assert.equal(seen.headers["x-keyward-key-id"], k.id);
    assert.equal(seen.headers["x-keyward-account"], "acme", "a client cannot spoof identity headers");
    assert.equal(seen.headers["x-keyward-permissions"], "write:all");
    assert.equal(seen.headers["x-keyward-environment"], "development");
    assert.equal(seen.headers["x-keyward-projects"], "p1");
    assert.equal(res.headers.get("x-origin"), "example", "origin headers come back");
  });

  test("origin status passes through unchanged", async () => {
    const k = await api.createKey({});
    const res = await get("/teapot", k.key);
    assert.equal(res.status, 418);
  });

  test("usage count and last used are kept per key", async () => {
    const k = await api.createKey({});
    for (let i = 0; i < 3; i++) assert.equal((await get("/things", k.key)).status, 200);
    await get("/things", k.key + "x"); // invalid: not counted
    // Uses are counted when each request settles, just after its answer.
    assert.equal(await settledUsage(api, k.id), 3);
    const view = (await api.admin("GET", `/keys/${k.id}`)).json;
    assert.ok(Date.parse(view.last_used_at) >= Date.parse(k.created_at));
  });
});

test("public paths pass without a key", async () => {
  for (const path of ["/health", "/docs/intro"]) {
    const res = await get(path);
    assert.equal(res.status, 200);
    assert.equal(res.json.path, path);
    assert.equal(res.json.headers["x-keyward-key-id"], undefined);
  }
  expectError(assert, await get("/healthz"), 401, "invalid_key");
});

test("row 4: revoked", async () => {
  const k = await api.createKey({});
  await api.admin("POST", `/keys/${k.id}/revoke`);
  const res = await get("/things", k.key);
  expectError(assert, res, 401, "key_revoked", "Revoked API Key");
  assert.equal(res.headers.get("www-authenticate"), null);
});

test("row 5: deactivated", async () => {
  const k = await api.createKey({});
  await api.admin("POST", `/keys/${k.id}/deactivate`);
  expectError(assert, await get("/things", k.key), 401, "key_inactive", "Inactive API Key");
});

test("row 6: expired", async () => {
  const k = await api.createKey({ expires_at: new Date(Date.now() + 1500).toISOString() });
  assert.equal((await get("/things", k.key)).status, 200);
  await new Promise((r) => setTimeout(r, 1700));
  expectError(assert, await get("/things", k.key), 401, "key_expired", "Expired API Key");
  assert.equal((await api.admin("GET", `/keys/${k.id}`)).json.status, "expired");
});

test("row 7: key of another environment", async () => {
  const k = await api.createKey({ environment: "production" });
  assert.match(k.key, /^kw_live_/);
  expectError(assert, await get("/things", k.key), 401, "wrong_environment", "API key not valid for this environment");
});

test("row 8: plan without API access, lifted on the next request", async () => {
  const put = await api.admin("PUT", "/accounts/freeloader", { plan: "free" });
  assert.equal(put.status, 200);
  assert.equal(put.json.plan, "free");
  const k = await api.createKey({ account: "freeloader" });
  expectError(assert, await get("/things", k.key), 403, "upgrade_required", "Upgrade required");
  assert.equal((await api.admin("PUT", "/accounts/freeloader", { plan: "pro" })).status, 200);
  assert.equal((await get("/things", k.key)).status, 200);
  // A request refused by the plan does not count as a use of the key.
  await api.admin("PUT", "/accounts/freeloader", { plan: "free" });
  await get("/things", k.key);
  await new Promise((r) => setTimeout(r, 300));
  await eventually(async () => assert.equal((await api.admin("GET", `/keys/${k.id}`)).json.usage_count, 1));
});

test("row 9: IP allowlist with CIDR", async () => {
  const k = await api.createKey({ ip_allowlist: ["10.0.0.0/8", "2001:db8::/32"] });
  const from = (ip) => get("/things", k.key, { "cf-connecting-ip": ip });
  assert.equal((await from("10.20.30.40")).status, 200);
  assert.equal((await from("2001:db8::7")).status, 200);
  expectError(assert, await from("11.0.0.1"), 403, "ip_not_allowed", "IP address not allowed for this key");
  expectError(assert, await from("2001:db9::1"), 403, "ip_not_allowed");
});

describe("row 10: permissions", () => {
  test("read-only keys can only read (default route mapping)", async () => {
    const k = await api.createKey({ permissions: ["read:all"] });
    for (const m of ["GET", "HEAD", "OPTIONS"]) assert.equal((await api.call(m, "/things", { key: k.key })).status, 200, m);
    for (const m of ["POST", "PUT", "PATCH", "DELETE"]) {
      expectError(assert, await api.call(m, "/things", { key: k.key }), 403, "insufficient_permissions", "Forbidden: missing permission 'write:all'");
    }
  });
  test("built-in hierarchy: admin includes write:all includes read:all", async () => {
    const k = await api.createKey({ permissions: ["admin"] });
    assert.equal((await api.call("DELETE", "/things", { key: k.key })).status, 200);
    assert.equal((await get("/things", k.key)).status, 200);
  });
  test("configured routes need free-form permissions", async () => {
    const writer = await api.createKey({ permissions: ["write:all"] });
    expectError(assert, await api.call("POST", "/licenses/9", { key: writer.key }), 403, "insufficient_permissions", "Forbidden: missing permission 'license:manage'");
    const lic = await api.createKey({ permissions: ["license:manage"] });
    assert.equal((await api.call("POST", "/licenses/9", { key: lic.key })).status, 200);
    expectError(assert, await get("/customers/c1", writer.key), 403, "insufficient_permissions", "Forbidden: missing permission 'customer:read'");
    const cust = await api.createKey({ permissions: ["customer:read"] });
    assert.equal((await api.call("PUT", "/customers/c1", { key: cust.key })).status, 200);
  });
});

test("row 11: project scope", async () => {
  const k = await api.createKey({ projects: ["p1", "p2"] });
  assert.equal((await get("/projects/p1/tasks", k.key)).status, 200);
  assert.equal((await get("/projects/p2", k.key)).status, 200);
  assert.equal((await get("/elsewhere", k.key)).status, 200);
  expectError(assert, await get("/projects/p3/tasks", k.key), 403, "project_forbidden", "Forbidden: no access to project 'p3'");
  const all = await api.createKey({ projects: [] });
  assert.equal((await get("/projects/p3/tasks", all.key)).status, 200);
});

test("rows are checked in table order", async () => {
  // Revoked, of another environment, from a foreign IP, without the permission: row 4.
  const k = await api.createKey({ environment: "staging", ip_allowlist: ["10.0.0.0/8"], projects: ["p1"] });
  await api.admin("POST", `/keys/${k.id}/revoke`);
  const req = () => api.call("POST", "/projects/p9", { key: k.key, headers: { "cf-connecting-ip": "1.1.1.1" } });
  expectError(assert, await req(), 401, "key_revoked");
  const k2 = await api.createKey({ account: "order-free", environment: "staging", ip_allowlist: ["10.0.0.0/8"], projects: ["p1"] });
  await api.admin("PUT", "/accounts/order-free", { plan: "free" });
  const req2 = (headers) => api.call("POST", "/projects/p9", { key: k2.key, headers });
  expectError(assert, await req2({ "cf-connecting-ip": "1.1.1.1" }), 401, "wrong_environment");
  const k3 = await api.createKey({ account: "order-free", ip_allowlist: ["10.0.0.0/8"], projects: ["p1"] });
  const req3 = (ip) => api.call("POST", "/projects/p9", { key: k3.key, headers: { "cf-connecting-ip": ip } });
  expectError(assert, await req3("1.1.1.1"), 403, "upgrade_required");
  await api.admin("PUT", "/accounts/order-free", { plan: "pro" });
  expectError(assert, await req3("1.1.1.1"), 403, "ip_not_allowed");
  expectError(assert, await req3("10.0.0.1"), 403, "insufficient_permissions");
  await api.admin("PATCH", `/keys/${k3.id}`, { permissions: ["write:all"] });
  expectError(assert, await req3("10.0.0.1"), 403, "project_forbidden");
});
