// Faults, proven (issue 20 §4): with TEST_FAULTS=true a request's
// X-Keyward-Test-Fault header makes its calls to one target fail at once or stall
// (sent, never answered). For each: the answer (503/502/504 with Retry-After,
// within the deadline), nothing charged, no reservation left pending past its
// timeout, the lane usable again at once, the next healthy request admitted.
import assert from "node:assert/strict";
import { test } from "node:test";
import { eventually, expectError, useKeyward } from "./harness.mjs";

const STORAGE_TIMEOUT_S = 1;
const ORIGIN_TIMEOUT_S = 2;
const kw = useKeyward({
  TEST_FAULTS: "true",
  STORAGE_TIMEOUT_SECONDS: String(STORAGE_TIMEOUT_S),
  ORIGIN_TIMEOUT_SECONDS: String(ORIGIN_TIMEOUT_S),
  RESERVATION_TIMEOUT_SECONDS: "4",
  IP_BLOCK_THRESHOLD: "3",
  PUBLIC_PATHS: "/health,/hold,/drop",
});

let seq = 0;
const unique = (label) => `${label}-${Date.now().toString(36)}-${seq++}`;

/** A request with `fault`, timed. */
async function faulted(key, fault, path = "/things") {
  const started = Date.now();
  const res = await kw.api.call("GET", path, { key, headers: fault ? { "x-keyward-test-fault": fault } : {} });
  return { res, ms: Date.now() - started };
}

/** The key's counters once no request of it is pending any more. */
async function settled(k) {
  return eventually(async () => {
    const logs = (await kw.api.admin("GET", `/keys/${k.id}/logs`)).json.items;
    assert.ok(logs.every((l) => l.state !== "pending"), JSON.stringify(logs));
    const got = (await kw.api.admin("GET", `/keys/${k.id}`)).json;
    return { logs, usage: got.usage_count, used: got.limits.find((l) => l.name === "per_minute").used };
  }, 10_000);
}

const key = () => kw.api.createKey({ account: unique("faults"), rate_limits: { per_minute: 10 } });

/** The fault's answer, then the same key healthy: admitted at once, and charged once. */
async function provesFault(fault, status, code, { maxMs }) {
  const k = await key();
  kw.origin.forget();
  const { res, ms } = await faulted(k.key, fault);
  expectError(assert, res, status, code);
  assert.ok(Number(res.headers.get("retry-after")) >= 1, `${fault}: Retry-After ${res.headers.get("retry-after")}`);
  assert.ok(ms < maxMs, `${fault}: answered after ${ms} ms`);
  // Nothing charged, nothing left pending (an abandoned reservation is released).
  const after = await settled(k);
  assert.deepEqual([after.usage, after.used], [0, 0], `${fault}: ${JSON.stringify(after)}`);
  // The lane is free and the next healthy request passes at once.
  const next = await faulted(k.key, undefined);
  assert.equal(next.res.status, 200, next.res.text);
  assert.ok(next.ms < 1000, `${fault}: the next request took ${next.ms} ms`);
  const healthy = await settled(k);
  assert.deepEqual([healthy.usage, healthy.used], [1, 1]);
  return after;
}

test("a key object that fails: 503, nothing reserved", async () => {
  const after = await provesFault("key-object:fail", 503, "unavailable", { maxMs: 1000 });
  assert.equal(after.logs.length, 0, "the object never saw it");
});

test("a key object that stalls: 503 at the deadline; its reservation is released by the alarm", async () => {
  const after = await provesFault("key-object:stall", 503, "unavailable", { maxMs: STORAGE_TIMEOUT_S * 1000 + 1500 });
  assert.deepEqual(after.logs.map((l) => [l.state, l.credits]), [["abandoned", 0]]);
});

test("an account object that fails or stalls: 503; the key's reservation is given back", async () => {
  for (const fault of ["account-object:fail", "account-object:stall"]) {
    const after = await provesFault(fault, 503, "unavailable", { maxMs: STORAGE_TIMEOUT_S * 1000 + 1500 });
    assert.deepEqual(after.logs.map((l) => [l.state, l.code, l.credits]), [["completed", "unavailable", 0]], fault);
  }
});

