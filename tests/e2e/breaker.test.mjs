// The circuit breaker with windows of seconds: trip, refusal, signed webhook,
// audit events, automatic resume; and a baseline learnt from the key's history.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Webhook } from "standardwebhooks";
import { client, eventually, expectError, startKeyward, startOrigin, startReceiver } from "./harness.mjs";

const SECRET = "whsec_" + Buffer.alloc(32, 7).toString("base64");
let origin, kw, api, receiver, received;

before(async () => {
  origin = await startOrigin();
  // The first delivery fails: the sender must retry.
  receiver = await startReceiver((n) => (n === 1 ? 500 : 204));
  received = receiver.received;
  kw = await startKeyward({
    originUrl: origin.url,
    vars: {
      BREAKER_WINDOW_SECONDS: "2",
      BREAKER_COOLDOWN_SECONDS: "3",
      BREAKER_FLOOR: "5",
      BREAKER_HISTORY_SECONDS: "60",
      WEBHOOK_URL: receiver.url,
      WEBHOOK_SECRET: SECRET,
    },
  });
  api = client(kw.base);
});
after(async () => {
  await kw?.stop();
  await origin?.stop();
  receiver?.close();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// Webhook retries back off 2 s; the resume waits for the alarm.
const slowly = (check) => eventually(check, 8000);
const use = (key) => api.call("GET", "/things", { key });


test("a burst over the floor suspends the key, notifies, and resumes by itself", async () => {
  const k = await api.createKey({ account: "breaker" });
  for (let i = 0; i < 5; i++) assert.equal((await use(k.key)).status, 200, `request ${i}`);
  const tripped = await use(k.key);
  expectError(assert, tripped, 429, "key_suspended", "API key suspended");
  assert.equal(tripped.headers.get("retry-after"), "3");
  const again = await use(k.key);
  expectError(assert, again, 429, "key_suspended");
  assert.ok(Number(again.headers.get("retry-after")) <= 3);
  const view = (await api.admin("GET", `/keys/${k.id}`)).json;
  assert.equal(view.status, "suspended");
  assert.equal(view.suspended, true);
  assert.ok(view.suspended_until);

  // A Standard Webhooks notice, delivered after one failed attempt, verified by the
  // official library as a receiver would.
  const hook = await slowly(() => {
    const ok = received.filter((r) => JSON.parse(r.body).data?.key_id === k.id);
    assert.ok(ok.length >= 2, `deliveries: ${ok.length}`);
    return ok[ok.length - 1];
  });
  const body = new Webhook(SECRET).verify(hook.body, hook.headers);
  assert.equal(hook.headers["content-type"], "application/json");
  assert.equal(body.type, "key.suspended");
  assert.equal(body.data.account, "breaker");
  assert.equal(body.data.threshold, 5);
  assert.equal(body.data.window_seconds, 2);
  assert.ok(Date.parse(body.timestamp) > 0 && Date.parse(body.data.suspended_until) > 0);

  await sleep(3100);
  assert.equal((await use(k.key)).status, 200, "resumed after the cooldown");
  const events = await slowly(async () => {
    const items = (await api.admin("GET", `/events?key_id=${k.id}`)).json.items;
    assert.deepEqual(items.map((e) => e.action).slice(0, 2), ["key.resumed", "key.suspended"]);
    return items;
  });
  assert.equal(events[1].actor, "circuit_breaker");
  assert.equal(events[1].details.threshold, 5);
});

test("the baseline is learnt from the key's own history", async () => {
  const k = await api.createKey({ account: "breaker" });
  // Steady traffic at the floor: 5 requests, then a pause longer than the window
  // plus its 1-second bucket, four times. Mean ≈ 5 × 2 / 3.2 ≈ 3 per window.
  for (let w = 0; w < 4; w++) {
    for (let i = 0; i < 5; i++) assert.equal((await use(k.key)).status, 200, `group ${w}, request ${i}`);
    await sleep(3200);
  }
  // A new key trips at its 6th request; this one's threshold is about 3 × 3.6 = 11.
  let admitted = 0;
  for (;;) {
    const res = await use(k.key);
    if (res.status !== 200) {
      expectError(assert, res, 429, "key_suspended");
      break;
    }
    admitted++;
    assert.ok(admitted < 40, "never tripped");
  }
  console.log(`# breaker: trained key admitted ${admitted} in the burst window (floor 5)`);
  assert.ok(admitted >= 9 && admitted <= 13, `admitted ${admitted}`);
});
