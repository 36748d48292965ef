// SPEC §3 over HTTP: every row of the check table this build enforces (1, 3–11),
// public paths, forwarding, the order in which rows are checked, and keys in
// configured headers.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { ADMIN_TOKEN, eventually, expectError, settledUsage, useKeyward } from "./harness.mjs";

let origin, kw, api;

const setup = useKeyward({
  ROUTE_PERMISSIONS: JSON.stringify([
    { method: "POST", path: "/licenses/**", permission: "license:manage" },
    { path: "/customers/**", permission: "customer:read" },
  ]),
  PUBLIC_PATHS: "/health,/docs/**",
  KEY_HEADERS: "X-API-Key, apikey",
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

// Credentials where clients put them (issue 22 §4): KEY_HEADERS names headers that
// carry a key as-is beside `Authorization: Bearer`. Two different credentials are
// 400; a key in the query string is never read; the key headers, in every
// spelling a server folds into them, never reach the origin.
describe("row 3: a key in a configured header (KEY_HEADERS)", () => {
  let seq = 0;
  const fresh = (label) => `${label}-${Date.now().toString(36)}-${seq++}`;
  const viaHeaders = (headers, path = "/things") => api.call("GET", path, { headers });

  test("a key in a configured header is accepted, and that header never reaches the origin", async () => {
    const k = await api.createKey({ account: fresh("kh") });
    for (const name of ["X-API-Key", "x-api-key", "apikey"]) {
      const res = await viaHeaders({ [name]: k.key, "x_api_key": "not-for-the-origin", "X-Other": "kept" });
      assert.equal(res.status, 200, `${name}: ${res.text}`);
      const seen = origin.received().at(-1).headers;
      for (const h of ["x-api-key", "apikey", "x_api_key", "authorization"]) assert.equal(seen[h], undefined, `${h} reached the origin`);
      assert.equal(seen["x-other"], "kept");
      assert.equal(seen["x-keyward-key-id"], k.id);
    }
    // Bearer keeps working; the same key in both is that key.
    assert.equal((await api.call("GET", "/things", { key: k.key })).status, 200);
    assert.equal((await api.call("GET", "/things", { key: k.key, headers: { "x-api-key": k.key } })).status, 200);
  });

  test("two different credentials are 400 naming the second header", async () => {
    const a = await api.createKey({ account: fresh("kh-a") });
    const b = await api.createKey({ account: fresh("kh-b") });
    const sent = origin.received().length;
    const both = await api.call("GET", "/things", { key: a.key, headers: { "x-api-key": b.key } });
    expectError(assert, both, 400, "invalid_request", "invalid header 'x-api-key': a second, different credential (authorization carries one)");
    const two = await viaHeaders({ "x-api-key": a.key, apikey: b.key });
    expectError(assert, two, 400, "invalid_request", "invalid header 'apikey': a second, different credential (x-api-key carries one)");
    // Another Authorization scheme beside a key is a second credential too.
    const basic = await viaHeaders({ authorization: "Basic dXNlcjpwdw==", "x-api-key": a.key });
    expectError(assert, basic, 400, "invalid_request");
    assert.equal(origin.received().length, sent, "a refused request reached the origin");
  });

  test("a key in the query string is never accepted", async () => {
    const k = await api.createKey({ account: fresh("kh-q") });
    for (const q of [`api_key=${k.key}`, `apikey=${k.key}`, `x-api-key=${k.key}`, `key=${k.key}`]) {
      const res = await viaHeaders({}, `/things?${q}`);
      expectError(assert, res, 401, "invalid_key", "Invalid API Key");
    }
    // A header that is not configured carries nothing.
    expectError(assert, await viaHeaders({ "x-key": k.key }), 401, "invalid_key");
  });

  test("an admin key in a key header is confined as by Bearer; the bootstrap token is Bearer only", async () => {
    const account = fresh("kh-admin");
    const admin = await api.createKey({ account, permissions: ["admin"] });
    const reader = await api.createKey({ account, permissions: ["read:all"] });
    const other = await api.createKey({ account: fresh("kh-other"), permissions: ["admin"] });
    const target = await api.createKey({ account });
    const as = (key, path) => api.call("GET", `/admin/v1${path}`, { headers: { "x-api-key": key } });
    assert.equal((await as(admin.key, `/keys/${target.id}`)).status, 200);
    expectError(assert, await as(other.key, `/keys/${target.id}`), 404, "not_found");
    expectError(assert, await as(reader.key, `/keys/${target.id}`), 403, "insufficient_permissions");
    expectError(assert, await as(ADMIN_TOKEN, `/keys/${target.id}`), 401, "invalid_key");
    const mixed = await api.call("GET", `/admin/v1/keys/${target.id}`, { key: ADMIN_TOKEN, headers: { "x-api-key": other.key } });
    expectError(assert, mixed, 400, "invalid_request");
  });
});
