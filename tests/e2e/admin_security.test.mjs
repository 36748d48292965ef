// The management API as an attacker meets it (issue 7 §4, §5, §7, §8): exact
// routes, confined admin keys, bounded bodies, and changes whose copies can fail
// without losing anything.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ADMIN_TOKEN, client, eventually, expectError, rawRequest, startKeyward, useKeyward } from "./harness.mjs";

let origin, kw, api;
let seq = 0;
const unique = (label) => `${label}-${Date.now().toString(36)}-${seq++}`;

const setup = useKeyward({});
before(async () => ({ origin, server: kw, api } = await setup.ready));

/** What must not change about a key when a request was refused. */
const stable = (k) => ({
  status: k.status, name: k.name, prefix: k.prefix, updated_at: k.updated_at,
  permissions: k.permissions, projects: k.projects, expires_at: k.expires_at, usage_count: k.usage_count,
});

describe("exact routes", () => {
  test("every (method, path) outside the OpenAPI document is 404 or 405 and changes nothing", async () => {
    const k = await api.createKey({ account: unique("routes"), name: "target" });
    const before = stable((await api.admin("GET", `/keys/${k.id}`)).json);
    const doc = (await api.call("GET", "/admin/v1/openapi.json")).json;
    const documented = new Set();
    for (const [p, item] of Object.entries(doc.paths)) {
      for (const m of Object.keys(item)) if (m !== "parameters") documented.add(`${m.toUpperCase()} ${p}`);
      // HEAD answers as GET, without the body (RFC 9110).
      if (item.get) documented.add(`HEAD ${p}`);
    }
    const methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PURGE", "PROPFIND"];
    const fill = (p) => p.replace("{id}", p.startsWith("/accounts") ? k.account : k.id);
    let walked = 0;
    // `template`: the documented path it fills, whose methods a 405 must list.
    const expectUnrouted = async (method, url, allowed, template) => {
      const head = [`${method} /admin/v1${url} HTTP/1.1`, `Authorization: Bearer ${ADMIN_TOKEN}`, "Content-Type: application/json", "Content-Length: 2"];
      const res = await rawRequest(kw.base, head.join("\r\n"), "{}");
      assert.ok(allowed.includes(res.status), `${method} ${url}: ${res.status} ${res.body}`);
      if (method !== "HEAD") {
        assert.ok(["not_found", "method_not_allowed", "invalid_request"].includes(res.json?.code), `${method} ${url}: ${res.body}`);
      }
      if (res.status === 405) {
        const allow = res.headers.allow.split(", ");
        assert.ok(allow.every((m) => documented.has(`${m} ${template}`)), `${url}: Allow ${res.headers.allow}`);
        assert.ok(!allow.includes(method));
      }
      walked++;
    };
    for (const p of Object.keys(doc.paths)) {
      for (const m of methods) {
        if (!documented.has(`${m} ${p}`)) await expectUnrouted(m, fill(p), [405], p);
      }
    }
    // Mutated action names and shapes: unknown paths, whatever the method.
    const mutations = [];
    for (const action of ["rotate", "deactivate", "activate", "revoke", "logs"]) {
      const cap = action[0].toUpperCase() + action.slice(1);
      mutations.push(cap, action.toUpperCase(), `${action}/`, `${action}x`, `x${action}`, `${action}/x`, `${action}%20`, `${action}%09`, `${action}.json`);
    }
    mutations.push("explode", "logs/..", "", "revoke/../revoke/x");
    for (const m of mutations) {
      for (const method of ["POST", "GET", "PUT", "PATCH", "DELETE"]) {
        await expectUnrouted(method, `/keys/${k.id}/${m}`, [400, 404], null);
      }
    }
    for (const url of [`/keys/${k.id};revoke`, `/keys/${k.id}/revoke;x`, `/keys%2F${k.id}/revoke`, `/KEYS/${k.id}/revoke`, `/keys/${k.id}/revoke%00`]) {
      await expectUnrouted("POST", url, [400, 404], null);
    }
    assert.ok(walked > 300, `walked ${walked}`);
    assert.deepEqual(stable((await api.admin("GET", `/keys/${k.id}`)).json), before, "the key changed");
    assert.equal((await api.call("GET", "/things", { key: k.key })).status, 200, "the key still works");
  });

  test("the attack of record: POST /keys/{id}/logs is 405 and revokes nothing", async () => {
    const k = await api.createKey({ account: unique("logs") });
    const res = await api.admin("POST", `/keys/${k.id}/logs`);
    expectError(assert, res, 405, "method_not_allowed", "Method not allowed");
    assert.equal(res.headers.get("allow"), "GET, HEAD");
    assert.equal((await api.admin("GET", `/keys/${k.id}`)).json.status, "active");
  });

  test("HEAD answers as GET without a body; the gate's 405 names what it forwards", async () => {
    const k = await api.createKey({ account: unique("head") });
    const get = await api.admin("GET", `/keys/${k.id}`);
    const head = await api.admin("HEAD", `/keys/${k.id}`);
    assert.equal(head.status, 200);
    assert.equal(head.text, "");
    assert.equal(head.headers.get("content-type"), get.headers.get("content-type"));
    const other = `${k.id.slice(0, -1)}${k.id.endsWith("0") ? "1" : "0"}`;
    const missing = await api.admin("HEAD", `/keys/${other}`);
    assert.equal(missing.status, 404);
    assert.equal(missing.text, "");
    // HEAD is a read: no credential, no answer.
    assert.equal((await api.call("HEAD", `/admin/v1/keys/${k.id}`)).status, 401);
    assert.equal((await api.admin("HEAD", "/keys/x/revoke")).status, 405);
    assert.equal((await api.admin("GET", `/keys/${k.id}`)).json.status, "active");
    const trace = await rawRequest(kw.base, `TRACE /things HTTP/1.1\r\nAuthorization: Bearer ${k.key}`);
    assert.equal(trace.status, 405);
    assert.equal(trace.headers.allow, "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
  });
});

describe("bodies", () => {
  test("a management body over 64 KB is refused with 413 before parsing; nothing is written", async () => {
    const account = unique("bodies");
    const k = await api.createKey({ account, name: "before" });
    const big = { name: "after", metadata: { pad: "x".repeat(70 * 1024) } };
    const res = await api.admin("PATCH", `/keys/${k.id}`, big);
    expectError(assert, res, 413, "payload_too_large", "Request body too large: at most 65536 bytes");
    expectError(assert, await api.admin("POST", "/keys", { ...big, account }), 413, "payload_too_large");
    // Without a declared length (chunked), the body is measured as it is read.
    const text = JSON.stringify(big);
    const chunked = [`PATCH /admin/v1/keys/${k.id} HTTP/1.1`, `Authorization: Bearer ${ADMIN_TOKEN}`, "Transfer-Encoding: chunked"];
    const raw = await rawRequest(kw.base, chunked.join("\r\n"), `${text.length.toString(16)}\r\n${text}\r\n0\r\n\r\n`);
    assert.equal(raw.status, 413, raw.body);
    assert.equal(raw.json.code, "payload_too_large");
    assert.equal((await api.admin("GET", `/keys/${k.id}`)).json.name, "before");
    assert.equal((await api.admin("GET", `/keys?account=${account}`)).json.items.length, 1);
    // The largest metadata allowed (50 keys of 500 characters) fits the limit.
    const metadata = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, "x".repeat(500)]));
    const fits = await api.admin("PATCH", `/keys/${k.id}`, { name: "fits", metadata });
    assert.equal(fits.status, 200, fits.text);
  });

  test("hostile JSON bodies get a 400 naming the problem", async () => {
    const k = await api.createKey({ account: unique("json") });
    for (const body of ["{", "[]", "null", '"x"', '{"name": "\u0000"}', '{"name": 1e999}', "\u00ff\u00fe"]) {
      const res = await api.admin("PATCH", `/keys/${k.id}`, body);
      expectError(assert, res, 400, "invalid_request");
    }
    const nested = "[".repeat(10_000) + "]".repeat(10_000);
    expectError(assert, await api.admin("POST", "/keys", nested), 400, "invalid_request");
  });
});

