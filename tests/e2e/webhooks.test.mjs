// Standard Webhooks (issue 9 §3), checked with the official `standardwebhooks`
// package as a receiver would: signature, a webhook-id stable across retries,
// two signatures while the secret rotates, and a 410 that stops the retries.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Webhook } from "standardwebhooks";
import { client, eventually, startKeyward, startOrigin, startReceiver, stays } from "./harness.mjs";

const CURRENT = "whsec_" + Buffer.alloc(32, 1).toString("base64");
const PREVIOUS = "whsec_" + Buffer.alloc(32, 2).toString("base64");
const BREAKER = { BREAKER_WINDOW_SECONDS: "2", BREAKER_COOLDOWN_SECONDS: "30", BREAKER_FLOOR: "2", BREAKER_HISTORY_SECONDS: "60" };

let origin;
before(async () => {
  origin = await startOrigin();
});
after(async () => origin?.stop());

/** Trips a fresh key's breaker: one `key.suspended` notice. */
async function trip(api, account) {
  const k = await api.createKey({ account });
  for (let i = 0; i < 3; i++) await api.call("GET", "/x", { key: k.key });
  return k;
}

describe("while the secret rotates, after a failed attempt", () => {
  let kw, api, receiver;
  before(async () => {
    receiver = await startReceiver((n) => (n === 1 ? 503 : 204));
    kw = await startKeyward({
      originUrl: origin.url,
      vars: { ...BREAKER, WEBHOOK_URL: receiver.url, WEBHOOK_SECRET: CURRENT, WEBHOOK_SECRET_PREVIOUS: PREVIOUS },
    });
    api = client(kw.base);
  });
  after(async () => {
    await kw?.stop();
    receiver?.close();
  });

  test("each attempt verifies under either secret, with one webhook-id across retries", async () => {
    const k = await trip(api, "hooks-rotate");
    const [first, second] = await eventually(() => {
      assert.equal(receiver.received.length, 2);
      return receiver.received;
    }, 10_000);
    assert.equal(first.headers["webhook-id"], second.headers["webhook-id"], "stable across retries");
    assert.match(first.headers["webhook-id"], /^msg_[0-9a-f]{16}_\d+$/);
    assert.equal(first.body, second.body, "the same body");
    assert.ok(Number(second.headers["webhook-timestamp"]) >= Number(first.headers["webhook-timestamp"]));
    assert.equal(second.headers["webhook-signature"].split(" ").length, 2, "one signature per secret");
    for (const secret of [CURRENT, PREVIOUS]) {
      const body = new Webhook(secret).verify(second.body, second.headers);
      assert.equal(body.type, "key.suspended");
      assert.equal(body.data.key_id, k.id);
      assert.equal(body.data.account, "hooks-rotate");
      assert.ok(Date.parse(body.timestamp) > 0);
    }
    // Any other secret, a changed body or a stale timestamp: the library refuses.
    const other = "whsec_" + Buffer.alloc(32, 3).toString("base64");
    assert.throws(() => new Webhook(other).verify(second.body, second.headers));
    assert.throws(() => new Webhook(CURRENT).verify(second.body.replace("hooks-rotate", "hooks-other"), second.headers));
    const stale = { ...second.headers, "webhook-timestamp": String(Number(second.headers["webhook-timestamp"]) - 3600) };
    assert.throws(() => new Webhook(CURRENT).verify(second.body, stale));
  });
});

describe("a receiver that answers 410 Gone", () => {
  let kw, api, receiver;
  before(async () => {
    receiver = await startReceiver(() => 410);
    kw = await startKeyward({ originUrl: origin.url, vars: { ...BREAKER, WEBHOOK_URL: receiver.url, WEBHOOK_SECRET: CURRENT } });
    api = client(kw.base);
  });
  after(async () => {
    await kw?.stop();
    receiver?.close();
  });

  test("gets no retry", async () => {
    await trip(api, "hooks-gone");
    await eventually(() => assert.equal(receiver.received.length, 1), 10_000);
    // A failure would be retried after 2 s, then 4 s: wait past both.
    await stays(() => assert.equal(receiver.received.length, 1), 7000);
    assert.doesNotThrow(() => new Webhook(CURRENT).verify(receiver.received[0].body, receiver.received[0].headers));
  });
});
