// Confinement by construction (issue 19 §1–§4): a retired secret never manages and
// dies with its grace; one account's verifier blocks nobody else's clients; paths an
// origin folds differently are refused; every power of a key — limits, quotas,
// environment, a rotation's grace — is confined like permissions and expiry.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { ADMIN_TOKEN, eventually, expectError, useKeyward } from "./harness.mjs";

let origin, kw, api;
let seq = 0;
const unique = (label) => `${label}-${Date.now().toString(36)}-${seq++}`;

const setup = useKeyward({
  IP_BLOCK_THRESHOLD: "10",
  IP_BLOCK_WINDOW_SECONDS: "60",
  IP_BLOCK_COOLDOWN_SECONDS: "600",
  ROUTE_PERMISSIONS: JSON.stringify([{ method: "POST", path: "/licenses/**", permission: "license:manage" }]),
});
before(async () => ({ origin, server: kw, api } = await setup.ready));

const me = (secret) => api.admin("GET", "/me", undefined, secret);
const inAnHour = () => new Date(Date.now() + 3_600_000).toISOString();

describe("a secret in its rotation grace period never manages", () => {
  test("rotate, create, patch, revoke and delete with the old secret are 401; the owner's new secret keeps working", async () => {
    const account = unique("grace");
    const admin = await api.createKey({ account, name: "owner", permissions: ["admin"] });
    const rotated = await api.admin("POST", `/keys/${admin.id}/rotate`, { grace_period_seconds: 120 });
    assert.equal(rotated.status, 200, rotated.text);
    const [oldSecret, newSecret] = [admin.key, rotated.json.key];
    const victim = await api.createKey({ account, name: "victim" });
    const attempts = [
      ["POST", `/keys/${admin.id}/rotate`, {}],
      ["POST", "/keys", { name: "m", permissions: ["admin"] }],
      ["PATCH", `/keys/${admin.id}`, { name: "mine now" }],
      ["PATCH", `/keys/${victim.id}`, { permissions: ["admin"] }],
      ["POST", `/keys/${victim.id}/revoke`, undefined],
      ["DELETE", `/keys/${victim.id}`, undefined],
      ["POST", `/keys/${admin.id}/deactivate`, undefined],
      ["GET", "/keys", undefined],
    ];
    for (const [method, path, body] of attempts) {
      expectError(assert, await api.admin(method, path, body, oldSecret), 401, "invalid_key", "Invalid API Key");
      const owner = await me(newSecret);
      assert.equal(owner.status, 200, `${method} ${path}: the owner's secret stopped working: ${owner.text}`);
      assert.equal(owner.json.key_id, admin.id);
    }
    // Nothing changed: the key, its secret, the victim.
    const after = (await api.admin("GET", `/keys/${admin.id}`)).json;
    assert.deepEqual([after.name, after.status, after.prefix], ["owner", "active", rotated.json.prefix]);
    const v = (await api.admin("GET", `/keys/${victim.id}`)).json;
    assert.deepEqual([v.status, v.permissions], ["active", ["read:all"]]);
    const keys = (await api.admin("GET", `/keys?account=${account}`)).json.items;
    assert.equal(keys.length, 2, "no key was minted");
    // Where it is accepted: the request path and verify.
    assert.equal((await api.call("GET", "/things", { key: oldSecret })).status, 200);
    assert.equal((await api.admin("POST", "/verify", { key: oldSecret })).json.valid, true);
  });

  test("it dies with its grace period", async () => {
    const k = await api.createKey({ account: unique("grace-end") });
    const rotated = await api.admin("POST", `/keys/${k.id}/rotate`, { grace_period_seconds: 2 });
    assert.equal((await api.call("GET", "/things", { key: k.key })).status, 200);
    await eventually(async () => expectError(assert, await api.call("GET", "/things", { key: k.key }), 401, "invalid_key"), 10_000);
    assert.equal((await api.admin("POST", "/verify", { key: k.key })).json.valid, false);
    assert.equal((await api.call("GET", "/things", { key: rotated.json.key })).status, 200);
  });
});

