// Keys and their state survive a restart of the dev server (local KV and Durable
// Objects persisted on disk).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { client, expectError, startKeyward, startOrigin, tempDir, eventually } from "./harness.mjs";

let origin;
before(async () => (origin = await startOrigin()));
after(async () => origin?.stop());

test("keys, usage, status and plans persist across a restart", async () => {
  const persistDir = tempDir("persist");
  let kw = await startKeyward({ originUrl: origin.url, persistDir });
  let api = client(kw.base);
  const live = await api.createKey({ account: "persist", alias: "live" });
  const off = await api.createKey({ account: "persist" });
  assert.equal((await api.call("GET", "/things", { key: live.key })).status, 200);
  await api.admin("POST", `/keys/${off.id}/deactivate`);
  await api.admin("PUT", "/accounts/persist", { plan: "business" });
  await kw.stop();

  kw = await startKeyward({ originUrl: origin.url, persistDir });
  api = client(kw.base);
  try {
    assert.equal((await api.call("GET", "/things", { key: live.key })).status, 200);
    expectError(assert, await api.call("GET", "/things", { key: off.key }), 401, "key_inactive");
    await eventually(async () => assert.equal((await api.admin("GET", `/keys/${live.id}`)).json.usage_count, 2));
    const view = (await api.admin("GET", `/keys/${live.id}`)).json;
    assert.equal(view.alias, "live");
    const listed = (await api.admin("GET", "/keys?account=persist")).json.items.map((k) => k.id);
    assert.deepEqual(listed.sort(), [live.id, off.id].sort());
    assert.equal((await api.admin("GET", "/accounts/persist")).json.plan, "business");
    expectError(assert, await api.admin("POST", "/keys", { account: "persist", name: "n", alias: "live" }), 409, "conflict");
  } finally {
    await kw.stop();
  }
});
