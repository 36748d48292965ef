// Rows 2 and 12–15 over HTTP, request logs and the audit trail. Limits are exact:
// these tests count admissions to the request.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { eventually, expectError, useKeyward } from "./harness.mjs";

let origin, kw, api;
const PLANS = {
  free: { api_access: false },
  pro: { api_access: true, rate_limits: { per_minute: 500, per_day: 50000 } },
  open: { api_access: true },
  metered: { api_access: true, account_limits: { per_minute: 10 } },
  persec: { api_access: true, account_limits: { per_second: 3 } },
};

const setup = useKeyward({
  PLANS: JSON.stringify(PLANS),
  BREAKER_ENABLED: "false",
  IP_BLOCK_THRESHOLD: "3",
  IP_BLOCK_WINDOW_SECONDS: "30",
  IP_BLOCK_COOLDOWN_SECONDS: "2",
  ROUTE_COSTS: JSON.stringify([{ path: "/reports/**", cost: 5 }]),
});
before(async () => ({ origin, server: kw, api } = await setup.ready));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let seq = 0;
const fresh = (label) => `${label}-${Date.now().toString(36)}-${seq++}`;
const use = (key, path = "/things", headers = {}) => api.call("GET", path, { key, headers });
const retryAfter = (res) => Number(res.headers.get("retry-after"));

async function openKey(body = {}) {
  const account = body.account ?? fresh("acct");
  await api.admin("PUT", `/accounts/${account}`, { plan: body.plan ?? "open" });
  const { plan, ...rest } = body;
  return api.createKey({ account, ...rest });
}

async function burst(key, n, path = "/things") {
  return Promise.all(Array.from({ length: n }, () => use(key, path)));
}


describe("row 13: per-key rate limits", () => {
  test("a per-minute limit L hit by 4·L concurrent requests admits exactly L", async () => {
    const L = 20;
    const figures = [];
    for (let run = 0; run < 3; run++) {
      const k = await openKey({ rate_limits: { per_minute: L } });
      const results = await burst(k.key, 4 * L);
      const admitted = results.filter((r) => r.status === 200);
      const refused = results.filter((r) => r.status !== 200);
      figures.push(admitted.length);
      assert.equal(admitted.length, L, `run ${run}`);
      for (const r of refused) {
        expectError(assert, r, 429, "rate_limited", "Rate limit exceeded");
        assert.ok(retryAfter(r) >= 1 && retryAfter(r) <= 61, `Retry-After ${retryAfter(r)}`);
      }
      for (const r of admitted) assert.match(r.headers.get("ratelimit"), /^"per_minute";r=\d+;t=\d+$/);
      await eventually(async () => assert.equal((await api.admin("GET", `/keys/${k.id}`)).json.usage_count, L));
    }
    console.log(`# concurrency: admitted ${figures.join(", ")} of ${4 * L} with per-minute limit ${L}`);
  });

  test("per second: exact, and frees up after the second", async () => {
    const k = await openKey({ rate_limits: { per_second: 3 } });
    const results = await burst(k.key, 12);
    assert.equal(results.filter((r) => r.status === 200).length, 3);
    const refused = results.find((r) => r.status === 429);
    expectError(assert, refused, 429, "rate_limited");
    // The oldest 100 ms bucket leaves within 1.1 s: rounded up, never early.
    assert.ok([1, 2].includes(retryAfter(refused)), `Retry-After ${retryAfter(refused)}`);
    await eventually(async () => assert.equal((await use(k.key)).status, 200), 3000);
  });

  test("per day: Retry-After is when the oldest request leaves the 24 h window", async () => {
    const k = await openKey({ rate_limits: { per_day: 2 } });
    assert.equal((await use(k.key)).status, 200);
    assert.equal((await use(k.key)).status, 200);
    const res = await use(k.key);
    expectError(assert, res, 429, "rate_limited");
    assert.ok(Math.abs(retryAfter(res) - 86_400) <= 60, `Retry-After ${retryAfter(res)}`);
  });

  test("limits are inherited from the plan, field by field, and shown in headers", async () => {
    const inherited = await openKey({ plan: "pro" });
    const res = await use(inherited.key);
    assert.equal(res.headers.get("ratelimit-policy"), '"per_minute";q=500;w=60');
    assert.equal(res.headers.get("ratelimit"), '"per_minute";r=499;t=60');
    const own = await openKey({ plan: "pro", rate_limits: { per_minute: 7 } });
    const res2 = await use(own.key);
    assert.equal(res2.headers.get("ratelimit-policy"), '"per_minute";q=7;w=60');
    assert.equal(res2.headers.get("ratelimit"), '"per_minute";r=6;t=60');
    const view = (await api.admin("GET", `/keys/${own.id}`)).json;
    const perDay = view.limits.find((l) => l.name === "per_day");
    assert.deepEqual([perDay.limit, perDay.used, perDay.remaining], [50000, 1, 49999]);
  });
});