describe("a verifier's reported address counts within its own account", () => {
  test("twelve garbage keys from account A's verifier do not block account B's client at that address", async () => {
    const [a, b] = [unique("verifier-a"), unique("client-b")];
    const verifier = await api.createKey({ account: a, name: "verifier", permissions: ["verify"] });
    const ip = "198.51.100.40";
    for (let i = 0; i < 12; i++) {
      const res = await api.admin("POST", "/verify", { key: `kw_dev_garbage${i}`, ip }, verifier.key);
      assert.equal(res.status, 200, res.text);
      assert.equal(res.json.valid, false);
    }
    // Blocked for that verifier's account...
    const blocked = (await api.admin("POST", "/verify", { key: "kw_dev_garbage", ip }, verifier.key)).json;
    assert.deepEqual([blocked.valid, blocked.code], [false, "ip_blocked"]);
    const ownKey = await api.createKey({ account: a });
    assert.equal((await api.admin("POST", "/verify", { key: ownKey.key, ip }, verifier.key)).json.code, "ip_blocked");
    // ...and for nobody else: B's key from that address, at the gate and in B's verify.
    const bKey = await api.createKey({ account: b });
    const res = await api.call("GET", "/things", { key: bKey.key, headers: { "cf-connecting-ip": ip } });
    assert.equal(res.status, 200, res.text);
    assert.equal((await api.admin("POST", "/verify", { key: bKey.key, ip })).json.valid, true);
    const bVerifier = await api.createKey({ account: b, permissions: ["verify"] });
    assert.equal((await api.admin("POST", "/verify", { key: bKey.key, ip }, bVerifier.key)).json.valid, true);
  });
});

describe("paths an origin folds differently", () => {
  const refusedPath = async (method, path, key) => {
    origin.forget();
    const res = await api.call(method, path, { key });
    expectError(assert, res, 400, "invalid_request");
    assert.equal(res.json.field, "path", res.text);
    assert.deepEqual(origin.received(), [], `${path} reached the origin`);
    return res;
  };

  test("Unicode case folding (ſ ı İ K) cannot cross a rule or a project scope", async () => {
    const writer = await api.createKey({ account: unique("fold"), permissions: ["write:all"] });
    expectError(assert, await api.call("POST", "/licenses/1", { key: writer.key }), 403, "insufficient_permissions");
    for (const p of ["/licen%C5%BFes/1", "/l%C4%B1censes/1", "/l%C4%B0censes/1", "/LI%CC%87CENSES/1", "/li%CC%87censes/1"]) {
      const res = await refusedPath("POST", p, writer.key);
      assert.match(res.json.error, /^invalid request path: it contains U\+[0-9A-F]{4}/);
    }
    const scoped = await api.createKey({ account: unique("fold"), projects: ["p1"] });
    expectError(assert, await api.call("GET", "/projects/p2/x", { key: scoped.key }), 403, "project_forbidden");
    await refusedPath("GET", "/project%C5%BF/p2/x", scoped.key);
    await refusedPath("GET", "/%E2%84%AAeys/x", scoped.key);
  });

  test("compatibility forms (fullwidth / \\ . letters, ligatures, invisible characters) are refused", async () => {
    const k = await api.createKey({ account: unique("nfkc"), projects: ["p1"] });
    for (const p of [
      "/projects%EF%BC%8Fp2/x",
      "/projects/p1%EF%BC%BC..%EF%BC%BCp2",
      "/projects/p1/%EF%BC%8E%EF%BC%8E/%EF%BC%8E%EF%BC%8E/projects/p2",
      "/projects/p1/%E2%80%A5/p2",
      "/%EF%BD%90rojects/p2",
      "/%EF%AC%81les",
      "/pro%E2%80%8Bjects/p2",
      "/pro%C2%ADjects/p2",
    ]) {
      await refusedPath("GET", p, k.key);
    }
  });

  test("non-ASCII that folds only to non-ASCII is forwarded as it is", async () => {
    const k = await api.createKey({ account: unique("utf8") });
    origin.forget();
    const res = await api.call("GET", "/caf%C3%A9/%E4%B8%AD", { key: k.key });
    assert.equal(res.status, 200, res.text);
    assert.equal(origin.received()[0].target, "/caf%C3%A9/%E4%B8%AD");
  });
});

