// Leaked keys (issue 9 §2): reported by an admin or by GitHub's secret scanning
// (ECDSA P-256 signatures made here with a fresh key pair), disabled before the
// answer, recorded as key.leaked and announced by webhook — with the prefix only.
// Shared keys (issue 22 §3): a working key used from more client networks in an
// hour than SHARING_NETWORKS_PER_HOUR, or from a new country, is announced as
// key.shared_suspected once per hour, and with SHARING_ACTION=deactivate stopped.
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { after, before, describe, test } from "node:test";
import { Webhook } from "standardwebhooks";
import { client, eventually, expectError, rawRequest, startKeyward, startOrigin, startReceiver } from "./harness.mjs";

const SECRET = "whsec_" + Buffer.alloc(32, 9).toString("base64");
const github = crypto.generateKeyPairSync("ec", { namedCurve: "prime256v1" });
const impostor = crypto.generateKeyPairSync("ec", { namedCurve: "prime256v1" });
const KEY_ID = "90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a";
const GITHUB_KEYS = JSON.stringify([
  { key_identifier: "old-rotated-key", key: impostor.publicKey.export({ type: "spki", format: "pem" }), is_current: false },
  { key_identifier: KEY_ID, key: github.publicKey.export({ type: "spki", format: "pem" }), is_current: true },
]);

let origin, receiver;
let seq = 0;
const unique = (label) => `${label}-${Date.now().toString(36)}-${seq++}`;

before(async () => {
  origin = await startOrigin();
  receiver = await startReceiver();
});
after(async () => {
  await origin?.stop();
  receiver?.close();
});

/** Posts `tokens` to the GitHub endpoint, signed by `signer` (or with `signature`). */
function postGithub(base, body, { signer = github.privateKey, keyId = KEY_ID, signature } = {}) {
  const sig = signature ?? crypto.sign("sha256", Buffer.from(body), signer).toString("base64");
  const head = [
    "POST /admin/v1/leaks/github HTTP/1.1",
    "Content-Type: application/json",
    `Content-Length: ${Buffer.byteLength(body)}`,
    `Github-Public-Key-Identifier: ${keyId}`,
    `Github-Public-Key-Signature: ${sig}`,
  ];
  return rawRequest(base, head.join("\r\n"), body);
}

