// Issue 22 §1 and §5, billing. Credits: a key's or an account's prepaid balance,
// spent by each admitted request's route cost, all-or-nothing with the other
// limits (row 16, 402 credits_exhausted), refilled on a calendar, changed by
// POST …/credits once per Idempotency-Key, audited, and announced as credits.low
// (a Standard Webhook) when it falls to CREDIT_ALERT_PERCENTS of its last refill
// or set. Child keys (§2): held by their own limits and every ancestor's, all or
// nothing. Usage for billing (§5): GET /accounts/{id}/usage, exact from the keys'
// own usage, and usage.reported per account and period (hours of HOUR_S seconds
// here, TEST_USAGE_HOUR_SECONDS).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Webhook } from "standardwebhooks";
import { client, eventually, expectError, startKeyward, startOrigin, startReceiver, stays } from "./harness.mjs";

const SECRET = "whsec_" + Buffer.alloc(32, 7).toString("base64");
const HOUR_S = 2;
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
      CREDIT_ALERT_PERCENTS: "50",
      // An origin's 5xx is not charged: its credits come back.
      CHARGE_ON: "success",
      ROUTE_COSTS: JSON.stringify([{ method: "POST", path: "/reports", cost: 3 }]),
      // Usage reports every "hour", an hour lasting HOUR_S seconds here; a period
      // is reported once its slowest request has settled (ORIGIN_TIMEOUT_SECONDS).
      USAGE_REPORT_INTERVAL: "hour",
      USAGE_REPORT_EVENT_NAME: "keyward_credits",
      TEST_USAGE_HOUR_SECONDS: String(HOUR_S),
      ORIGIN_TIMEOUT_SECONDS: "1",
    },
  });
  api = client(kw.base);
});
after(async () => {
  await kw?.stop();
  receiver?.close();
  await origin?.stop();
});

let seq = 0;
const unique = (label) => `${label}-${Date.now().toString(36)}-${seq++}`;
const use = (key, path = "/things", method = "GET") => api.call(method, path, { key });
const remaining = async (id) => (await api.admin("GET", `/keys/${id}`)).json.credits?.remaining;
const events = async (id, action) =>
  (await api.admin("GET", `/events?key_id=${id}&action=${action}&limit=100`)).json.items;
const hooks = (type, pick) =>
  receiver.received.map((r) => new Webhook(SECRET).verify(r.body, r.headers)).filter((b) => b.type === type && pick(b.data));
const change = (path, body, idempotencyKey, token) =>
  api.call("POST", `/admin/v1${path}`, {
    key: token ?? "e2e-admin-token",
    body,
    headers: idempotencyKey ? { "idempotency-key": idempotencyKey } : {},
  });

/** The next UTC midnight after now, and the next `day` of a month (or its last day). */
function nextMidnight(now = new Date()) {
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1));
}
function nextMonthly(day, now = new Date()) {
  const on = (y, m) => new Date(Date.UTC(y, m, Math.min(day, new Date(Date.UTC(y, m + 1, 0)).getUTCDate())));
  const here = on(now.getUTCFullYear(), now.getUTCMonth());
  return here > now ? here : on(now.getUTCFullYear(), now.getUTCMonth() + 1);
}

