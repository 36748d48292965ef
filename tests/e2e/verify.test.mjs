// POST /admin/v1/verify (issue 9 §1): the gate's rows 2–15 for a service that is not
// behind the gate, through the same code — every row, the same counters, the log
// row marked `verify`, failed attempts counted for `ip`, verifiers confined to their
// own account.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { eventually, expectError, settledUsage, useKeyward } from "./harness.mjs";

let origin, kw, api;
let seq = 0;
const unique = (label) => `${label}-${Date.now().toString(36)}-${seq++}`;

const PLANS = {
  pro: { api_access: true, rate_limits: { per_minute: 500 } },
  capped: { api_access: true, account_limits: { per_minute: 2 } },
  free: { api_access: false },
};

const setup = useKeyward({
  PLANS: JSON.stringify(PLANS),
  IP_BLOCK_THRESHOLD: "3",
  IP_BLOCK_WINDOW_SECONDS: "30",
  IP_BLOCK_COOLDOWN_SECONDS: "30",
  BREAKER_WINDOW_SECONDS: "10",
  BREAKER_HISTORY_SECONDS: "60",
  BREAKER_FLOOR: "6",
  BREAKER_COOLDOWN_SECONDS: "30",
  ROUTE_PERMISSIONS: JSON.stringify([{ method: "POST", path: "/licenses/**", permission: "license:manage" }]),
  ROUTE_COSTS: JSON.stringify([{ path: "/reports/**", cost: 2 }]),
});
before(async () => ({ origin, server: kw, api } = await setup.ready));

const verify = (body, token) => api.admin("POST", "/verify", body, token);

/** Asserts a `valid: false` answer in the gate's words. */
async function refused(body, code, message, token) {
  const res = await verify(body, token);
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.valid, false, res.text);
  assert.equal(res.json.code, code, res.text);
  if (message) assert.equal(res.json.error, message);
  return res.json;
}

