// Credentials where clients put them (issue 22 §4): KEY_HEADERS names headers that
// carry a key as-is beside `Authorization: Bearer`. Two different credentials are
// 400; a key in the query string is never read; the key headers, in every
// spelling a server folds into them, never reach the origin.
import assert from "node:assert/strict";
import { before, test } from "node:test";
import { ADMIN_TOKEN, expectError, useKeyward } from "./harness.mjs";

let origin, api;
const setup = useKeyward({ KEY_HEADERS: "X-API-Key, apikey" });
before(async () => ({ origin, api } = await setup.ready));

let seq = 0;
const unique = (label) => `${label}-${Date.now().toString(36)}-${seq++}`;
const get = (headers, path = "/things") => api.call("GET", path, { headers });

test("a key in a configured header is accepted, and that header never reaches the origin", async () => {
  const k = await api.createKey({ account: unique("kh") });
  for (const name of ["X-API-Key", "x-api-key", "apikey"]) {
    const res = await get({ [name]: k.key, "x_api_key": "not-for-the-origin", "X-Other": "kept" });
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
  const a = await api.createKey({ account: unique("kh-a") });
  const b = await api.createKey({ account: unique("kh-b") });
  const sent = origin.received().length;
  const both = await api.call("GET", "/things", { key: a.key, headers: { "x-api-key": b.key } });
  expectError(assert, both, 400, "invalid_request", "invalid header 'x-api-key': a second, different credential (authorization carries one)");
  const two = await get({ "x-api-key": a.key, apikey: b.key });
  expectError(assert, two, 400, "invalid_request", "invalid header 'apikey': a second, different credential (x-api-key carries one)");
  // Another Authorization scheme beside a key is a second credential too.
  const basic = await get({ authorization: "Basic dXNlcjpwdw==", "x-api-key": a.key });
  expectError(assert, basic, 400, "invalid_request");
  assert.equal(origin.received().length, sent, "a refused request reached the origin");
});

test("a key in the query string is never accepted", async () => {
  const k = await api.createKey({ account: unique("kh-q") });
  for (const q of [`api_key=${k.key}`, `apikey=${k.key}`, `x-api-key=${k.key}`, `key=${k.key}`]) {
    const res = await get({}, `/things?${q}`);
    expectError(assert, res, 401, "invalid_key", "Invalid API Key");
  }
  // A header that is not configured carries nothing.
  expectError(assert, await get({ "x-key": k.key }), 401, "invalid_key");
});

test("an admin key in a key header is confined as by Bearer; the bootstrap token is Bearer only", async () => {
  const account = unique("kh-admin");
  const admin = await api.createKey({ account, permissions: ["admin"] });
  const reader = await api.createKey({ account, permissions: ["read:all"] });
  const other = await api.createKey({ account: unique("kh-other"), permissions: ["admin"] });
  const target = await api.createKey({ account });
  const as = (key, path) => api.call("GET", `/admin/v1${path}`, { headers: { "x-api-key": key } });
  assert.equal((await as(admin.key, `/keys/${target.id}`)).status, 200);
  expectError(assert, await as(other.key, `/keys/${target.id}`), 404, "not_found");
  expectError(assert, await as(reader.key, `/keys/${target.id}`), 403, "insufficient_permissions");
  expectError(assert, await as(ADMIN_TOKEN, `/keys/${target.id}`), 401, "invalid_key");
  const mixed = await api.call("GET", `/admin/v1/keys/${target.id}`, { key: ADMIN_TOKEN, headers: { "x-api-key": other.key } });
  expectError(assert, mixed, 400, "invalid_request");
});
