// What reaches the origin and what management answers carry (issue 19 §5): client
// proxy headers removed and X-Forwarded-For set to the address keyward judged;
// nosniff on every management answer, no-store on those with a secret; invisible
// and direction-changing names refused; the project collection closed to scoped
// keys; refused management attempts audited, bounded per address; a cap on keys.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { ADMIN_TOKEN, eventually, expectError, rawRequest, useKeyward } from "./harness.mjs";

let origin, kw, api;
let seq = 0;
const unique = (label) => `${label}-${Date.now().toString(36)}-${seq++}`;
const REFUSALS_PER_HOUR = 3;
const MAX_KEYS = 3;

const setup = useKeyward({
  AUDIT_REFUSALS_PER_HOUR: String(REFUSALS_PER_HOUR),
  MAX_KEYS_PER_ACCOUNT: String(MAX_KEYS),
  PUBLIC_PATHS: "/health",
});
before(async () => ({ origin, server: kw, api } = await setup.ready));

const PROXY_HEADERS = ["X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded", "X-Real-IP", "True-Client-IP"];

describe("what reaches the origin", () => {
  test("client proxy headers and proxy credentials are removed, in every spelling; X-Forwarded-For is the address keyward judged", async () => {
    const k = await api.createKey({ account: unique("proxy") });
    for (const path of ["/things", "/health"]) {
      origin.forget();
      const head = [
        `GET ${path} HTTP/1.1`,
        `Authorization: Bearer ${k.key}`,
        "CF-Connecting-IP: 203.0.113.9",
        ...PROXY_HEADERS.map((h) => `${h}: 10.6.6.6`),
        "X_Forwarded_For: 10.6.6.7",
        "x-forwarded-port: 8443",
        "X-Original-URL: /admin/secret",
        "X-Rewrite-URL: /admin/secret",
        "Proxy-Authorization: Bearer kw_dev_for-the-proxy",
        "X-Kept: 1",
      ];
      const res = await rawRequest(kw.base, head.join("\r\n"));
      assert.equal(res.status, 200, res.body);
      const [seen] = origin.received();
      assert.equal(seen.headers["x-forwarded-for"], "203.0.113.9", JSON.stringify(seen.headers));
      assert.equal(seen.headers["x-kept"], "1", "other headers pass");
      for (const name of ["x-forwarded-host", "x-forwarded-proto", "forwarded", "x-real-ip", "true-client-ip", "x_forwarded_for", "x-forwarded-port", "x-original-url", "x-rewrite-url", "proxy-authorization", "authorization"]) {
        assert.equal(seen.headers[name], undefined, `${path}: ${name} reached the origin`);
      }
      assert.ok(!JSON.stringify(seen.headers).includes("10.6.6."), JSON.stringify(seen.headers));
    }
  });

  test("a project-scoped key is refused on the project collection itself", async () => {
    const scoped = await api.createKey({ account: unique("collection"), projects: ["p1"] });
    for (const path of ["/projects", "/projects/", "/PROJECTS", "/v1/projects", "/projects/p1/projects"]) {
      origin.forget();
      expectError(assert, await api.call("GET", path, { key: scoped.key }), 403, "project_forbidden", "Forbidden: no access to project '*'");
      assert.deepEqual(origin.received(), [], path);
    }
    assert.equal((await api.call("GET", "/projects/p1/tasks", { key: scoped.key })).status, 200);
    const unscoped = await api.createKey({ account: unique("collection") });
    assert.equal((await api.call("GET", "/projects", { key: unscoped.key })).status, 200);
  });
});

describe("what management answers carry", () => {
  test("every answer carries nosniff; answers holding a secret are never stored", async () => {
    const created = await api.admin("POST", "/keys", { account: unique("nosniff"), name: "n" });
    const id = created.json.id;
    const rotated = await api.admin("POST", `/keys/${id}/rotate`, {});
    for (const res of [created, rotated]) {
      assert.ok(res.json.key, "holds the secret");
      assert.equal(res.headers.get("cache-control"), "no-store");
      assert.equal(res.headers.get("x-content-type-options"), "nosniff");
    }
    const fresh = await api.createKey({ account: unique("nosniff") });
    const answers = [
      await api.admin("GET", "/keys"),
      await api.admin("GET", `/keys/${id}`),
      await api.admin("GET", "/me"),
      await api.admin("DELETE", `/keys/${fresh.id}`),
      await api.admin("POST", "/keys", { name: "" }),
      await api.admin("GET", "/keys", undefined, "wrong"),
      await api.admin("PUT", `/accounts/x`, { plan: "pro" }, (await api.createKey({ account: unique("nosniff"), permissions: ["admin"] })).key),
      await api.admin("GET", "/keys/key_doesnotexist"),
      await api.admin("PATCH", "/keys"),
      await api.call("HEAD", "/admin/v1/keys", { key: ADMIN_TOKEN }),
      await api.call("GET", "/admin/v1/openapi.json"),
    ];
    assert.deepEqual(answers.map((r) => r.status), [200, 200, 200, 204, 400, 401, 403, 404, 405, 200, 200]);
    for (const res of answers) assert.equal(res.headers.get("x-content-type-options"), "nosniff", `${res.status}`);
  });

  test("names and categories with invisible or direction-changing characters are refused, naming the field", async () => {
    const account = unique("invisible");
    for (const text of ["\u200B", "\u200B\u200B", "invoice\u202Efdp.exe", "\u2066admin\u2069", "\uFEFFroot", "\u3164", "a\u200Db"]) {
      for (const field of ["name", "category"]) {
        const body = { account, name: "ok", [field]: text };
        const res = await api.admin("POST", "/keys", body);
        expectError(assert, res, 400, "invalid_request");
        assert.equal(res.json.field, field, `${JSON.stringify(text)}: ${res.text}`);
      }
    }
    const k = await api.createKey({ account, name: "plain" });
    const res = await api.admin("PATCH", `/keys/${k.id}`, { name: "re\u202Edaeh" });
    assert.equal(res.json.field, "name");
    expectError(assert, await api.admin("POST", "/keys", { account, name: "x", alias: "a\u200Bb" }), 400, "invalid_request");
    assert.equal((await api.admin("GET", `/keys/${k.id}`)).json.name, "plain");
    assert.equal((await api.admin("GET", `/keys?account=${account}`)).json.items.length, 1, "nothing half-written");
  });
});