describe("a key's credits", () => {
  test("each admitted request spends its route cost; the request that cannot pay is 402, nothing spent", async () => {
    const k = await api.createKey({ account: unique("cr"), credits: { remaining: 5 }, permissions: ["write:all"] });
    assert.deepEqual(k.credits, { remaining: 5, refill: null, next_refill_at: null });
    assert.equal((await use(k.key)).status, 200);
    assert.equal((await use(k.key, "/reports", "POST")).status, 200); // cost 3
    assert.equal(await remaining(k.id), 1);
    const refused = await use(k.key, "/reports", "POST");
    expectError(assert, refused, 402, "credits_exhausted", "Credits exhausted");
    assert.equal(refused.headers.get("retry-after"), null, "no refill is due");
    assert.equal(await remaining(k.id), 1, "a refused request spends nothing");
    assert.equal((await use(k.key)).status, 200, "a cost of 1 still fits");
    expectError(assert, await use(k.key), 402, "credits_exhausted", "Credits exhausted");
    const logs = (await api.admin("GET", `/keys/${k.id}/logs?limit=10`)).json.items;
    assert.equal(logs.filter((l) => l.code === "credits_exhausted").length, 2);
  });

  test("a request refused by another row, or not charged, spends nothing", async () => {
    const k = await api.createKey({ account: unique("cr"), credits: { remaining: 10 }, rate_limits: { per_minute: 2 } });
    assert.equal((await use(k.key)).status, 200);
    assert.equal((await use(k.key)).status, 200);
    expectError(assert, await use(k.key), 429, "rate_limited");
    assert.equal(await remaining(k.id), 8);
    const failing = await api.createKey({ account: unique("cr"), credits: { remaining: 10 } });
    assert.equal((await use(failing.key, "/status/503")).status, 503); // answered, not charged
    await eventually(async () => assert.equal(await remaining(failing.id), 10), 10_000);
  });

  test("a refill sets the balance on its calendar; the 402 says when", async () => {
    const daily = await api.createKey({
      account: unique("cr"),
      credits: { remaining: 1, refill: { amount: 50, interval: "day" } },
    });
    assert.equal(daily.credits.next_refill_at, nextMidnight().toISOString());
    assert.equal((await use(daily.key)).status, 200);
    const refused = await use(daily.key);
    expectError(assert, refused, 402, "credits_exhausted");
    const wait = Number(refused.headers.get("retry-after"));
    const expected = Math.ceil((nextMidnight() - Date.now()) / 1000);
    assert.ok(Math.abs(wait - expected) <= 2, `Retry-After ${wait}, expected about ${expected}`);
    const monthly = await api.createKey({
      account: unique("cr"),
      credits: { remaining: 9, refill: { amount: 9, interval: "month", day: 31 } },
    });
    assert.equal(monthly.credits.next_refill_at, nextMonthly(31).toISOString());
    assert.deepEqual(monthly.credits.refill, { amount: 9, interval: "month", day: 31 });
  });

  test("PATCH replaces the balance, and null removes it", async () => {
    const k = await api.createKey({ account: unique("cr"), credits: { remaining: 0 } });
    expectError(assert, await use(k.key), 402, "credits_exhausted");
    const patched = await api.admin("PATCH", `/keys/${k.id}`, { credits: { remaining: 2 } });
    assert.equal(patched.status, 200, patched.text);
    assert.equal(patched.json.credits.remaining, 2);
    assert.equal((await use(k.key)).status, 200);
    assert.equal((await api.admin("PATCH", `/keys/${k.id}`, { credits: null })).json.credits, null);
    for (let i = 0; i < 3; i++) assert.equal((await use(k.key)).status, 200);
  });
});