describe("admin keys stay inside their powers", () => {
  const IN_RANGE = { "cf-connecting-ip": "10.0.0.5" };
  let account, scoped, targets;
  const soon = (days) => new Date(Date.now() + days * 86_400_000).toISOString();

  before(async () => {
    account = unique("confined");
    const mk = (body) => api.createKey({ account, name: "k", ...body });
    // An admin key held to project p1, an expiry in 30 days and 10.0.0.0/8.
    scoped = await mk({ permissions: ["admin"], projects: ["p1"], expires_in_days: 30, ip_allowlist: ["10.0.0.0/8"] });
    const within = { permissions: ["read:all"], projects: ["p1"], expires_at: soon(10), ip_allowlist: ["10.1.0.0/16"] };
    targets = {
      within: () => mk(within),
      morePermissions: () => mk({ ...within, permissions: ["admin", "license:manage"] }),
      otherProject: () => mk({ ...within, projects: ["p2"] }),
      allProjects: () => mk({ ...within, projects: [] }),
      noExpiry: () => mk({ ...within, expires_at: undefined }),
      laterExpiry: () => mk({ ...within, expires_in_days: 90, expires_at: undefined }),
      noAllowlist: () => mk({ ...within, ip_allowlist: [] }),
      widerAllowlist: () => mk({ ...within, ip_allowlist: ["0.0.0.0/0"] }),
    };
  });

  const as = (key, method, path, body) => api.call(method, `/admin/v1${path}`, { key, body, headers: IN_RANGE });

  test("every operation on a key beyond its powers reads as 404, and changes nothing", async () => {
    for (const [label, make] of Object.entries(targets)) {
      if (label === "within") continue;
      const t = await make();
      const before = stable((await api.admin("GET", `/keys/${t.id}`)).json);
      const ops = [
        ["GET", `/keys/${t.id}`], ["GET", `/keys/${t.id}/logs`], ["PATCH", `/keys/${t.id}`, { name: "mine now" }],
        ["POST", `/keys/${t.id}/rotate`], ["POST", `/keys/${t.id}/deactivate`], ["POST", `/keys/${t.id}/activate`],
        ["POST", `/keys/${t.id}/revoke`], ["DELETE", `/keys/${t.id}`], ["GET", `/events?key_id=${t.id}`],
      ];
      for (const [method, path, body] of ops) {
        const res = await as(scoped.key, method, path, body);
        if (path.startsWith("/events")) {
          assert.equal(res.status, 200);
          assert.deepEqual(res.json.items, [], `${label}: its events are shown`);
        } else {
          expectError(assert, res, 404, "not_found");
          assert.ok(!res.text.includes("kw_dev_"), "no secret");
        }
      }
      assert.deepEqual(stable((await api.admin("GET", `/keys/${t.id}`)).json), before, `${label} changed`);
      const listed = await as(scoped.key, "GET", `/keys?limit=100`);
      assert.ok(!listed.json.items.some((k) => k.id === t.id), `${label} listed`);
    }
  });

  test("...and every operation on a key within them works", async () => {
    const t = await targets.within();
    assert.equal((await as(scoped.key, "GET", `/keys/${t.id}`)).status, 200);
    assert.equal((await as(scoped.key, "GET", `/keys/${t.id}/logs`)).status, 200);
    assert.equal((await as(scoped.key, "PATCH", `/keys/${t.id}`, { name: "renamed" })).json.name, "renamed");
    const rotated = await as(scoped.key, "POST", `/keys/${t.id}/rotate`);
    assert.equal(rotated.status, 200);
    assert.match(rotated.json.key, /^kw_dev_/);
    assert.equal((await as(scoped.key, "POST", `/keys/${t.id}/deactivate`)).json.status, "inactive");
    assert.equal((await as(scoped.key, "POST", `/keys/${t.id}/activate`)).json.status, "active");
    const events = await as(scoped.key, "GET", `/events?key_id=${t.id}`);
    assert.deepEqual(events.json.items.map((e) => e.action).sort(), ["key.activated", "key.created", "key.deactivated", "key.rotated", "key.updated"]);
    assert.ok((await as(scoped.key, "GET", "/keys?limit=100")).json.items.some((k) => k.id === t.id));
    assert.equal((await as(scoped.key, "POST", `/keys/${t.id}/revoke`)).json.status, "revoked");
    const fresh = await targets.within();
    assert.equal((await as(scoped.key, "DELETE", `/keys/${fresh.id}`)).status, 204);
  });

  test("the attack of record: a p1 admin key cannot rotate an admin + license:manage key and read its secret", async () => {
    const strong = await targets.morePermissions();
    const res = await as(scoped.key, "POST", `/keys/${strong.id}/rotate`);
    expectError(assert, res, 404, "not_found");
    assert.equal(res.json.key, undefined);
    const inItsRange = { "cf-connecting-ip": "10.1.0.9" };
    assert.equal((await api.call("GET", "/projects/p1/x", { key: strong.key, headers: inItsRange })).status, 200, "the old secret still works");
  });

  test("it creates and patches only keys no freer than itself", async () => {
    const base = { name: "minted", permissions: ["read:all"], projects: ["p1"], expires_at: soon(10), ip_allowlist: ["10.2.0.0/16"] };
    const refusedCreates = [
      [{ ...base, permissions: ["read:all", "license:manage"] }, /license:manage/],
      [{ ...base, projects: undefined }, /all projects/],
      [{ ...base, projects: [] }, /all projects/],
      [{ ...base, projects: ["p2"] }, /project 'p2'/],
      [{ ...base, expires_at: undefined }, /no expiry/],
      [{ ...base, expires_at: undefined, expires_in_days: 365 }, /an expiry after/],
      [{ ...base, ip_allowlist: undefined }, /no IP allowlist/],
      [{ ...base, ip_allowlist: ["11.0.0.0/8"] }, /11\.0\.0\.0\/8/],
      [{ ...base, ip_allowlist: ["10.0.0.0/7"] }, /10\.0\.0\.0\/7/],
      [{ ...base, account: unique("elsewhere") }, /manages only account/],
    ];
    const count = async () => (await api.admin("GET", `/keys?account=${account}&limit=100`)).json.items.length;
    const n = await count();
    for (const [body, why] of refusedCreates) {
      const res = await as(scoped.key, "POST", "/keys", body);
      expectError(assert, res, 403, "forbidden");
      assert.match(res.json.error, why);
    }
    assert.equal(await count(), n, "a refused create wrote nothing");
    const ok = await as(scoped.key, "POST", "/keys", base);
    assert.equal(ok.status, 201, ok.text);

    const before = stable((await api.admin("GET", `/keys/${ok.json.id}`)).json);
    for (const patch of [{ projects: [] }, { projects: ["p1", "p3"] }, { expires_at: null }, { ip_allowlist: [] }, { permissions: ["license:manage"] }, { expires_in_days: 365 }]) {
      expectError(assert, await as(scoped.key, "PATCH", `/keys/${ok.json.id}`, patch), 403, "forbidden");
    }
    assert.deepEqual(stable((await api.admin("GET", `/keys/${ok.json.id}`)).json), before);
    assert.equal((await as(scoped.key, "PATCH", `/keys/${ok.json.id}`, { name: "fine" })).status, 200);
  });

  test("another account's admin key sees nothing of this one, and no admin key changes plans", async () => {
    const other = await api.createKey({ account: unique("other"), permissions: ["admin"] });
    const t = await targets.within();
    for (const [method, path] of [["GET", `/keys/${t.id}`], ["POST", `/keys/${t.id}/revoke`], ["DELETE", `/keys/${t.id}`], ["GET", `/keys/${t.id}/logs`], ["GET", `/accounts/${account}`]]) {
      expectError(assert, await api.admin(method, path, undefined, other.key), 404, "not_found");
    }
    expectError(assert, await api.admin("GET", `/events?account=${account}`, undefined, other.key), 403, "forbidden");
    expectError(assert, await api.admin("GET", `/keys?account=${account}`, undefined, other.key), 403, "forbidden");
    const mine = (await api.admin("GET", "/events", undefined, other.key)).json.items;
    assert.ok(mine.every((e) => e.account === other.account));
    expectError(assert, await as(scoped.key, "PUT", `/accounts/${account}`, { plan: "business" }), 403, "forbidden");
    assert.equal((await as(scoped.key, "GET", `/accounts/${account}`)).status, 200);
    assert.equal((await api.admin("GET", `/accounts/${account}`)).json.plan, "pro");
  });

  test("the admin key's own limits apply to it: outside its allowlist it is refused", async () => {
    const res = await api.call("GET", "/admin/v1/keys", { key: scoped.key, headers: { "cf-connecting-ip": "192.0.2.1" } });
    expectError(assert, res, 403, "ip_not_allowed");
  });
});

