// Issue 9 §4, alerts before trouble: key.expiring (once per EXPIRY_NOTICE_DAYS
// threshold) and key.expired from the key object's alarm; key.quota_threshold once
// per crossing of QUOTA_ALERT_PERCENTS; key.rate_limited at most once per window.
// Each in the audit trail and as a Standard Webhook, verified by the official
// `standardwebhooks` package; short windows and exact counts.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Webhook } from "standardwebhooks";
import { client, eventually, expectError, startKeyward, startOrigin, startReceiver, stays } from "./harness.mjs";

const SECRET = "whsec_" + Buffer.alloc(32, 9).toString("base64");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let origin, kw, api, receiver;

before(async () => {
  origin = await startOrigin();
  receiver = await startReceiver();
  kw = await startKeyward({
    originUrl: origin.url,
    vars: {
      WEBHOOK_URL: receiver.url,
      WEBHOOK_SECRET: SECRET,
      BREAKER_ENABLED: "false",
      // 0.0001 and 0.00005 days: 8.64 s and 4.32 s before a key expires.
      EXPIRY_NOTICE_DAYS: "0.0001,0.00005",
    },
  });
  api = client(kw.base);
});
after(async () => {
  await kw?.stop();
  receiver?.close();
  await origin?.stop();
});

/** The audit events of one key, oldest first. */
async function events(keyId, action) {
  const q = `/events?key_id=${keyId}${action ? `&action=${action}` : ""}&limit=100`;
  return (await api.admin("GET", q)).json.items.reverse();
}

/** Verified webhook bodies about one key, in delivery order. */
function hooks(keyId, type) {
  return receiver.received
    .map((r) => new Webhook(SECRET).verify(r.body, r.headers))
    .filter((b) => b.data.key_id === keyId && (!type || b.type === type));
}

test("key.expiring once per threshold, then key.expired, from the key's alarm", async () => {
  const expiresAt = new Date(Date.now() + 11_000).toISOString();
  const k = await api.createKey({ account: "alerts", name: "expiring", expires_at: expiresAt });
  // Made inside both thresholds: one notice at once, for the nearer one.
  const late = await api.createKey({ account: "alerts", name: "late", expires_at: new Date(Date.now() + 3_000).toISOString() });
  const kinds = async (id) => (await events(id)).filter((e) => e.action !== "key.created");
  await eventually(async () => assert.equal((await kinds(k.id)).length, 3), 35_000);
  await stays(async () => assert.equal((await kinds(k.id)).length, 3, "nothing more comes"), 2_000);
  const seen = await kinds(k.id);
  assert.deepEqual(seen.map((e) => e.action), ["key.expiring", "key.expiring", "key.expired"]);
  assert.deepEqual(seen.slice(0, 2).map((e) => e.details.notice_days), [0.0001, 0.00005]);
  assert.ok(seen.every((e) => e.actor === "keyward"));
  assert.equal(seen[2].details.expires_at, expiresAt.replace(/\.\d+Z$/, (m) => m));
  const lateSeen = await kinds(late.id);
  assert.deepEqual(lateSeen.map((e) => e.action), ["key.expiring", "key.expired"]);
  assert.equal(lateSeen[0].details.notice_days, 0.00005);
  // The same notices as webhooks, one each.
  await eventually(() => assert.equal(hooks(k.id).length, 3), 10_000);
  const delivered = hooks(k.id);
  assert.deepEqual(delivered.map((b) => b.type), ["key.expiring", "key.expiring", "key.expired"]);
  assert.equal(delivered[0].data.prefix, k.prefix);
  assert.equal(delivered[0].data.account, "alerts");
  assert.ok(delivered[0].data.seconds_left > 0 && delivered[0].data.seconds_left <= 9);
  expectError(assert, await api.call("GET", "/things", { key: k.key }), 401, "key_expired");
});

test("key.quota_threshold once per crossing of 80% and 100%, again after falling below", async () => {
  const k = await api.createKey({ account: "alerts", name: "quota", quotas: { daily: 10 } });
  const use = () => api.call("GET", "/things", { key: k.key });
  for (let i = 0; i < 7; i++) assert.equal((await use()).status, 200);
  assert.equal((await events(k.id, "key.quota_threshold")).length, 0);
  assert.equal((await use()).status, 200); // 8 of 10: 80%
  assert.equal((await use()).status, 200); // 9: nothing new
  assert.equal((await use()).status, 200); // 10: 100%
  expectError(assert, await use(), 429, "quota_exceeded");
  await eventually(async () => assert.equal((await events(k.id, "key.quota_threshold")).length, 2));
  let seen = await events(k.id, "key.quota_threshold");
  assert.deepEqual(
    seen.map((e) => [e.details.quota, e.details.percent, e.details.used, e.details.limit, e.details.window_seconds]),
    [["daily", 80, 8, 10, 86400], ["daily", 100, 10, 10, 86400]],
  );
  // The quota is raised: 11 of 20 is below both, so both are armed again.
  assert.equal((await api.admin("PATCH", `/keys/${k.id}`, { quotas: { daily: 20 } })).status, 200);
  for (let i = 0; i < 4; i++) assert.equal((await use()).status, 200); // 14 of 20
  assert.equal((await events(k.id, "key.quota_threshold")).length, 2);
  assert.equal((await use()).status, 200); // 15
  assert.equal((await use()).status, 200); // 16 of 20: 80% again
  await eventually(async () => assert.equal((await events(k.id, "key.quota_threshold")).length, 3));
  seen = await events(k.id, "key.quota_threshold");
  assert.deepEqual([seen[2].details.percent, seen[2].details.used, seen[2].details.limit], [80, 16, 20]);
  await eventually(() => assert.equal(hooks(k.id, "key.quota_threshold").length, 3), 10_000);
  assert.deepEqual(hooks(k.id, "key.quota_threshold").map((b) => b.data.percent), [80, 100, 80]);
});

test("key.rate_limited at most once per key per window", async () => {
  const k = await api.createKey({ account: "alerts", name: "limited", rate_limits: { per_second: 2 } });
  // Six at once, so they fall in one window of one second.
  const burst = async () =>
    (await Promise.all(Array.from({ length: 6 }, () => api.call("GET", "/things", { key: k.key })))).map((r) => r.status);
  const first = await burst();
  assert.ok(first.filter((s) => s === 429).length >= 3, String(first));
  await eventually(async () => assert.equal((await events(k.id, "key.rate_limited")).length, 1));
  await sleep(2_500); // past the window of the first refusal
  const second = await burst();
  assert.ok(second.filter((s) => s === 429).length >= 3, String(second));
  await eventually(async () => assert.equal((await events(k.id, "key.rate_limited")).length, 2));
  await stays(async () => assert.equal((await events(k.id, "key.rate_limited")).length, 2), 500);
  const seen = await events(k.id, "key.rate_limited");
  assert.equal(seen.length, 2, "one per window, not one per refusal");
  assert.equal(seen[0].details.limits[0].name, "per_second");
  assert.equal(seen[0].details.limits[0].limit, 2);
  assert.ok(seen[0].details.retry_after >= 1);
  await eventually(() => assert.equal(hooks(k.id, "key.rate_limited").length, 2), 10_000);
});

test("an admin key of another account sees none of these alerts", async () => {
  const other = await api.createKey({ account: "elsewhere", name: "admin", permissions: ["admin"] });
  const res = await api.admin("GET", "/events?action=key.quota_threshold", undefined, other.key);
  assert.equal(res.status, 200);
  assert.equal(res.json.items.length, 0);
  expectError(assert, await api.admin("GET", "/events?account=alerts", undefined, other.key), 403, "forbidden");
});