describe("POST /keys/{id}/credits", () => {
  test("increment, decrement and set; one Idempotency-Key applies once and answers the same", async () => {
    const k = await api.createKey({ account: unique("cr"), credits: { remaining: 4 } });
    const first = await change(`/keys/${k.id}/credits`, { op: "increment", amount: 6 }, "retry-1");
    assert.equal(first.status, 200, first.text);
    assert.deepEqual(first.json, { id: k.id, credits: { remaining: 10, refill: null, next_refill_at: null } });
    const again = await change(`/keys/${k.id}/credits`, { op: "increment", amount: 6 }, "retry-1");
    assert.equal(again.status, 200);
    assert.deepEqual(again.json, first.json);
    assert.equal(await remaining(k.id), 10, "applied once");
    expectError(assert, await change(`/keys/${k.id}/credits`, { op: "set", amount: 1 }, "retry-1"), 409, "conflict");
    assert.equal((await change(`/keys/${k.id}/credits`, { op: "decrement", amount: 3 })).json.credits.remaining, 7);
    assert.equal((await change(`/keys/${k.id}/credits`, { op: "decrement", amount: 99 })).json.credits.remaining, 0);
    expectError(assert, await use(k.key), 402, "credits_exhausted");
    assert.equal((await change(`/keys/${k.id}/credits`, { op: "set", amount: 1 })).json.credits.remaining, 1);
    assert.equal((await use(k.key)).status, 200, "the change bites on the next request");
    const trail = await events(k.id, "key.credits_changed");
    assert.equal(trail.length, 4, "the replay is not audited again");
    assert.deepEqual(
      trail.reverse().map((e) => [e.details.op, e.details.amount, e.details.before, e.details.after]),
      [["increment", 6, 4, 10], ["decrement", 3, 10, 7], ["decrement", 99, 7, 0], ["set", 1, 0, 1]],
    );
    // A key without credits gets a balance from increment or set, not decrement.
    const plain = await api.createKey({ account: unique("cr") });
    assert.equal(plain.credits, null);
    expectError(assert, await change(`/keys/${plain.id}/credits`, { op: "decrement", amount: 1 }), 409, "conflict");
    assert.equal((await change(`/keys/${plain.id}/credits`, { op: "set", amount: 1 })).json.credits.remaining, 1);
  });

  test("hostile input is named and changes nothing", async () => {
    const k = await api.createKey({ account: unique("cr"), credits: { remaining: 4 } });
    const bad = async (body, field, key) => {
      const r = await change(`/keys/${k.id}/credits`, body, key);
      expectError(assert, r, 400, "invalid_request");
      assert.equal(r.json.field, field, r.text);
    };
    await bad({ op: "add", amount: 1 }, "op");
    await bad({ op: "increment", amount: 0 }, "amount");
    await bad({ op: "increment", amount: -5 }, "amount");
    await bad({ op: "set", amount: "5" }, "amount");
    await bad({ op: "set", amount: 1.5 }, "amount");
    await bad({ op: "set", amount: 9007199254740992 }, "amount");
    await bad({ op: "set", amount: 1, extra: true }, "extra");
    await bad({ op: "set", amount: 1 }, "Idempotency-Key", "has space");
    await bad({ op: "set", amount: 1 }, "Idempotency-Key", "x".repeat(256));
    expectError(assert, await change(`/keys/${k.id}/credits`, [1]), 400, "invalid_request");
    expectError(assert, await change(`/keys/${k.id}/credits`, "{"), 400, "invalid_request");
    const overflow = await change(`/keys/${k.id}/credits`, { op: "increment", amount: 9007199254740991 });
    expectError(assert, overflow, 409, "conflict");
    expectError(assert, await change(`/keys/key_nope/credits`, { op: "set", amount: 1 }), 404, "not_found");
    for (const credits of [{ remaining: -1 }, { remaining: 1, refill: { amount: 1, interval: "week" } }, { remaining: 1, refill: { amount: 1, interval: "day", day: 2 } }, { remaining: 1, refill: { amount: 1, interval: "month", day: 0 } }, "lots"]) {
      const r = await api.admin("POST", "/keys", { account: "acme", name: "x", credits });
      expectError(assert, r, 400, "invalid_request");
      assert.match(r.json.field, /^credits/);
    }
    assert.equal(await remaining(k.id), 4);
  });

  test("confinement: another account's admin key finds no key; one holding fewer credits cannot grant more", async () => {
    const account = unique("cr-admin");
    const k = await api.createKey({ account, credits: { remaining: 4 } });
    const other = await api.createKey({ account: unique("cr-other"), permissions: ["admin"] });
    expectError(assert, await change(`/keys/${k.id}/credits`, { op: "set", amount: 1 }, undefined, other.key), 404, "not_found");
    // Its own management calls are requests of the key too: each spends 1.
    const poor = await api.createKey({ account, permissions: ["admin"], credits: { remaining: 100 } });
    expectError(assert, await change(`/keys/${k.id}/credits`, { op: "set", amount: 101 }, undefined, poor.key), 403, "forbidden");
    assert.equal((await change(`/keys/${k.id}/credits`, { op: "set", amount: 9 }, undefined, poor.key)).status, 200);
    // What it makes is carved from it (its child), so spends from its balance.
    const made = await api.admin("POST", "/keys", { account, name: "free" }, poor.key);
    assert.equal(made.status, 201, made.text);
    assert.equal(made.json.parent, poor.id);
    // Made by the bootstrap token, a key with more credits than the admin key's
    // own is beyond its reach.
    const richer = await api.createKey({ account, credits: { remaining: 1000 } });
    expectError(assert, await change(`/keys/${richer.id}/credits`, { op: "set", amount: 1 }, undefined, poor.key), 404, "not_found");
    expectError(assert, await api.admin("PATCH", `/keys/${k.id}`, { credits: null }, poor.key), 403, "forbidden");
    expectError(assert, await change(`/accounts/${account}/credits`, { op: "set", amount: 1 }, undefined, poor.key), 403, "forbidden");
    assert.equal(await remaining(k.id), 9);
  });

  test("credits.low once when the balance falls to 50% of its last set, again after a set", async () => {
    const k = await api.createKey({ account: unique("cr-low"), credits: { remaining: 4 } });
    const low = () => hooks("credits.low", (d) => d.key_id === k.id);
    assert.equal((await use(k.key)).status, 200);
    assert.equal(low().length, 0);
    assert.equal((await use(k.key)).status, 200); // 2 of 4 left
    await eventually(() => assert.equal(low().length, 1), 10_000);
    assert.equal((await use(k.key)).status, 200);
    await stays(() => assert.equal(low().length, 1, "once per crossing"), 1_500);
    assert.deepEqual([low()[0].data.remaining, low()[0].data.percent, low()[0].data.baseline], [2, 50, 4]);
    assert.equal((await events(k.id, "credits.low")).length, 1);
    await change(`/keys/${k.id}/credits`, { op: "set", amount: 2 });
    assert.equal((await use(k.key)).status, 200);
    await eventually(() => assert.equal(low().length, 2), 10_000);
  });
});