describe("with the default LEAK_ACTION (revoke)", () => {
  let kw, api;
  before(async () => {
    kw = await startKeyward({
      originUrl: origin.url,
      vars: { WEBHOOK_URL: receiver.url, WEBHOOK_SECRET: SECRET, GITHUB_SECRET_SCANNING_KEYS: GITHUB_KEYS },
    });
    api = client(kw.base);
  });
  after(async () => kw?.stop());

  test("a reported secret is revoked before the answer, recorded and announced with its prefix only", async () => {
    const account = unique("leak");
    const k = await api.createKey({ account });
    assert.equal((await api.call("GET", "/x", { key: k.key })).status, 200);
    const res = await api.admin("POST", "/leaks", { key: k.key, source: "pastebin.example/abc" });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, { found: true, key_id: k.id, account, prefix: k.prefix, action: "revoked", status: "revoked" });
    assert.ok(!res.text.includes(k.key));
    expectError(assert, await api.call("GET", "/x", { key: k.key }), 401, "key_revoked", "Revoked API Key");

    const events = (await api.admin("GET", `/events?key_id=${k.id}&action=key.leaked`)).json.items;
    assert.equal(events.length, 1);
    assert.deepEqual(
      [events[0].actor, events[0].details.source, events[0].details.prefix, events[0].details.action],
      ["admin_token", "pastebin.example/abc", k.prefix, "revoked"],
    );
    assert.ok(!JSON.stringify(events).includes(k.key.slice(k.prefix.length)), "no secret in the audit trail");
    const hook = await eventually(() => {
      const h = receiver.received.find((r) => r.body.includes(k.id));
      assert.ok(h);
      return h;
    });
    const body = new Webhook(SECRET).verify(hook.body, hook.headers);
    assert.equal(body.type, "key.leaked");
    assert.deepEqual([body.data.key_id, body.data.prefix, body.data.source, body.data.action], [k.id, k.prefix, "pastebin.example/abc", "revoked"]);
    assert.ok(!hook.body.includes(k.key.slice(k.prefix.length)), "no secret in the webhook");
    const listed = (await api.admin("GET", `/keys?account=${account}&status=revoked`)).json.items;
    assert.deepEqual(listed.map((x) => x.id), [k.id]);
  });

  test("an unknown or dead secret: found false, nothing changed", async () => {
    const k = await api.createKey({ account: unique("unknown") });
    for (const key of ["not a key", "kw_dev_" + "A".repeat(33), k.key.slice(0, -1) + (k.key.endsWith("A") ? "B" : "A")]) {
      const res = await api.admin("POST", "/leaks", { key });
      assert.deepEqual([res.status, res.json], [200, { found: false }]);
    }
    // A secret already rotated away opens nothing: not a live key.
    const rotated = await api.admin("POST", `/keys/${k.id}/rotate`);
    assert.deepEqual((await api.admin("POST", "/leaks", { key: k.key })).json, { found: false });
    assert.equal((await api.call("GET", "/x", { key: rotated.json.key })).status, 200);
  });

  test("an admin key reports keys of its own account only", async () => {
    const account = unique("mine");
    const admin = await api.createKey({ account, permissions: ["admin"] });
    const own = await api.createKey({ account });
    const foreign = await api.createKey({ account: unique("theirs") });
    assert.deepEqual((await api.admin("POST", "/leaks", { key: foreign.key }, admin.key)).json, { found: false });
    assert.equal((await api.call("GET", "/x", { key: foreign.key })).status, 200, "the other account's key is untouched");
    assert.equal((await api.admin("POST", "/leaks", { key: own.key }, admin.key)).json.action, "revoked");
    const event = (await api.admin("GET", `/events?key_id=${own.id}&action=key.leaked`)).json.items[0];
    assert.equal(event.actor, `key:${admin.id}`);
    const reader = await api.createKey({ account, permissions: ["write:all"] });
    expectError(assert, await api.admin("POST", "/leaks", { key: own.key }, reader.key), 403, "insufficient_permissions");
  });

  test("bad input is named", async () => {
    for (const [body, field] of [[{}, "key"], [{ key: "" }, "key"], [{ key: 1 }, "key"], [{ key: "k", source: "" }, "source"], [{ key: "k", source: "a\u0000" }, "source"], [{ key: "k", where: "x" }, "where"]]) {
      const res = await api.admin("POST", "/leaks", body);
      expectError(assert, res, 400, "invalid_request");
      assert.equal(res.json.field, field);
    }
  });

  test("GitHub secret scanning: a signed report revokes a live key and labels every token", async () => {
    const k = await api.createKey({ account: unique("github") });
    const tokens = [
      { token: k.key, type: "keyward_api_key", url: "https://github.com/acme/app/blob/abc/.env", source: "content" },
      { token: "kw_dev_" + "B".repeat(33), type: "keyward_api_key", url: "https://github.com/x", source: "content" },
      { token: "ghp_not_ours", type: "keyward_api_key", url: "https://github.com/y", source: "commit" },
    ];
    const body = JSON.stringify(tokens);
    const res = await postGithub(kw.base, body);
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(res.json, [
      { token_raw: k.key, token_type: "keyward_api_key", label: "true_positive" },
      { token_raw: tokens[1].token, token_type: "keyward_api_key", label: "false_positive" },
      { token_raw: "ghp_not_ours", token_type: "keyward_api_key", label: "false_positive" },
    ]);
    expectError(assert, await api.call("GET", "/x", { key: k.key }), 401, "key_revoked");
    const event = (await api.admin("GET", `/events?key_id=${k.id}&action=key.leaked`)).json.items[0];
    assert.deepEqual([event.actor, event.details.source, event.details.url, event.details.prefix], ["github_secret_scanning", "content", tokens[0].url, k.prefix]);
  });

  test("GitHub secret scanning: a forged, missing or stale signature is 401 and changes nothing", async () => {
    const k = await api.createKey({ account: unique("forged") });
    const body = JSON.stringify([{ token: k.key, type: "keyward_api_key", url: "https://github.com/z", source: "content" }]);
    const refused = async (res) => {
      assert.equal(res.status, 401, res.body);
      assert.deepEqual(res.json, { error: "Invalid signature", code: "invalid_signature" });
    };
    await refused(await postGithub(kw.base, body, { signer: impostor.privateKey }));
    await refused(await postGithub(kw.base, body, { signer: impostor.privateKey, keyId: "old-rotated-key", signature: crypto.sign("sha256", Buffer.from(body + " "), impostor.privateKey).toString("base64") }));
    await refused(await postGithub(kw.base, body, { keyId: "unknown-key-id" }));
    await refused(await postGithub(kw.base, body, { signature: "bm90IGEgc2lnbmF0dXJl" }));
    await refused(await postGithub(kw.base, body, { signature: "" }));
    const signedOther = crypto.sign("sha256", Buffer.from("[]"), github.privateKey).toString("base64");
    await refused(await postGithub(kw.base, body, { signature: signedOther }));
    const bare = await api.call("POST", "/admin/v1/leaks/github", { body });
    assert.equal(bare.status, 401);
    assert.equal((await api.call("GET", "/x", { key: k.key })).status, 200, "the key still works");
    assert.equal((await api.admin("GET", `/events?key_id=${k.id}&action=key.leaked`)).json.items.length, 0);
  });
});

