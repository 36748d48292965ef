// Issue 11: a client is charged for what it got. Admission reserves credits; the
// settlement after the answer commits them (CHARGE_ON) or gives them back; a
// reservation whose settlement never came (keyward crashed) is released by the
// key's alarm after RESERVATION_TIMEOUT_SECONDS and its log row says `abandoned`.
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { client, eventually, startKeyward, startOrigin, tempDir } from "./harness.mjs";

const VARS = { RESERVATION_TIMEOUT_SECONDS: "2", BREAKER_ENABLED: "false" };

async function logsOf(api, id) {
  const rows = [];
  let cursor = "";
  for (;;) {
    const res = await api.admin("GET", `/keys/${id}/logs?limit=100${cursor ? `&cursor=${cursor}` : ""}`);
    assert.equal(res.status, 200, res.text);
    rows.push(...res.json.items);
    if (!res.json.cursor) return rows;
    cursor = res.json.cursor;
  }
}

const count = (rows, f) => rows.filter(f).length;

describe("a crash mid-burst", () => {
  let origin, kw;
  after(async () => {
    await kw?.stop();
    await origin?.stop();
  });

  test("charges exactly what the origin answered; the rest is released and logged abandoned", async () => {
    origin = await startOrigin();
    const persistDir = tempDir("crash");
    // Long enough that the held requests are still reserved when keyward dies.
    const vars = { ...VARS, RESERVATION_TIMEOUT_SECONDS: "8" };
    kw = await startKeyward({ originUrl: origin.url, persistDir, vars });
    let api = client(kw.base);
    const LIMIT = 1000;
    const k = await api.createKey({ name: "crash", rate_limits: { per_minute: LIMIT } });
    // 200 concurrent requests: 120 the origin answers at once, 80 it holds (a slow
    // origin caught by the crash).
    const answeredBefore = origin.answered(); // the harness's readiness probes
    const paths = Array.from({ length: 200 }, (_, i) => (i % 5 < 3 ? "/things" : "/hold"));
    const burst = paths.map((p) => api.call("GET", p, { key: k.key }));
    const answered = await Promise.all(burst.filter((_, i) => paths[i] === "/things"));
    assert.ok(answered.every((r) => r.status === 200));
    // Every /hold request is at the origin, reserved; every answer is settled.
    await eventually(() => assert.equal(origin.received().filter((r) => r.target === "/hold").length, 80), 30000);
    await eventually(async () => assert.equal((await api.admin("GET", `/keys/${k.id}`)).json.usage_count, 120), 10000);
    const beforeCrash = await logsOf(api, k.id);
    assert.equal(count(beforeCrash, (r) => r.state === "pending"), 80);
    assert.ok(beforeCrash.filter((r) => r.state === "pending").every((r) => r.status === null && r.credits === 1));

    // The origin answers nothing more of this burst (restart probes of /health
    // come later): what it answered is final here.
    const originAnswered = origin.answered() - answeredBefore;
    await kw.kill();
    await Promise.allSettled(burst);
    kw = await startKeyward({ originUrl: origin.url, persistDir, vars });
    api = client(kw.base);
    // The key's alarm, restored with its object, releases the 80 at their timeout.
    await eventually(async () => {
      const rows = await logsOf(api, k.id);
      assert.equal(count(rows, (r) => r.state === "pending"), 0);
    }, 40000);
    const rows = await logsOf(api, k.id);
    const view = (await api.admin("GET", `/keys/${k.id}`)).json;
    assert.equal(originAnswered, 120);
    assert.equal(view.usage_count, originAnswered, "charged exactly what the origin answered");
    const minute = view.limits.find((l) => l.name === "per_minute");
    assert.equal(minute.remaining, LIMIT - 120, "the held credits came back");
    assert.equal(count(rows, (r) => r.state === "completed" && r.status === 200 && r.credits === 1), 120);
    assert.equal(count(rows, (r) => r.state === "abandoned" && r.credits === 0 && r.status === null), 80);
    assert.equal(rows.length, 200);
  });

  test("killed at any moment: what is counted, logged and left in the ledger agree", async () => {
    await kw?.stop();
    const persistDir = tempDir("crash-any");
    kw = await startKeyward({ originUrl: origin.url, persistDir, vars: VARS });
    let api = client(kw.base);
    const k = await api.createKey({ name: "any", rate_limits: { per_minute: 1000 } });
    origin.forget();
    const burst = Array.from({ length: 200 }, () => api.call("GET", "/things", { key: k.key }));
    await eventually(() => assert.ok(origin.received().length >= 40), 30000);
    await kw.kill();
    const results = await Promise.allSettled(burst);
    const got = results.filter((r) => r.status === "fulfilled" && r.value.status === 200).length;
    const reached = origin.received().length;
    kw = await startKeyward({ originUrl: origin.url, persistDir, vars: VARS });
    api = client(kw.base);
    await eventually(async () => {
      assert.equal(count(await logsOf(api, k.id), (r) => r.state === "pending"), 0);
    }, 20000);
    const rows = await logsOf(api, k.id);
    const view = (await api.admin("GET", `/keys/${k.id}`)).json;
    const charged = count(rows, (r) => r.state === "completed" && r.credits === 1);
    // Never charged twice, never for more than reached the origin; every credit
    // still taken belongs to a charged request.
    assert.equal(view.usage_count, charged);
    assert.ok(view.usage_count <= reached, `${view.usage_count} charged, ${reached} reached the origin`);
    assert.equal(view.limits.find((l) => l.name === "per_minute").remaining, 1000 - charged);
    assert.equal(count(rows, (r) => r.state === "completed") + count(rows, (r) => r.state === "abandoned"), rows.length);
    assert.ok(got <= reached);
  });
});