describe("row 14: rolling quotas", () => {
  for (const [window, seconds, slack] of [["daily", 86_400, 60], ["weekly", 604_800, 600], ["monthly", 2_592_000, 3_600]]) {
    test(`${window}: exact count, exact Retry-After`, async () => {
      const k = await openKey({ quotas: { [window]: 3 } });
      for (let i = 0; i < 3; i++) assert.equal((await use(k.key)).status, 200);
      const res = await use(k.key);
      expectError(assert, res, 429, "quota_exceeded", `Rate limit exceeded: quota ${window}`);
      // The oldest request's bucket (1 min / 10 min / 1 h wide) leaves the window then.
      const ra = retryAfter(res);
      assert.ok(ra >= seconds - 5 && ra <= seconds + slack, `Retry-After ${ra}`);
    });
  }

  test("total: no Retry-After; quotas are counted in credits (route cost)", async () => {
    const k = await openKey({ quotas: { total: 10 } });
    assert.equal((await use(k.key, "/reports/q1")).status, 200);
    assert.equal((await use(k.key, "/reports/q2")).status, 200);
    const res = await use(k.key, "/things");
    expectError(assert, res, 429, "quota_exceeded", "Rate limit exceeded: quota total");
    assert.equal(res.headers.get("retry-after"), null);
    const logs = await eventually(async () => {
      const l = (await api.admin("GET", `/keys/${k.id}/logs`)).json.items;
      assert.equal(l.length, 3);
      return l;
    });
    assert.deepEqual(logs.map((l) => [l.status, l.credits]), [[429, 0], [200, 5], [200, 5]]);
  });
});

describe("row 15: account-wide plan limits", () => {
  test("per minute across all keys of the account, exact", async () => {
    const account = fresh("metered");
    await api.admin("PUT", `/accounts/${account}`, { plan: "metered" });
    const a = await api.createKey({ account });
    const b = await api.createKey({ account });
    const results = await Promise.all(Array.from({ length: 16 }, (_, i) => use(i % 2 ? a.key : b.key)));
    assert.equal(results.filter((r) => r.status === 200).length, 10);
    for (const r of results.filter((r) => r.status !== 200)) {
      expectError(assert, r, 429, "plan_rate_limited", "exceeded the per-minute rate limit on your subscription");
      assert.ok(retryAfter(r) >= 1 && retryAfter(r) <= 61);
    }
  });

  test("per second", async () => {
    const account = fresh("persec");
    await api.admin("PUT", `/accounts/${account}`, { plan: "persec" });
    const k = await api.createKey({ account });
    const results = await burst(k.key, 8);
    assert.equal(results.filter((r) => r.status === 200).length, 3);
    const r = results.find((r) => r.status === 429);
    expectError(assert, r, 429, "plan_rate_limited", "exceeded the per-second rate limit on your subscription");
    assert.ok([1, 2].includes(retryAfter(r)), `Retry-After ${retryAfter(r)}`);
  });

  test("a plan change reaches every key of the account on its next request", async () => {
    const account = fresh("upgrade");
    const k = await api.createKey({ account });
    await api.admin("PUT", `/accounts/${account}`, { plan: "free" });
    expectError(assert, await use(k.key), 403, "upgrade_required", "Upgrade required");
    await api.admin("PUT", `/accounts/${account}`, { plan: "open" });
    assert.equal((await use(k.key)).status, 200);
  });
});

describe("all-or-nothing admission", () => {
  test("a request the account refuses consumes nothing of the key's quota", async () => {
    const account = fresh("aon1");
    await api.admin("PUT", `/accounts/${account}`, { plan: "metered" });
    const k = await api.createKey({ account, quotas: { total: 100 } });
    const results = await burst(k.key, 14);
    assert.equal(results.filter((r) => r.status === 200).length, 10);
    await eventually(async () => {
      const view = (await api.admin("GET", `/keys/${k.id}`)).json;
      assert.equal(view.limits.find((l) => l.name === "total").used, 10);
      await eventually(async () => assert.equal((await api.admin("GET", `/keys/${k.id}`)).json.usage_count, 10));
    });
  });

  test("a request the key refuses consumes nothing of the account's limit", async () => {
    const account = fresh("aon2");
    await api.admin("PUT", `/accounts/${account}`, { plan: "metered" });
    const tight = await api.createKey({ account, rate_limits: { per_minute: 2 } });
    const other = await api.createKey({ account });
    assert.equal((await burst(tight.key, 6)).filter((r) => r.status === 200).length, 2);
    await sleep(300); // refunds land after the answers
    // 10 per minute for the account, 2 used: 8 left for the other key, exactly.
    const results = await burst(other.key, 12);
    assert.equal(results.filter((r) => r.status === 200).length, 8);
  });
});

