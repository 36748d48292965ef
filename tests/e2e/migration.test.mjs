// Local state made by the build before the index and audit trail moved into the
// account objects (tests/fixtures/make-v2-state.mjs: one global Registry object)
// keeps working with this build: the directory copies the registry into the
// account objects on the first management request, once.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { ROOT, client, expectError, startKeyward, startOrigin, tempDir } from "./harness.mjs";

const fixture = JSON.parse(fs.readFileSync(path.join(ROOT, "tests/fixtures/v2-state.json"), "utf8"));
const { a_live, a_revoked, a_deleted, b_live, b_second } = fixture.keys;
let origin, kw, api;

before(async () => {
  origin = await startOrigin();
  const persistDir = tempDir("migrated");
  execFileSync("tar", ["-xzf", path.join(ROOT, "tests/fixtures/v2-state.tar.gz"), "-C", persistDir]);
  kw = await startKeyward({ originUrl: origin.url, persistDir });
  api = client(kw.base);
});
after(async () => {
  await kw?.stop();
  await origin?.stop();
});

test("old keys pass the gate before any management request", async () => {
  assert.equal((await api.call("GET", "/things", { key: a_live.key })).status, 200);
  assert.equal((await api.call("GET", "/things", { key: b_live.key })).status, 200);
  expectError(assert, await api.call("GET", "/things", { key: a_revoked.key }), 401, "key_revoked");
  expectError(assert, await api.call("GET", "/things", { key: a_deleted.key }), 401, "invalid_key");
});

test("the first management requests, arriving together, wait for the copy: none refused", async () => {
  const all = await Promise.all(Array.from({ length: 16 }, () => api.admin("GET", "/keys?account=mig-a")));
  assert.deepEqual(all.map((r) => r.status), Array(16).fill(200));
  for (const r of all) assert.deepEqual(r.json.items.map((k) => k.id), [a_revoked.id, a_live.id]);
});

test("each account lists its own old keys, with filters and search", async () => {
  const ids = async (q) => (await api.admin("GET", `/keys${q}`)).json.items.map((k) => k.id);
  assert.deepEqual(await ids("?account=mig-a"), [a_revoked.id, a_live.id]);
  assert.deepEqual(await ids("?account=mig-b"), [b_second.id, b_live.id]);
  assert.deepEqual(await ids("?account=mig-a&status=revoked"), [a_revoked.id]);
  assert.deepEqual(await ids("?account=mig-b&category=reporting"), [b_second.id]);
  assert.deepEqual(await ids("?account=mig-b&search=RENAMED"), [b_second.id]);
  // Across accounts, as before the move: every key, newest first.
  assert.deepEqual(await ids(""), fixture.listed);
});

test("aliases stay unique per account after the move", async () => {
  for (const account of ["mig-a", "mig-b"]) {
    const res = await api.admin("POST", "/keys", { account, name: "dup", alias: "billing" });
    expectError(assert, res, 409, "conflict", `alias 'billing' is already used in account '${account}'`);
  }
  assert.equal((await api.admin("POST", "/keys", { account: "mig-c", name: "n", alias: "billing" })).status, 201);
});

test("the old audit trail is in each account, newest first, copied once", async () => {
  const a = (await api.admin("GET", "/events?account=mig-a&limit=100")).json.items;
  const old = (items, account) =>
    fixture.events.filter((e) => e.account === account).map((e) => [e.action, e.key_id]);
  const shown = (items) => items.map((e) => [e.action, e.key_id]);
  assert.deepEqual(shown(a), old(fixture.events, "mig-a"));
  const b = (await api.admin("GET", "/events?account=mig-b&limit=100")).json.items;
  assert.deepEqual(shown(b), old(fixture.events, "mig-b"));
  // Across accounts the old events and the one new account's come back merged.
  const all = (await api.admin("GET", "/events?limit=100")).json.items;
  assert.deepEqual(shown(all.filter((e) => e.account !== "mig-c")), shown(fixture.events));
  // A restart asks the directory again: nothing is copied twice.
  await kw.stop();
  kw = await startKeyward({ originUrl: origin.url, persistDir: kw.persistDir });
  api = client(kw.base);
  const again = (await api.admin("GET", "/events?account=mig-a&limit=100")).json.items;
  assert.deepEqual(shown(again), old(fixture.events, "mig-a"));
});

test("the old plan holds, and old keys take a new plan like new ones", async () => {
  assert.equal((await api.admin("GET", "/accounts/mig-a")).json.plan, "business");
  assert.equal((await api.admin("PUT", "/accounts/mig-a", { plan: "free" })).status, 200);
  expectError(assert, await api.call("GET", "/things", { key: a_live.key }), 403, "upgrade_required");
  const view = (await api.admin("GET", "/accounts/mig-a")).json;
  assert.equal(view.keys_total, 2);
});