// A settlement lingers (SETTLE_LINGER_MS) for the next request's check to carry
// it: a crash loses the settlements of the requests answered in the last linger,
// never more. Those are released, not charged (README: "Object calls").
test("a crash loses only the settlements of the last SETTLE_LINGER_MS; they are released, not charged", async () => {
  const LINGER = 3000;
  const origin = await startOrigin();
  const persistDir = tempDir("crash-linger");
  const vars = { ...VARS, RESERVATION_TIMEOUT_SECONDS: "8", SETTLE_LINGER_MS: String(LINGER) };
  let kw = await startKeyward({ originUrl: origin.url, persistDir, vars });
  try {
    let api = client(kw.base);
    const N = 20;
    const k = await api.createKey({ name: "linger", quotas: { total: 100 } });
    const answeredAt = [];
    for (let i = 0; i < N; i++) {
      assert.equal((await api.call("GET", "/things", { key: k.key })).status, 200);
      answeredAt.push(Date.now());
    }
    // Each of the first N-1 settlements rode the next request's check; the last
    // one lingers, waiting for a request that never comes.
    const pending = (await logsOf(api, k.id)).filter((r) => r.state === "pending");
    const killedAt = Date.now();
    await kw.kill();
    assert.ok(killedAt - answeredAt[N - 1] < LINGER, "killed within the last request's linger");
    assert.equal(pending.length, 1, JSON.stringify(pending));
    const bound = answeredAt.filter((t) => t > killedAt - LINGER).length;
    kw = await startKeyward({ originUrl: origin.url, persistDir, vars });
    api = client(kw.base);
    await eventually(async () => {
      assert.equal(count(await logsOf(api, k.id), (r) => r.state === "pending"), 0);
    }, 20000);
    const rows = await logsOf(api, k.id);
    const view = (await api.admin("GET", `/keys/${k.id}`)).json;
    const lost = N - view.usage_count;
    assert.ok(lost >= 1 && lost <= bound, `${lost} settlements lost; ${bound} requests answered in the last ${LINGER} ms`);
    assert.equal(count(rows, (r) => r.state === "abandoned" && r.credits === 0), lost);
    assert.equal(count(rows, (r) => r.state === "completed" && r.credits === 1), N - lost);
    assert.equal(view.limits.find((l) => l.name === "total").remaining, 100 - (N - lost), "a lost settlement's credits came back");
  } finally {
    await kw.stop();
    await origin.stop();
  }
});