test("KV that fails or stalls: 503 before anything is asked of the key", async () => {
  for (const fault of ["kv:fail", "kv:stall"]) {
    // A fresh key: the isolate has not located it yet, so KV is read.
    const after = await provesFault(fault, 503, "unavailable", { maxMs: STORAGE_TIMEOUT_S * 1000 + 1500 });
    assert.equal(after.logs.length, 0, fault);
  }
});

test("an origin that fails (502) or never answers (504 at ORIGIN_TIMEOUT_SECONDS): nothing charged", async () => {
  let after = await provesFault("origin:fail", 502, "origin_unreachable", { maxMs: 1000 });
  assert.deepEqual(after.logs.map((l) => [l.state, l.credits]), [["completed", 0]]);
  after = await provesFault("origin:stall", 504, "origin_timeout", { maxMs: ORIGIN_TIMEOUT_S * 1000 + 1500 });
  assert.deepEqual(after.logs.map((l) => [l.state, l.status, l.credits]), [["completed", 504, 0]]);
  const { res } = await faulted((await key()).key, "origin:stall");
  assert.equal(res.json.error, "Origin did not answer in time");
});

test("a public path (answered without a task) whose origin drops the connection (502) or never answers (504 at ORIGIN_TIMEOUT_SECONDS)", async () => {
  let res = await kw.api.call("GET", "/drop");
  expectError(assert, res, 502, "origin_unreachable", "Origin unreachable");
  assert.ok(Number(res.headers.get("retry-after")) >= 1, `Retry-After ${res.headers.get("retry-after")}`);
  assert.equal(res.headers.get("x-content-type-options"), "nosniff");
  assert.equal(res.headers.get("cache-control"), "no-store");
  const started = Date.now();
  res = await kw.api.call("GET", "/hold");
  const ms = Date.now() - started;
  expectError(assert, res, 504, "origin_timeout", "Origin did not answer in time");
  assert.ok(Number(res.headers.get("retry-after")) >= 1, `Retry-After ${res.headers.get("retry-after")}`);
  assert.ok(ms >= ORIGIN_TIMEOUT_S * 1000 - 100 && ms < ORIGIN_TIMEOUT_S * 1000 + 1500, `answered after ${ms} ms`);
  // A fault asked of the origin takes the task's path: the same answer.
  res = await kw.api.call("GET", "/health", { headers: { "x-keyward-test-fault": "origin:fail" } });
  expectError(assert, res, 502, "origin_unreachable", "Origin unreachable");
  res = await kw.api.call("GET", "/health");
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.path, "/health");
});

test("an address guard that fails or stalls: the invalid key is still refused, within the deadline", async () => {
  for (const fault of ["ip-guard:fail", "ip-guard:stall"]) {
    const started = Date.now();
    const res = await kw.api.call("GET", "/things", {
      key: "kw_dev_not-a-key",
      headers: { "x-keyward-test-fault": fault, "cf-connecting-ip": "198.51.100.200" },
    });
    expectError(assert, res, 401, "invalid_key");
    assert.ok(Date.now() - started < STORAGE_TIMEOUT_S * 1000 + 1500, fault);
  }
  // The counts were lost, not the address's guard: three healthy failures block.
  for (let i = 0; i < 3; i++) {
    await kw.api.call("GET", "/things", { key: "kw_dev_not-a-key", headers: { "cf-connecting-ip": "198.51.100.200" } });
  }
  expectError(assert, await kw.api.call("GET", "/things", { key: "kw_dev_not-a-key", headers: { "cf-connecting-ip": "198.51.100.200" } }), 403, "ip_blocked");
});

test("a malformed fault header is 400 naming it", async () => {
  const k = await key();
  const res = await kw.api.call("GET", "/things", { key: k.key, headers: { "x-keyward-test-fault": "disk:melt" } });
  expectError(assert, res, 400, "invalid_request");
  assert.equal(res.json.field, "x-keyward-test-fault");
});
