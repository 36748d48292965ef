// Issue 13: a new or rotated key works everywhere at once. KV's copy may lag (a
// location it has not reached answers "not found"); `TEST_KV_HIDE_WRITES_SECONDS`
// makes this KV index answer so for entries younger than that, and the gate must
// still admit a key on its first request, by asking the object its key names.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { before, test } from "node:test";
import { client, eventually, expectError, startKeyward, useKeyward } from "./harness.mjs";

const HIDE_S = 3;
let origin, kw, api;

const setup = useKeyward({
  TEST_KV_HIDE_WRITES_SECONDS: String(HIDE_S),
  OBJECT_STATS: "true",
  IP_BLOCK_THRESHOLD: "3",
  IP_BLOCK_WINDOW_SECONDS: "60",
});
before(async () => ({ origin, server: kw, api } = await setup.ready));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const from = (ip, key) => api.call("GET", "/things", { key, headers: { "cf-connecting-ip": ip } });

// The key format (src/key_format.rs): CRC-32 of the head, as 6 base62 digits.
const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
function crc32(text) {
  let c = 0xffffffff;
  for (const b of Buffer.from(text)) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}
function base62(n, width) {
  let out = "";
  for (let i = 0; i < width; i++) {
    out = BASE62[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out;
}
const randomChars = (n) => Array.from({ length: n }, () => BASE62[Math.floor(Math.random() * 62)]).join("");
/** A well-formed key with a valid checksum that keyward never issued. */
function madeUp(locator = randomChars(22)) {
  const head = `kw_dev_${randomChars(27)}${locator}`;
  return head + base62(crc32(head), 6);
}

/** Calls each key's object served, from its own counters (OBJECT_STATS). */
function callsOf(id) {
  const script = `
import glob, json, sqlite3, sys
for f in glob.glob(sys.argv[1] + '/v3/do/keyward-KeyObject/*.sqlite'):
    c = sqlite3.connect('file:' + f + '?mode=ro', uri=True, timeout=5)
    try:
        r = c.execute('select json from record').fetchone()
        if r and json.loads(r[0])['id'] == sys.argv[2]:
            print(c.execute('select calls from object_stats').fetchone()[0])
    except sqlite3.Error:
        pass
`;
  return Number(execFileSync("python3", ["-c", script, kw.persistDir, id], { encoding: "utf8" }).trim());
}

/** The tables each key object without a key holds (made-up keys' objects). */
function tablesOfObjectsWithoutKeys() {
  const script = `
import glob, json, sqlite3, sys
out = []
for f in glob.glob(sys.argv[1] + '/v3/do/keyward-KeyObject/*.sqlite'):
    c = sqlite3.connect('file:' + f + '?mode=ro', uri=True, timeout=5)
    names = sorted(r[0] for r in c.execute("select name from sqlite_master where type = 'table'"))
    if 'record' not in names:
        out.append(names)
print(json.dumps(out))
`;
  return JSON.parse(execFileSync("python3", ["-c", script, kw.persistDir], { encoding: "utf8" }));
}

test("a key answers 200 on its first request, before KV has its copy", async () => {
  const k = await api.createKey({ name: "fresh" });
  assert.match(k.key, /^kw_dev_[0-9A-Za-z]{55}$/);
  assert.equal(k.key.slice(7 + 27, 7 + 49), k.id.slice(4), "the key carries its object's id");
  const res = await from("198.51.100.10", k.key);
  assert.equal(res.status, 200, res.text);
  assert.equal(origin.received().at(-1).headers["x-keyward-key-id"], k.id);
  // KV's copy was hidden, so the key's object was asked where the key leads: one
  // call more than for a key whose copy KV had.
  const old = await api.createKey({ name: "settled" });
  await sleep(HIDE_S * 1000 + 500);
  assert.equal((await from("198.51.100.10", old.key)).status, 200);
  await eventually(() => assert.equal(callsOf(k.id) - callsOf(old.id), 1));
});

test("a rotated key's new secret answers 200 at once; the old one stops", async () => {
  const k = await api.createKey({ name: "rotating" });
  await sleep(HIDE_S * 1000 + 500); // KV has the first secret's copy
  assert.equal((await from("198.51.100.11", k.key)).status, 200);
  const rotated = await api.admin("POST", `/keys/${k.id}/rotate`);
  assert.equal(rotated.status, 200, rotated.text);
  assert.notEqual(rotated.json.key, k.key);
  assert.equal((await from("198.51.100.11", rotated.json.key)).status, 200);
  expectError(assert, await from("198.51.100.11", k.key), 401, "invalid_key", "Invalid API Key");
  // With a grace period, both at once.
  const graced = await api.admin("POST", `/keys/${k.id}/rotate`, { grace_period_seconds: 60 });
  assert.equal((await from("198.51.100.11", graced.json.key)).status, 200);
  assert.equal((await from("198.51.100.11", rotated.json.key)).status, 200);
});

test("made-up keys with a valid checksum are refused, counted, and leave nothing behind", async () => {
  const ip = "203.0.113.77";
  const real = await api.createKey({ name: "real" });
  // Its first request, at once: admitted, so never a failed attempt.
  assert.equal((await from(ip, real.key)).status, 200);
  // One names no object that holds a key; one names a real key's object.
  expectError(assert, await from(ip, madeUp()), 401, "invalid_key", "Invalid API Key");
  expectError(assert, await from(ip, madeUp(real.id.slice(4))), 401, "invalid_key");
  assert.equal((await from(ip, real.key)).status, 200, "two failures: not blocked yet");
  expectError(assert, await from(ip, madeUp()), 401, "invalid_key");
  // The third failure blocked the address: exactly three were counted.
  expectError(assert, await from(ip, real.key), 403, "ip_blocked", "IP temporarily blocked");
  assert.equal((await from("203.0.113.78", real.key)).status, 200);
  // Their objects created no tables (the runtime's own bookkeeping aside).
  const ours = new Set(["record", "logs", "buckets", "outbox", "usage", "uses", "ledger_total"]);
  for (const tables of tablesOfObjectsWithoutKeys()) {
    assert.deepEqual(tables.filter((t) => ours.has(t)), [], `tables: ${tables}`);
  }
});

test("a deleted key and a revoked key answer as before", async () => {
  const gone = await api.createKey({ name: "deleted at once" });
  assert.equal((await api.admin("DELETE", `/keys/${gone.id}`)).status, 204);
  expectError(assert, await from("198.51.100.12", gone.key), 401, "invalid_key");
  const revoked = await api.createKey({ name: "revoked at once" });
  assert.equal((await api.admin("POST", `/keys/${revoked.id}/revoke`)).status, 200);
  expectError(assert, await from("198.51.100.12", revoked.key), 401, "key_revoked", "Revoked API Key");
});

test("the test switch is refused in production", async () => {
  const prod = await startKeyward({
    originUrl: origin.url,
    vars: { ENVIRONMENT: "production", ALLOW_HTTP: "true", TEST_KV_HIDE_WRITES_SECONDS: "5" },
  });
  try {
    const res = await client(prod.base).call("GET", "/health");
    expectError(assert, res, 500, "configuration_error");
    assert.match(res.json.error, /TEST_KV_HIDE_WRITES_SECONDS/);
  } finally {
    await prod.stop();
  }
});