/** Checks sharing detection under SHARING_ACTION=`action` (3 networks an hour). */
async function sharing(api, action) {
  const from = (ip, country) => ({ "cf-connecting-ip": ip, ...(country ? { "x-keyward-test-country": country } : {}) });
  const use = (k, ip, country) => api.call("GET", "/things", { key: k.key, headers: from(ip, country) });
  const suspected = async (id) => (await api.admin("GET", `/events?key_id=${id}&action=key.shared_suspected`)).json.items;
  const hooks = (id) =>
    receiver.received.map((r) => new Webhook(SECRET).verify(r.body, r.headers)).filter((b) => b.type === "key.shared_suspected" && b.data.key_id === id);
  // Networks: three /24s (and the same /24 again, and garbage) are within the limit.
  const k = await api.createKey({ account: unique(`share-${action}`) });
  for (const ip of ["198.51.100.7", "198.51.100.200", "203.0.113.9", "2001:db8:1:5::1", "2001:db8:1:9::2"]) {
    assert.equal((await use(k, ip)).status, 200);
  }
  assert.equal((await suspected(k.id)).length, 0, "3 networks: within 3");
  assert.equal((await use(k, "192.0.2.44")).status, 200, "the request that passes the limit is answered");
  const [event] = await suspected(k.id);
  assert.equal(event?.details.networks, 4, JSON.stringify(event));
  assert.equal(event.details.threshold, 3);
  assert.equal(event.actor, "keyward");
  await eventually(() => assert.equal(hooks(k.id).length, 1), 10_000);
  assert.equal(hooks(k.id)[0].data.prefix, k.prefix);
  const next = await use(k, "192.0.2.45");
  const view = (await api.admin("GET", `/keys/${k.id}`)).json;
  assert.equal(view.sharing.last_suspected.networks, 4);
  if (action === "deactivate") {
    expectError(assert, next, 401, "key_inactive", "Inactive API Key");
    assert.equal(view.status, "inactive");
    assert.equal((await api.admin("GET", `/events?key_id=${k.id}&action=key.deactivated`)).json.items[0]?.details.reason, "shared_suspected");
  } else {
    assert.equal(next.status, 200);
    assert.equal(view.status, "active");
    assert.equal(view.sharing.networks, 4, "counted up to the limit and one past it");
    assert.equal((await use(k, "192.0.2.46")).status, 200);
    assert.equal((await suspected(k.id)).length, 1, "once per hour");
  }
  // Countries: a key that had one, from another.
  const c = await api.createKey({ account: unique(`country-${action}`) });
  assert.equal((await use(c, "198.51.100.1", "DE")).status, 200);
  assert.equal((await use(c, "198.51.100.1", "de")).status, 200);
  assert.equal((await use(c, "198.51.100.1", "not-a-country")).status, 200, "a malformed country is not one");
  assert.equal((await suspected(c.id)).length, 0);
  assert.equal((await use(c, "198.51.100.1", "BR")).status, 200);
  const [moved] = await suspected(c.id);
  assert.equal(moved?.details.new_country, "BR", JSON.stringify(moved));
  assert.deepEqual(moved.details.country_list, ["DE", "BR"]);
}

describe("LEAK_ACTION and SHARING_ACTION: deactivate and notify", () => {
  test("deactivate: reversible; notify: recorded and announced, key untouched", async () => {
    for (const [action, status, applied] of [["deactivate", "inactive", "deactivated"], ["notify", "active", "notified"]]) {
      const vars = { LEAK_ACTION: action, SHARING_ACTION: action, SHARING_NETWORKS_PER_HOUR: "3", TEST_COUNTRY_HEADER: "true" };
      const kw = await startKeyward({ originUrl: origin.url, vars: { ...vars, WEBHOOK_URL: receiver.url, WEBHOOK_SECRET: SECRET } });
      try {
        const api = client(kw.base);
        await sharing(api, action);
        const k = await api.createKey({ account: unique(action) });
        const res = await api.admin("POST", "/leaks", { key: k.key, source: "e2e" });
        assert.deepEqual([res.json.action, res.json.status], [applied, status]);
        const gate = await api.call("GET", "/x", { key: k.key });
        assert.equal(gate.status, status === "active" ? 200 : 401);
        assert.equal((await api.admin("GET", `/events?key_id=${k.id}&action=key.leaked`)).json.items.length, 1);
        await eventually(() => assert.ok(receiver.received.some((r) => r.body.includes(k.id) && r.body.includes(`"action":"${applied}"`))));
      } finally {
        await kw.stop();
      }
    }
  });
});