describe("every row of the check table, as the gate answers it", () => {
  test("a valid key: its identity, metadata and limit state", async () => {
    const account = unique("ok");
    const k = await api.createKey({ account, permissions: ["write:all"], projects: ["p1"], metadata: { tier: "gold" }, rate_limits: { per_minute: 10 } });
    const res = await verify({ key: k.key, method: "POST", path: "/projects/p1/things" });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(
      { ...res.json, limit: undefined },
      { valid: true, key_id: k.id, account, environment: "development", permissions: ["write:all"], projects: ["p1"], metadata: { tier: "gold" }, limit: undefined },
    );
    assert.deepEqual([res.json.limit.name, res.json.limit.limit, res.json.limit.remaining], ["per_minute", 10, 9]);
  });

  test("rows 3 to 11", async () => {
    const account = unique("rows");
    const k = (body) => api.createKey({ account, ...body });
    await refused({ key: "nonsense" }, "invalid_key", "Invalid API Key");
    await refused({ key: "kw_dev_" + "A".repeat(33) }, "invalid_key");
    const revoked = await k({});
    await api.admin("POST", `/keys/${revoked.id}/revoke`);
    await refused({ key: revoked.key }, "key_revoked", "Revoked API Key");
    const inactive = await k({});
    await api.admin("POST", `/keys/${inactive.id}/deactivate`);
    await refused({ key: inactive.key }, "key_inactive", "Inactive API Key");
    const expired = await k({ expires_at: "2001-01-01T00:00:00Z" });
    await refused({ key: expired.key }, "key_expired", "Expired API Key");
    const production = await k({ environment: "production" });
    await refused({ key: production.key }, "wrong_environment", "API key not valid for this environment");
    const free = unique("free");
    const upgrade = await api.createKey({ account: free });
    await api.admin("PUT", `/accounts/${free}`, { plan: "free" });
    await refused({ key: upgrade.key }, "upgrade_required", "Upgrade required");
    const fenced = await k({ ip_allowlist: ["10.0.0.0/8"] });
    await refused({ key: fenced.key, ip: "192.0.2.1" }, "ip_not_allowed", "IP address not allowed for this key");
    assert.equal((await verify({ key: fenced.key, ip: "10.1.2.3" })).json.valid, true);
    const reader = await k({ projects: ["p1"] });
    await refused({ key: reader.key, method: "DELETE" }, "insufficient_permissions", "Forbidden: missing permission 'write:all'");
    await refused({ key: reader.key, permission: "license:manage" }, "insufficient_permissions", "Forbidden: missing permission 'license:manage'");
    await refused({ key: reader.key, path: "/Projects/p2/x" }, "project_forbidden", "Forbidden: no access to project 'p2'");
    await refused({ key: reader.key, project: "p3" }, "project_forbidden", "Forbidden: no access to project 'p3'");
    // A path the gate would refuse is refused in the gate's words.
    const bad = await refused({ key: reader.key, path: "/projects%2Fp2/x" }, "invalid_request");
    assert.match(bad.error, /^invalid request path/);
  });

  test("rows 12 to 15, with Retry-After", async () => {
    const account = unique("limits");
    const burst = await api.createKey({ account });
    const answers = [];
    for (let i = 0; i < 7; i++) answers.push((await verify({ key: burst.key })).json);
    assert.deepEqual(answers.slice(0, 6).map((a) => a.valid), [true, true, true, true, true, true]);
    assert.equal(answers[6].code, "key_suspended");
    assert.ok(answers[6].retry_after >= 1);

    const rated = await api.createKey({ account, rate_limits: { per_minute: 1 } });
    assert.equal((await verify({ key: rated.key })).json.valid, true);
    const r13 = await refused({ key: rated.key }, "rate_limited", "Rate limit exceeded");
    assert.ok(r13.retry_after >= 1 && r13.retry_after <= 61);

    const quota = await api.createKey({ account, quotas: { total: 1 } });
    assert.equal((await verify({ key: quota.key })).json.valid, true);
    const r14 = await refused({ key: quota.key }, "quota_exceeded", "Rate limit exceeded: quota total");
    assert.equal(r14.retry_after, null, "a total quota never frees up");

    const capped = unique("capped");
    await api.admin("PUT", `/accounts/${capped}`, { plan: "capped" });
    const a = await api.createKey({ account: capped });
    const b = await api.createKey({ account: capped });
    assert.equal((await verify({ key: a.key })).json.valid, true);
    assert.equal((await verify({ key: b.key })).json.valid, true);
    const r15 = await refused({ key: a.key }, "plan_rate_limited", "exceeded the per-minute rate limit on your subscription");
    assert.ok(r15.retry_after >= 1);
  });

  test("row 2: failed attempts are counted for `ip`, which is then blocked", async () => {
    for (let i = 0; i < 3; i++) await refused({ key: `kw_dev_guess${i}`, ip: "198.51.100.77" }, "invalid_key");
    const k = await api.createKey({ account: unique("blocked") });
    const blocked = await refused({ key: k.key, ip: "198.51.100.77" }, "ip_blocked", "IP temporarily blocked");
    assert.ok(blocked.retry_after >= 1);
    // The same address is blocked at the gate too: one counter.
    expectError(assert, await api.call("GET", "/x", { key: k.key, headers: { "cf-connecting-ip": "198.51.100.77" } }), 403, "ip_blocked");
    assert.equal((await verify({ key: k.key, ip: "198.51.100.78" })).json.valid, true);
  });
});