describe("CHARGE_ON", () => {
  for (const [charge, charged] of [
    ["forwarded", true],
    ["success", false],
  ]) {
    test(`${charge}: an origin answering 500 ${charged ? "is" : "is not"} charged`, async () => {
      const origin = await startOrigin();
      const kw = await startKeyward({ originUrl: origin.url, vars: { ...VARS, CHARGE_ON: charge } });
      try {
        const api = client(kw.base);
        const k = await api.createKey({ name: charge, quotas: { total: 3 } });
        for (let i = 0; i < 2; i++) {
          const res = await api.call("GET", "/status/500", { key: k.key });
          assert.equal(res.status, 500);
          assert.equal(res.json?.origin, "example", "the origin's own answer, passed through");
        }
        assert.equal((await api.call("GET", "/status/204", { key: k.key })).status, 204);
        const expected = charged ? 3 : 1;
        await eventually(async () => assert.equal((await api.admin("GET", `/keys/${k.id}`)).json.usage_count, expected));
        const total = (await api.admin("GET", `/keys/${k.id}`)).json.limits.find((l) => l.name === "total");
        assert.equal(total.remaining, 3 - expected);
        const rows = await logsOf(api, k.id);
        assert.deepEqual(
          rows.map((r) => [r.status, r.credits, r.state]).sort(),
          [[204, 1, "completed"], [500, charged ? 1 : 0, "completed"], [500, charged ? 1 : 0, "completed"]].sort(),
        );
        // What a failed origin gave back is usable at once.
        const next = await api.call("GET", "/things", { key: k.key });
        assert.equal(next.status, charged ? 429 : 200, next.text);
      } finally {
        await kw.stop();
        await origin.stop();
      }
    });
  }
});

describe("Retry-After", () => {
  test("never past the window, and a retry at that moment is admitted", async () => {
    const origin = await startOrigin();
    const kw = await startKeyward({ originUrl: origin.url, vars: VARS });
    try {
      const api = client(kw.base);
      const windows = [
        [{ rate_limits: { per_second: 1 } }, 1, "rate_limited"],
        [{ rate_limits: { per_minute: 1 } }, 60, "rate_limited"],
        [{ rate_limits: { per_day: 1 } }, 86400, "rate_limited"],
        [{ quotas: { daily: 1 } }, 86400, "quota_exceeded"],
        [{ quotas: { weekly: 1 } }, 7 * 86400, "quota_exceeded"],
        [{ quotas: { monthly: 1 } }, 30 * 86400, "quota_exceeded"],
      ];
      for (const [limits, window, code] of windows) {
        const k = await api.createKey({ name: `w${window}`, ...limits });
        const first = await api.call("GET", "/things", { key: k.key });
        assert.equal(first.status, 200);
        const t = Number(/;t=(\d+)$/.exec(first.headers.get("ratelimit"))?.[1]);
        assert.ok(t >= 1 && t <= window, `${window}: t=${t}`);
        const refused = await api.call("GET", "/things", { key: k.key });
        assert.equal(refused.status, 429);
        assert.equal(refused.json.code, code);
        const retry = Number(refused.headers.get("retry-after"));
        assert.ok(retry >= 1 && retry <= window, `${JSON.stringify(limits)}: Retry-After ${retry}`);
        const view = (await api.admin("GET", `/keys/${k.id}`)).json;
        for (const l of view.limits.filter((l) => l.reset_at)) {
          const limit = Date.now() + l.window_seconds * 1000;
          assert.ok(Date.parse(l.reset_at) <= limit, `${l.name} reset_at ${l.reset_at}`);
        }
        if (window === 1) {
          await new Promise((r) => setTimeout(r, retry * 1000));
          assert.equal((await api.call("GET", "/things", { key: k.key })).status, 200, "the retry at Retry-After");
        }
      }
    } finally {
      await kw.stop();
      await origin.stop();
    }
  });
});