describe("copies converge", () => {
  test("registry copies (status, category, alias) agree with the key after concurrent PATCHes", async () => {
    const account = unique("converge");
    const k = await api.createKey({ account, alias: "a0", category: "c0" });
    for (let round = 0; round < 3; round++) {
      const patches = [];
      for (let i = 0; i < 12; i++) {
        const body = i % 3 === 0 ? { alias: `a${round}-${i}` } : { category: `c${round}-${i}`, name: `n${i}` };
        patches.push(api.admin("PATCH", `/keys/${k.id}`, body));
        if (i % 4 === 0) patches.push(api.admin("POST", `/keys/${k.id}/${i % 8 === 0 ? "deactivate" : "activate"}`));
      }
      for (const res of await Promise.all(patches)) assert.equal(res.status, 200, res.text);
    }
    const truth = (await api.admin("GET", `/keys/${k.id}`)).json;
    const ids = async (q) => (await api.admin("GET", `/keys?account=${account}&${q}`)).json.items.map((x) => x.id);
    await eventually(async () => {
      assert.deepEqual(await ids(`category=${truth.category}`), [k.id]);
      assert.deepEqual(await ids(`status=${truth.status}`), [k.id]);
      assert.deepEqual(await ids(`status=${truth.status === "active" ? "inactive" : "active"}`), []);
    });
    // The final alias is taken; every other alias tried is free again.
    expectError(assert, await api.admin("POST", "/keys", { account, name: "dup", alias: truth.alias }), 409, "conflict");
    const freed = truth.alias === "a0-0" ? "a1-0" : "a0-0";
    assert.equal((await api.admin("POST", "/keys", { account, name: "reuse", alias: freed })).status, 201);
  });
});