describe("an account's credits", () => {
  test("shared by its keys, all-or-nothing with each key's own balance", async () => {
    const account = unique("cr-acct");
    const put = await api.admin("PUT", `/accounts/${account}`, { credits: { remaining: 3 } });
    assert.equal(put.status, 200, put.text);
    assert.equal(put.json.credits?.remaining, 3, put.text);
    const a = await api.createKey({ account, credits: { remaining: 10 } });
    const b = await api.createKey({ account });
    assert.equal((await use(a.key)).status, 200);
    assert.equal((await use(b.key)).status, 200);
    assert.equal((await use(a.key)).status, 200);
    expectError(assert, await use(b.key), 402, "credits_exhausted", "Credits exhausted");
    expectError(assert, await use(a.key), 402, "credits_exhausted");
    // The key's own balance paid only for what the account admitted.
    await eventually(async () => assert.equal(await remaining(a.id), 8), 10_000);
    const view = await api.admin("GET", `/accounts/${account}`);
    assert.deepEqual(view.json.credits, { remaining: 0, refill: null, next_refill_at: null });
    const up = await change(`/accounts/${account}/credits`, { op: "increment", amount: 1 }, "acct-1");
    assert.deepEqual(up.json, { id: account, credits: { remaining: 1, refill: null, next_refill_at: null } });
    assert.deepEqual((await change(`/accounts/${account}/credits`, { op: "increment", amount: 1 }, "acct-1")).json, up.json);
    assert.equal((await use(b.key)).status, 200);
    expectError(assert, await use(b.key), 402, "credits_exhausted");
    const trail = (await api.admin("GET", `/events?account=${account}&action=account.credits_changed&limit=10`)).json.items;
    assert.equal(trail.length, 2, "the PUT and one increment");
    // An account's admin key reads the balance; only the bootstrap token changes it.
    const admin = await api.createKey({ account, permissions: ["admin"] });
    assert.equal((await api.admin("GET", `/accounts/${account}`, undefined, admin.key)).json.credits.remaining, 0);
    expectError(assert, await change(`/accounts/${account}/credits`, { op: "set", amount: 5 }, undefined, admin.key), 403, "forbidden");
    const r = await change(`/accounts/${account}/credits`, { op: "sett", amount: 5 });
    expectError(assert, r, 400, "invalid_request");
    assert.equal(r.json.field, "op");
  });

  test("a plain account's keys spend from a balance set while its plan was leased, on their next request", async () => {
    const account = unique("cr-lease");
    const k = await api.createKey({ account });
    for (let i = 0; i < 3; i++) assert.equal((await use(k.key)).status, 200); // the plan is leased here
    const put = await api.admin("PUT", `/accounts/${account}`, { credits: { remaining: 1 } });
    assert.equal(put.status, 200, put.text);
    assert.equal((await use(k.key)).status, 200);
    expectError(assert, await use(k.key), 402, "credits_exhausted");
  });
});