describe("row 2: failed-attempt IP blocking", () => {
  test("N invalid keys block the address; valid keys from it too; it expires", async () => {
    const k = await openKey({});
    const from = (ip, key) => use(key, "/things", { "cf-connecting-ip": ip });
    const attacker = "198.51.100.7";
    for (let i = 0; i < 3; i++) expectError(assert, await from(attacker, `kw_dev_guess${i}`), 401, "invalid_key");
    const blocked = await from(attacker, "kw_dev_guess3");
    expectError(assert, blocked, 403, "ip_blocked", "IP temporarily blocked");
    assert.ok(retryAfter(blocked) >= 1 && retryAfter(blocked) <= 2);
    expectError(assert, await from(attacker, k.key), 403, "ip_blocked");
    assert.equal((await from("198.51.100.8", k.key)).status, 200, "other addresses are unaffected");
    await eventually(async () => assert.equal((await from(attacker, k.key)).status, 200, "the block expires"), 5000);
  });
});

describe("request logs", () => {
  test("each request is logged newest first; status, time and paging filters", async () => {
    const k = await openKey({ permissions: ["read:all"], rate_limits: { per_minute: 3 } });
    const t0 = new Date().toISOString();
    await use(k.key, "/a", { "cf-connecting-ip": "203.0.113.9" });
    await use(k.key, "/teapot");
    await api.call("POST", "/b", { key: k.key }); // 403: read-only
    await use(k.key, "/c");
    await use(k.key, "/d"); // 429
    const items = await eventually(async () => {
      const l = (await api.admin("GET", `/keys/${k.id}/logs`)).json.items;
      assert.equal(l.length, 5);
      return l;
    });
    assert.deepEqual(items.map((l) => `${l.method} ${l.path} ${l.status}`), ["GET /d 429", "GET /c 200", "POST /b 403", "GET /teapot 418", "GET /a 200"]);
    const first = items[4];
    assert.equal(first.ip, "203.0.113.9");
    assert.equal(first.credits, 1);
    assert.ok(first.duration_ms >= 0 && Date.parse(first.at) >= Date.parse(t0) - 1000);
    assert.equal(items[0].code, "rate_limited");
    assert.equal(items[2].code, "insufficient_permissions");
    const only = (q) => api.admin("GET", `/keys/${k.id}/logs?${q}`);
    assert.deepEqual((await only("status=429")).json.items.map((l) => l.path), ["/d"]);
    assert.deepEqual((await only("status=2xx")).json.items.map((l) => l.path), ["/c", "/a"]);
    assert.equal((await only(`to=${encodeURIComponent(t0)}`)).json.items.length, 0);
    const p1 = (await only("limit=2")).json;
    const p2 = (await only(`limit=2&cursor=${p1.cursor}`)).json;
    const p3 = (await only(`limit=2&cursor=${p2.cursor}`)).json;
    assert.deepEqual([...p1.items, ...p2.items, ...p3.items].map((l) => l.path), ["/d", "/c", "/b", "/teapot", "/a"]);
    assert.equal(p3.cursor, null);
    const bad = await only("status=teapot");
    expectError(assert, bad, 400, "invalid_request");
    assert.equal(bad.json.field, "status");
  });
});

describe("audit trail", () => {
  test("every management action, who did it, newest first, paged", async () => {
    const account = fresh("audit");
    await api.admin("PUT", `/accounts/${account}`, { plan: "open" });
    const admin = await api.createKey({ account, permissions: ["admin"] });
    const k = await api.createKey({ account }, admin.key);
    await api.admin("PATCH", `/keys/${k.id}`, { name: "renamed" });
    await api.admin("POST", `/keys/${k.id}/rotate`);
    await api.admin("POST", `/keys/${k.id}/deactivate`);
    await api.admin("POST", `/keys/${k.id}/activate`, undefined, admin.key);
    await api.admin("POST", `/keys/${k.id}/revoke`);
    const events = (await api.admin("GET", `/events?key_id=${k.id}`)).json.items;
    assert.deepEqual(events.map((e) => e.action), ["key.revoked", "key.activated", "key.deactivated", "key.rotated", "key.updated", "key.created"]);
    assert.equal(events[5].actor, `key:${admin.id}`);
    assert.equal(events[1].actor, `key:${admin.id}`);
    assert.equal(events[0].actor, "admin_token");
    assert.deepEqual(events[4].details.changes, { name: "renamed" });
    for (const e of events) assert.ok(Date.parse(e.at) > 0 && e.account === account && e.key_id === k.id);
    const plan = (await api.admin("GET", `/events?account=${account}&action=account.plan_changed`)).json.items;
    assert.equal(plan.length, 1);
    assert.equal(plan[0].details.to, "open");
    const p1 = (await api.admin("GET", `/events?key_id=${k.id}&limit=4`)).json;
    const p2 = (await api.admin("GET", `/events?key_id=${k.id}&limit=4&cursor=${p1.cursor}`)).json;
    assert.deepEqual([...p1.items, ...p2.items].map((e) => e.action), events.map((e) => e.action));
    // An admin key reads only its own account's trail.
    const mine = (await api.admin("GET", "/events", undefined, admin.key)).json.items;
    assert.ok(mine.length > 0 && mine.every((e) => e.account === account));
    expectError(assert, await api.admin("GET", "/events?account=someone-else", undefined, admin.key), 403, "forbidden");
  });
});