describe("copies that fail are repaired, never lost", () => {
  let kw2, api2;
  before(async () => {
    kw2 = await startKeyward({ originUrl: origin.url, vars: { TEST_FAIL_INLINE_COPIES: "true" } });
    api2 = client(kw2.base);
  });
  after(async () => kw2?.stop());

  test("rotate answers with the new secret although every copy failed, and the outbox repairs them", async () => {
    const account = unique("repair");
    const k = await api2.createKey({ account });
    const rotated = await api2.admin("POST", `/keys/${k.id}/rotate`);
    assert.equal(rotated.status, 200, rotated.text);
    assert.match(rotated.json.key, /^kw_dev_/);
    assert.equal((await api2.call("GET", "/x", { key: rotated.json.key })).status, 200, "the new secret works at once");
    expectError(assert, await api2.call("GET", "/x", { key: k.key }), 401, "invalid_key");
    // The registry's row and the audit trail were written by the key's outbox.
    await eventually(async () => {
      const listed = await api2.admin("GET", `/keys?account=${account}`);
      assert.deepEqual(listed.json.items.map((x) => x.id), [k.id]);
      const actions = (await api2.admin("GET", `/events?key_id=${k.id}`)).json.items.map((e) => e.action);
      assert.deepEqual(actions, ["key.rotated", "key.created"]);
    }, 15_000);
    assert.equal((await api2.admin("POST", `/keys/${k.id}/deactivate`)).status, 200);
    await eventually(async () => {
      const inactive = await api2.admin("GET", `/keys?account=${account}&status=inactive`);
      assert.deepEqual(inactive.json.items.map((x) => x.id), [k.id]);
    }, 15_000);
  });
});