describe("GET /accounts/{id}/usage", () => {
  const settled = async (id, n) =>
    eventually(async () => {
      const logs = (await api.admin("GET", `/keys/${id}/logs?limit=100`)).json.items;
      assert.equal(logs.filter((l) => l.state === "completed").length, n);
    }, 10_000);

  test("each key's requests and credits per hour and per day, equal to the keys' own usage, paged by key", async () => {
    const account = unique("usage");
    const a = await api.createKey({ account, permissions: ["write:all"] });
    const b = await api.createKey({ account });
    const idle = await api.createKey({ account });
    for (let i = 0; i < 3; i++) assert.equal((await use(a.key)).status, 200);
    assert.equal((await use(a.key, "/reports", "POST")).status, 200); // cost 3
    assert.equal((await use(b.key)).status, 200);
    assert.equal((await use(b.key, "/status/503")).status, 503); // not charged
    await settled(a.id, 4);
    await settled(b.id, 2);
    const from = new Date(Date.now() - 120_000).toISOString();
    const to = new Date(Date.now() + 1000).toISOString();
    const hours = await api.admin("GET", `/accounts/${account}/usage?from=${from}&to=${to}&resolution=hour`);
    assert.equal(hours.status, 200, hours.text);
    assert.equal(hours.json.cursor, null);
    const total = (items, id) =>
      items.filter((i) => i.key_id === id).reduce((t, i) => ({ requests: t.requests + i.requests, credits: t.credits + i.credits }), { requests: 0, credits: 0 });
    assert.deepEqual(total(hours.json.items, a.id), { requests: 4, credits: 6 });
    assert.deepEqual(total(hours.json.items, b.id), { requests: 1, credits: 1 });
    assert.ok(!hours.json.items.some((i) => i.key_id === idle.id), "a key without use has no rows");
    for (const item of hours.json.items) {
      assert.deepEqual(Object.keys(item).sort(), ["credits", "key_id", "requests", "start"]);
      assert.equal(Date.parse(item.start) % (HOUR_S * 1000), 0, "on the hour");
    }
    // The same totals as each key's own usage.
    for (const k of [a, b]) {
      const own = (await api.admin("GET", `/keys/${k.id}/usage?resolution=hour`)).json.items;
      assert.deepEqual(total(hours.json.items, k.id), own.reduce((t, i) => ({ requests: t.requests + i.requests, credits: t.credits + i.credits }), { requests: 0, credits: 0 }));
    }
    const days = await api.admin("GET", `/accounts/${account}/usage?from=${from}&to=${to}&resolution=day`);
    assert.deepEqual(total(days.json.items, a.id), { requests: 4, credits: 6 });
    assert.ok(days.json.items.every((i) => Date.parse(i.start) % (24 * HOUR_S * 1000) === 0), "on the day");
    // Paged by key: one key per page, three pages, the same rows.
    let cursor = null;
    const paged = [];
    for (let page = 0; page < 4; page++) {
      const q = `/accounts/${account}/usage?from=${from}&to=${to}&limit=1${cursor ? `&cursor=${cursor}` : ""}`;
      const r = await api.admin("GET", q);
      assert.equal(r.status, 200, r.text);
      paged.push(...r.json.items);
      cursor = r.json.cursor;
      if (!cursor) break;
    }
    assert.equal(cursor, null);
    assert.deepEqual(total(paged, a.id), total(hours.json.items, a.id));
    assert.deepEqual(total(paged, b.id), total(hours.json.items, b.id));
    // A range after the use holds nothing.
    const later = await api.admin("GET", `/accounts/${account}/usage?from=${new Date(Date.now() + 60_000).toISOString()}&to=${new Date(Date.now() + 120_000).toISOString()}`);
    assert.deepEqual(later.json.items, []);
  });

  test("usage.reported: one webhook per account and period with each key's totals, ready for a Stripe meter", async () => {
    const account = unique("report");
    const a = await api.createKey({ account, permissions: ["write:all"] });
    const b = await api.createKey({ account });
    await api.createKey({ account }); // never used: not in any report
    const sent = [];
    for (let i = 0; i < 3; i++) sent.push(await use(a.key));
    sent.push(await use(a.key, "/reports", "POST"));
    sent.push(await use(b.key));
    sent.push(await use(b.key, "/status/503")); // not charged
    assert.deepEqual(sent.map((r) => r.status), [200, 200, 200, 200, 200, 503]);
    const reports = () => hooks("usage.reported", (d) => d.account === account).map((b) => b.data);
    const sum = (id) => reports().flatMap((r) => r.keys).filter((k) => k.key_id === id).reduce((n, k) => n + k.credits, 0);
    await eventually(() => {
      assert.equal(sum(a.id), 6);
      assert.equal(sum(b.id), 1);
    }, 40_000);
    await stays(() => assert.equal(sum(a.id) + sum(b.id), 7, "each period once"), 2_000);
    const keys = reports().map((r) => r.idempotency_key);
    assert.equal(new Set(keys).size, keys.length, "one report per period");
    for (const r of reports()) {
      assert.equal(r.idempotency_key, `${account}:hour:${r.period.start}`);
      assert.equal(Date.parse(r.period.end) - Date.parse(r.period.start), HOUR_S * 1000);
      assert.ok(r.keys.every((k) => k.credits > 0), "keys without use are left out");
      assert.equal(r.credits, r.keys.reduce((n, k) => n + k.credits, 0));
      for (const e of r.meter_events) {
        assert.equal(e.event_name, "keyward_credits");
        assert.equal(e.payload.stripe_customer_id, account);
        assert.match(e.payload.value, /^\d+$/);
        assert.ok(e.timestamp * 1000 >= Date.parse(r.period.start) && e.timestamp * 1000 < Date.parse(r.period.end));
        assert.ok(e.identifier.startsWith(r.idempotency_key));
      }
    }
    // What was reported is what the export says.
    const exported = await api.admin("GET", `/accounts/${account}/usage?from=${new Date(Date.now() - 120_000).toISOString()}`);
    assert.equal(exported.json.items.reduce((n, i) => n + i.credits, 0), 7);
  });

  test("confinement and hostile input", async () => {
    const account = unique("usage-c");
    const k = await api.createKey({ account });
    assert.equal((await use(k.key)).status, 200);
    await settled(k.id, 1);
    const other = await api.createKey({ account: unique("usage-o"), permissions: ["admin"] });
    expectError(assert, await api.admin("GET", `/accounts/${account}/usage`, undefined, other.key), 404, "not_found");
    // An admin key of the account sees the keys within its reach only.
    const narrow = await api.createKey({ account, permissions: ["admin"], projects: ["p1"] });
    const seen = await api.admin("GET", `/accounts/${account}/usage`, undefined, narrow.key);
    assert.equal(seen.status, 200, seen.text);
    assert.ok(!seen.json.items.some((i) => i.key_id === k.id), "a key freer than the admin key is not shown");
    const own = await api.admin("GET", `/accounts/${account}/usage`, undefined, (await api.createKey({ account, permissions: ["admin"] })).key);
    assert.ok(own.json.items.some((i) => i.key_id === k.id));
    const bad = async (q, field) => {
      const r = await api.admin("GET", `/accounts/${account}/usage?${q}`);
      expectError(assert, r, 400, "invalid_request");
      assert.equal(r.json.field, field, r.text);
    };
    await bad("from=yesterday", "from");
    await bad("to=2026-02-30T00:00:00Z", "to");
    const empty = await api.admin("GET", `/accounts/${account}/usage?from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z`);
    assert.deepEqual([empty.status, empty.json.items], [200, []], "an empty range holds nothing");
    await bad("resolution=minute", "resolution");
    await bad("limit=0", "limit");
    await bad("cursor=%2E%2E%2Fx", "cursor");
    await bad("key_id=x", "key_id");
    expectError(assert, await api.admin("GET", `/accounts/${"x".repeat(300)}/usage`), 404, "not_found");
  });
});