const refusals = async (account) =>
  (await api.admin("GET", `/events?account=${account}&action=admin.refused&limit=100`)).json.items;

describe("refused management attempts", () => {
  test("a wrong credential is recorded in the deployment's trail; a key's refusal in its account's", async () => {
    const ip = "203.0.113.21";
    expectError(assert, await api.admin("GET", "/keys", undefined, "not-the-token"), 401, "invalid_key");
    await api.call("POST", "/admin/v1/keys", { key: "kw_dev_guess", body: { name: "x" }, headers: { "cf-connecting-ip": ip } });
    const anonymous = await eventually(async () => {
      const found = (await refusals("_keyward")).find((e) => e.details.ip === ip);
      assert.ok(found, "no event for the wrong credential");
      return found;
    });
    assert.equal(anonymous.actor, "anonymous");
    assert.deepEqual([anonymous.details.route, anonymous.details.status, anonymous.details.code], ["POST /admin/v1/keys", 401, "invalid_key"]);
    assert.ok(!JSON.stringify(anonymous).includes("kw_dev_guess"), "the credential is never recorded");

    const account = unique("refusal");
    const verifier = await api.createKey({ account, permissions: ["verify"] });
    const admin = await api.createKey({ account, permissions: ["admin"], projects: ["p1"] });
    const headers = { "cf-connecting-ip": "203.0.113.22" };
    expectError(assert, await api.call("POST", "/admin/v1/keys", { key: verifier.key, body: { name: "x" }, headers }), 403, "insufficient_permissions");
    expectError(assert, await api.call("POST", "/admin/v1/keys", { key: admin.key, body: { name: "x" }, headers }), 403, "forbidden");
    const events = await eventually(async () => {
      const found = await refusals(account);
      assert.equal(found.length, 2, JSON.stringify(found));
      return found;
    });
    const byActor = Object.fromEntries(events.map((e) => [e.actor, e]));
    assert.equal(byActor[`key:${verifier.id}`].details.code, "insufficient_permissions");
    assert.equal(byActor[`key:${admin.id}`].details.code, "forbidden");
    assert.match(byActor[`key:${admin.id}`].details.reason, /all projects/);
    // The refused admin key sees its own refusal; the account's events stay its own.
    const seen = (await api.admin("GET", "/events?action=admin.refused", undefined, admin.key)).json.items;
    assert.ok(seen.some((e) => e.actor === `key:${admin.id}`), JSON.stringify(seen));
  });

  test("a flood from one address records at most AUDIT_REFUSALS_PER_HOUR of it", async () => {
    const ip = "203.0.113.99";
    for (let i = 0; i < 12; i++) {
      const res = await api.call("GET", "/admin/v1/keys", { key: `guess-${i}`, headers: { "cf-connecting-ip": ip } });
      expectError(assert, res, 401, "invalid_key");
    }
    // A refusal from another address, sent after all twelve: the trail's object
    // decides in order, so once it is recorded every one of the twelve is decided.
    await api.call("GET", "/admin/v1/keys", { key: "guess", headers: { "cf-connecting-ip": "203.0.113.98" } });
    await eventually(async () => assert.ok((await refusals("_keyward")).some((e) => e.details.ip === "203.0.113.98")));
    const fromFlood = (await refusals("_keyward")).filter((e) => e.details.ip === ip);
    assert.equal(fromFlood.length, REFUSALS_PER_HOUR, JSON.stringify(fromFlood));
    assert.deepEqual(fromFlood.map((e) => e.details.route), Array(REFUSALS_PER_HOUR).fill("GET /admin/v1/keys"));
  });

  test("the deployment's trail is no account anyone can take", async () => {
    const res = await api.admin("POST", "/keys", { account: "_keyward", name: "mine" });
    expectError(assert, res, 400, "invalid_request");
    assert.equal(res.json.field, "account");
    expectError(assert, await api.admin("PUT", "/accounts/_keyward", { plan: "pro" }), 400, "invalid_request");
  });
});

describe("a cap on keys per account", () => {
  test("past MAX_KEYS_PER_ACCOUNT a create is 409, for that account only", async () => {
    const account = unique("cap");
    const keys = [];
    for (let i = 0; i < MAX_KEYS; i++) keys.push(await api.createKey({ account, name: `k${i}`, alias: `a${i}` }));
    const res = await api.admin("POST", "/keys", { account, name: "one too many" });
    expectError(assert, res, 409, "conflict");
    assert.match(res.json.error, /already holds 3 keys, the most MAX_KEYS_PER_ACCOUNT allows/);
    assert.equal((await api.admin("GET", `/keys?account=${account}`)).json.items.length, MAX_KEYS, "nothing half-written");
    assert.equal((await api.admin("POST", "/keys", { account: unique("cap"), name: "elsewhere" })).status, 201);
    assert.equal((await api.admin("DELETE", `/keys/${keys[0].id}`)).status, 204);
    assert.equal((await api.admin("POST", "/keys", { account, name: "room again", alias: "a0" })).status, 201);
  });
});