describe("the same counters and log as the gate", () => {
  test("credits are consumed exactly like a forwarded request, and the log row says verify", async () => {
    const k = await api.createKey({ account: unique("credits"), permissions: ["write:all"], rate_limits: { per_minute: 5 } });
    const first = await verify({ key: k.key, path: "/reports/q1" }); // cost 2 (ROUTE_COSTS)
    assert.equal(first.json.limit.remaining, 3);
    assert.equal((await api.call("GET", "/reports/q2", { key: k.key })).status, 200); // 2 more, at the gate
    assert.equal((await verify({ key: k.key, cost: 1 })).json.limit.remaining, 0);
    await refused({ key: k.key }, "rate_limited");
    await eventually(async () => assert.equal((await api.admin("GET", `/keys/${k.id}`)).json.usage_count, 3));
    const got = (await api.admin("GET", `/keys/${k.id}`)).json;
    const perMinute = got.limits.find((l) => l.name === "per_minute");
    assert.deepEqual([perMinute.used, perMinute.remaining], [5, 0]);
    const usage = (await api.admin("GET", `/keys/${k.id}/usage`)).json.items.at(-1);
    assert.deepEqual([usage.requests, usage.credits], [3, 5]);
    await eventually(async () => {
      const logs = (await api.admin("GET", `/keys/${k.id}/logs`)).json.items;
      assert.deepEqual(
        logs.map((l) => [l.via, l.path, l.status, l.credits]).reverse(),
        [["verify", "/reports/q1", 200, 2], ["gate", "/reports/q2", 200, 2], ["verify", "/", 200, 1], ["verify", "/", 429, 0]],
      );
    });
  });
});

describe("who may verify", () => {
  test("a key holding verify checks keys of its own account only; it can do nothing else", async () => {
    const mine = unique("mine");
    const verifier = await api.createKey({ account: mine, permissions: ["verify"] });
    const own = await api.createKey({ account: mine });
    const foreign = await api.createKey({ account: unique("theirs") });
    assert.equal((await verify({ key: own.key }, verifier.key)).json.valid, true);
    // Another account's key is unknown to it, and nothing of that key is spent.
    await refused({ key: foreign.key }, "invalid_key", "Invalid API Key", verifier.key);
    assert.equal(await settledUsage(api, foreign.id), 0);
    expectError(assert, await api.admin("GET", "/keys", undefined, verifier.key), 403, "insufficient_permissions", "Forbidden: missing permission 'admin'");
    // admin includes verify; write:all does not.
    const admin = await api.createKey({ account: mine, permissions: ["admin"] });
    assert.equal((await verify({ key: own.key }, admin.key)).json.valid, true);
    await refused({ key: foreign.key }, "invalid_key", undefined, admin.key);
    const writer = await api.createKey({ account: mine, permissions: ["write:all"] });
    expectError(assert, await verify({ key: own.key }, writer.key), 403, "insufficient_permissions", "Forbidden: missing permission 'verify'");
    expectError(assert, await verify({ key: own.key }, "not-the-token"), 401, "invalid_key");
    // An admin key grants verify (admin includes it), and nothing it lacks.
    expectError(assert, await api.admin("POST", "/keys", { name: "v", permissions: ["verify", "license:manage"] }, admin.key), 403, "forbidden");
    assert.equal((await api.admin("POST", "/keys", { name: "v", permissions: ["verify"] }, admin.key)).status, 201);
  });

  test("bad input is named, and never half-checked", async () => {
    const k = await api.createKey({ account: unique("input") });
    const cases = [
      [{}, "key"], [{ key: "" }, "key"], [{ key: 5 }, "key"], [{ key: "x".repeat(513) }, "key"],
      [{ key: k.key, method: "GE T" }, "method"], [{ key: k.key, permission: "Admin" }, "permission"],
      [{ key: k.key, project: "p/1" }, "project"], [{ key: k.key, cost: 0 }, "cost"], [{ key: k.key, cost: 1.5 }, "cost"],
      [{ key: k.key, ip: "10.0.0.300" }, "ip"], [{ key: k.key, path: 7 }, "path"], [{ key: k.key, secret: "x" }, "secret"],
    ];
    for (const [body, field] of cases) {
      const res = await verify(body);
      expectError(assert, res, 400, "invalid_request");
      assert.equal(res.json.field, field, JSON.stringify(body));
    }
    expectError(assert, await verify("[1]"), 400, "invalid_request");
    assert.equal(await settledUsage(api, k.id), 0, "nothing was counted");
  });
});