describe("child keys carved from a parent", () => {
  test("children together never exceed their parent's quota or credits; a refusal up the chain spends nothing below", async () => {
    const account = unique("tree");
    const parent = await api.createKey({ account, quotas: { total: 4 }, permissions: ["write:all"] });
    const a = await api.createKey({ account, parent: parent.id });
    const b = await api.createKey({ account, parent: parent.id, credits: { remaining: 10 } });
    assert.equal(a.parent, parent.id);
    assert.deepEqual(a.parents, [parent.id]);
    for (const k of [a, b, a, b]) assert.equal((await use(k.key)).status, 200);
    expectError(assert, await use(a.key), 429, "quota_exceeded", "Rate limit exceeded: quota total");
    expectError(assert, await use(b.key), 429, "quota_exceeded");
    await eventually(async () => {
      assert.equal((await api.admin("GET", `/keys/${parent.id}`)).json.usage_count, 4);
      assert.equal((await api.admin("GET", `/keys/${a.id}`)).json.usage_count, 2);
      assert.equal(await remaining(b.id), 8, "the refused request's credits came back");
    }, 10_000);
    // A parent's credits are its children's.
    const funded = await api.createKey({ account, credits: { remaining: 2 } });
    const c = await api.createKey({ account, parent: funded.id });
    assert.equal((await use(c.key)).status, 200);
    assert.equal((await use(c.key)).status, 200);
    expectError(assert, await use(c.key), 402, "credits_exhausted", "Credits exhausted");
    // The child's own permissions hold, and so do its parent's.
    expectError(assert, await use(a.key, "/reports", "POST"), 403, "insufficient_permissions");
  });

  test("revoking or deactivating a parent stops its children on their next request; trees are three deep", async () => {
    const account = unique("tree-stop");
    const root = await api.createKey({ account });
    const mid = await api.createKey({ account, parent: root.id });
    const leaf = await api.createKey({ account, parent: mid.id });
    assert.deepEqual(leaf.parents, [mid.id, root.id]);
    assert.equal((await use(leaf.key)).status, 200);
    const deeper = await api.admin("POST", "/keys", { account, name: "too deep", parent: leaf.id });
    expectError(assert, deeper, 409, "conflict");
    assert.match(deeper.json.error, /at most three deep/);
    assert.equal((await api.admin("POST", `/keys/${root.id}/deactivate`)).status, 200);
    expectError(assert, await use(leaf.key), 401, "key_inactive", "Inactive API Key");
    expectError(assert, await use(mid.key), 401, "key_inactive");
    assert.equal((await api.admin("POST", `/keys/${root.id}/activate`)).status, 200);
    assert.equal((await use(leaf.key)).status, 200);
    assert.equal((await api.admin("POST", `/keys/${mid.id}/revoke`)).status, 200);
    expectError(assert, await use(leaf.key), 401, "key_revoked", "Revoked API Key");
    assert.equal((await use(root.key)).status, 200, "a parent is not held by its children");
    // The listing shows the tree.
    const rows = (await api.admin("GET", `/keys?account=${account}`)).json.items;
    assert.deepEqual(
      Object.fromEntries(rows.map((r) => [r.id, r.parent])),
      { [root.id]: null, [mid.id]: root.id, [leaf.id]: mid.id },
    );
  });

  test("confinement and hostile input: a child is never freer than its parent", async () => {
    const account = unique("tree-c");
    const parent = await api.createKey({ account, permissions: ["read:all"], projects: ["p1"] });
    const wider = await api.admin("POST", "/keys", { account, name: "x", parent: parent.id, permissions: ["write:all"], projects: ["p1"] });
    expectError(assert, wider, 403, "forbidden");
    assert.match(wider.json.error, /write:all/);
    expectError(assert, await api.admin("POST", "/keys", { account, name: "x", parent: parent.id }), 403, "forbidden", undefined);
    assert.equal((await api.admin("POST", "/keys", { account, name: "x", parent: parent.id, projects: ["p1"] })).status, 201);
    const elsewhere = await api.admin("POST", "/keys", { account: unique("tree-o"), name: "x", parent: parent.id });
    expectError(assert, elsewhere, 409, "conflict");
    assert.match(elsewhere.json.error, /must be a key of account/);
    // Another account's admin key: the parent does not exist for it.
    const other = await api.createKey({ account: unique("tree-o"), permissions: ["admin"] });
    const hidden = await api.admin("POST", "/keys", { name: "x", parent: parent.id }, other.key);
    expectError(assert, hidden, 404, "not_found", "parent key not found");
    for (const bad of ["nope", 5, "key_../x", { id: parent.id }]) {
      const r = await api.admin("POST", "/keys", { account, name: "x", parent: bad });
      expectError(assert, r, 400, "invalid_request");
      assert.equal(r.json.field, "parent");
    }
    const unknown = await api.admin("POST", "/keys", { account, name: "x", parent: "key_0000000000000000000000" });
    expectError(assert, unknown, 404, "not_found", "parent key not found");
    const patched = await api.admin("PATCH", `/keys/${parent.id}`, { parent: parent.id });
    expectError(assert, patched, 400, "invalid_request");
    assert.equal(patched.json.field, "parent");
    const revoked = await api.createKey({ account });
    await api.admin("POST", `/keys/${revoked.id}/revoke`);
    expectError(assert, await api.admin("POST", "/keys", { account, name: "x", parent: revoked.id }), 409, "conflict");
  });
});