describe("every power of a key is confined", () => {
  const admin = (body) => api.createKey({ name: "admin", permissions: ["admin"], ...body });

  test("an admin key with a rate limit cannot mint, patch or lift a key without one", async () => {
    const account = unique("limited");
    const a = await admin({ account, rate_limits: { per_minute: 100 } });
    const create = (body) => api.admin("POST", "/keys", { name: "child", ...body }, a.key);
    let res = await create({});
    expectError(assert, res, 403, "forbidden");
    assert.match(res.json.error, /rate_limits\.per_minute/);
    res = await create({ rate_limits: { per_minute: 200 } });
    expectError(assert, res, 403, "forbidden");
    assert.match(res.json.error, /rate_limits\.per_minute of 200, above this admin key's 100/);
    res = await create({ rate_limits: { per_minute: 50 } });
    assert.equal(res.status, 201, res.text);
    const child = res.json;
    expectError(assert, await api.admin("PATCH", `/keys/${child.id}`, { rate_limits: { per_minute: 500 } }, a.key), 403, "forbidden");
    expectError(assert, await api.admin("PATCH", `/keys/${child.id}`, { rate_limits: null }, a.key), 403, "forbidden");
    // Nor lift its own.
    res = await api.admin("PATCH", `/keys/${a.id}`, { rate_limits: null }, a.key);
    expectError(assert, res, 403, "forbidden");
    res = await api.admin("PATCH", `/keys/${a.id}`, { rate_limits: { per_minute: 1000 } }, a.key);
    expectError(assert, res, 403, "forbidden");
    assert.equal((await api.admin("GET", `/keys/${a.id}`)).json.rate_limits.per_minute, 100);
    assert.equal((await api.admin("GET", `/keys/${child.id}`)).json.rate_limits.per_minute, 50);
    // Tighter is always allowed.
    assert.equal((await api.admin("PATCH", `/keys/${child.id}`, { rate_limits: { per_minute: 10 } }, a.key)).status, 200);
  });

  test("an admin key with a daily quota cannot mint a key without one", async () => {
    const a = await admin({ account: unique("quota"), quotas: { daily: 1000 } });
    const res = await api.admin("POST", "/keys", { name: "child" }, a.key);
    expectError(assert, res, 403, "forbidden");
    assert.match(res.json.error, /quotas\.daily/);
    assert.equal((await api.admin("POST", "/keys", { name: "child", quotas: { daily: 10 } }, a.key)).status, 201);
    expectError(assert, await api.admin("PATCH", `/keys/${a.id}`, { quotas: null }, a.key), 403, "forbidden");
  });

  test("an admin key creates keys only in its own environment", async () => {
    const a = await admin({ account: unique("env") });
    for (const environment of ["production", "staging"]) {
      const res = await api.admin("POST", "/keys", { name: "child", environment }, a.key);
      expectError(assert, res, 403, "forbidden");
      assert.match(res.json.error, new RegExp(`environment '${environment}'`));
    }
    const res = await api.admin("POST", "/keys", { name: "child", environment: "development" }, a.key);
    assert.equal(res.status, 201, res.text);
    // Keys of another environment are beyond its reach.
    const prod = await api.createKey({ account: a.account, environment: "production" });
    expectError(assert, await api.admin("GET", `/keys/${prod.id}`, undefined, a.key), 404, "not_found");
  });

  test("a rotation's grace period never extends past the caller's expiry", async () => {
    const a = await admin({ account: unique("rotate"), expires_at: inAnHour() });
    const child = (await api.admin("POST", "/keys", { name: "child", expires_at: new Date(Date.now() + 1_800_000).toISOString() }, a.key)).json;
    let res = await api.admin("POST", `/keys/${child.id}/rotate`, { grace_period_seconds: 7200 }, a.key);
    expectError(assert, res, 403, "forbidden");
    assert.match(res.json.error, /grace period/);
    res = await api.admin("POST", `/keys/${a.id}/rotate`, { grace_period_seconds: 7200 }, a.key);
    expectError(assert, res, 403, "forbidden");
    // The key and its secret are as they were.
    assert.equal((await api.call("GET", "/things", { key: child.key })).status, 200);
    res = await api.admin("POST", `/keys/${child.id}/rotate`, { grace_period_seconds: 60 }, a.key);
    assert.equal(res.status, 200, res.text);
    assert.ok(res.json.previous_secret_valid_until);
  });

  test("what an admin key cannot grant, the bootstrap token can", async () => {
    const res = await api.admin("POST", "/keys", { account: unique("root"), name: "free", environment: "production" }, ADMIN_TOKEN);
    assert.equal(res.status, 201, res.text);
  });
});
