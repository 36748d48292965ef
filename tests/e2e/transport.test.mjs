// Row 1 (HTTPS) and the promise that garbage keys cost no storage read, both shown
// on deployments without ALLOW_HTTP. The second one runs with no KV or Durable
// Object bindings at all: anything that reached storage would fail with a 500.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { ADMIN_TOKEN, ROOT, client, expectError, insecureGet, startKeyward, startOrigin, tempDir } from "./harness.mjs";

let origin, plain, tls, noStorageConfig;

before(async () => {
  origin = await startOrigin();
  // The same build, configured without any storage binding.
  const dir = tempDir("nostorage");
  noStorageConfig = path.join(dir, "wrangler.toml");
  fs.writeFileSync(
    noStorageConfig,
    [
      'name = "keyward-nostorage"',
      `main = "${path.join(ROOT, "build/index.js")}"`,
      'compatibility_date = "2025-09-01"',
      "[vars]",
      'ENVIRONMENT = "development"',
      'ALLOW_HTTP = "false"',
      "",
    ].join("\n"),
  );
  plain = await startKeyward({ originUrl: origin.url, config: noStorageConfig });
  tls = await startKeyward({ originUrl: origin.url, config: noStorageConfig, https: true });
});
after(async () => {
  await plain?.stop();
  await tls?.stop();
  await origin?.stop();
});

test("row 1: plain HTTP is refused, public paths and management included", async () => {
  const api = client(plain.base);
  for (const path of ["/health", "/things", "/admin/v1/keys"]) {
    expectError(assert, await api.call("GET", path), 403, "https_required", "HTTPS required");
  }
});

test("over HTTPS the same deployment serves", async () => {
  const res = await insecureGet(`${tls.base}/health`);
  assert.equal(res.status, 200);
  assert.equal(JSON.parse(res.body).path, "/health");
});

test("malformed and checksum-failing keys are refused without touching storage", async () => {
  const good = "kw_dev_" + "A".repeat(27); // body without a valid checksum
  for (const key of ["nonsense", `${good}AAAAAA`, "kw_dev_" + "z".repeat(33), "kw_live_short"]) {
    const res = await insecureGet(`${tls.base}/things`, { authorization: `Bearer ${key}` });
    assert.equal(res.status, 401, `${key}: ${res.body}`);
    assert.equal(JSON.parse(res.body).code, "invalid_key");
    assert.equal(res.headers["www-authenticate"], "Bearer");
  }
});

test("...whereas a well-formed key does need storage (so the test above can fail), and without it is refused: 503, fail closed", async () => {
  // Build a key with a correct checksum the way keyward does: CRC32 → 6 base62 digits.
  const head = "kw_dev_" + "B".repeat(27);
  const key = head + crc32Base62(head);
  const res = await insecureGet(`${tls.base}/things`, { authorization: `Bearer ${key}` });
  assert.equal(res.status, 503, res.body);
  assert.deepEqual(JSON.parse(res.body), { error: "Service temporarily unavailable", code: "unavailable" });
  assert.equal(res.headers["retry-after"], "1");
});

test("the management routes fail closed too: 503 when storage cannot answer", async () => {
  const res = await insecureGet(`${tls.base}/admin/v1/keys`, { authorization: `Bearer ${ADMIN_TOKEN}` });
  assert.equal(res.status, 503, res.body);
  assert.equal(JSON.parse(res.body).code, "unavailable");
  assert.equal(res.headers["retry-after"], "1");
});

test("a configuration error is loud: every request answers 500 naming the variable", async () => {
  const broken = await startKeyward({
    originUrl: origin.url,
    config: noStorageConfig,
    https: true,
    vars: { WEBHOOK_URL: "https://hooks.example/keyward" },
  });
  try {
    for (const p of ["/health", "/things", "/admin/v1/keys"]) {
      const res = await insecureGet(`${broken.base}${p}`);
      assert.equal(res.status, 500, res.body);
      const body = JSON.parse(res.body);
      assert.equal(body.code, "configuration_error");
      assert.match(body.error, /WEBHOOK_SECRET must be set/);
    }
  } finally {
    await broken.stop();
  }
});

function crc32Base62(text) {
  let c = 0xffffffff;
  for (const b of Buffer.from(text)) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  let n = BigInt((c ^ 0xffffffff) >>> 0);
  const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  let out = "";
  for (let i = 0; i < 6; i++) {
    out = alphabet[Number(n % 62n)] + out;
    n /= 62n;
  }
  return out;
}
