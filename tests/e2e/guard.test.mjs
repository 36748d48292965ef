// Failed attempts (issue 7 §6): IPv6 counted per /64 and IPv4 per address; wrong
// admin credentials count, and a blocked address is refused before the admin token
// is compared; per-address state is deleted once its window and block are over.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { before, test } from "node:test";
import { ADMIN_TOKEN, eventually, expectError, tempDir, useKeyward } from "./harness.mjs";

let origin, kw, api;
const WINDOW_S = 2;
const COOLDOWN_S = 2;

const setup = useKeyward({
  IP_BLOCK_THRESHOLD: "3",
  IP_BLOCK_WINDOW_SECONDS: String(WINDOW_S),
  IP_BLOCK_COOLDOWN_SECONDS: String(COOLDOWN_S),
});
before(async () => ({ origin, server: kw, api } = await setup.ready));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const from = (ip, key = "kw_dev_not-a-key") => api.call("GET", "/things", { key, headers: { "cf-connecting-ip": ip } });
const adminFrom = (ip, token) => api.call("GET", "/admin/v1/keys", { key: token, headers: { "cf-connecting-ip": ip } });

test("IPv6 addresses are counted per /64, IPv4 per address", async () => {
  for (const ip of ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff:ffff:ffff:ffff"]) {
    expectError(assert, await from(ip), 401, "invalid_key");
  }
  // A fourth address of the same /64 is already blocked; the next /64 is not.
  const blocked = await from("2001:db8:1:2:abcd::9");
  expectError(assert, blocked, 403, "ip_blocked", "IP temporarily blocked");
  assert.ok(Number(blocked.headers.get("retry-after")) >= 1);
  expectError(assert, await from("2001:db8:1:3::1"), 401, "invalid_key");

  for (const ip of ["198.51.100.1", "198.51.100.1", "198.51.100.1"]) expectError(assert, await from(ip), 401, "invalid_key");
  expectError(assert, await from("198.51.100.1"), 403, "ip_blocked");
  expectError(assert, await from("198.51.100.2"), 401, "invalid_key");
});

test("wrong admin credentials count, and a blocked address is refused before the token is compared", async () => {
  const attacker = "203.0.113.50";
  for (const guess of ["guess-1", "guess-2", "kw_dev_guess3"]) {
    expectError(assert, await adminFrom(attacker, guess), 401, "invalid_key");
  }
  // Even the right token is refused now, from that address only.
  const res = await adminFrom(attacker, ADMIN_TOKEN);
  expectError(assert, res, 403, "ip_blocked", "IP temporarily blocked");
  assert.ok(res.headers.get("retry-after"));
  assert.equal((await adminFrom("203.0.113.51", ADMIN_TOKEN)).status, 200);
  // Missing credentials count too.
  const bare = (ip) => api.call("GET", "/admin/v1/keys", { headers: { "cf-connecting-ip": ip } });
  for (let i = 0; i < 3; i++) expectError(assert, await bare("203.0.113.52"), 401, "invalid_key");
  expectError(assert, await adminFrom("203.0.113.52", ADMIN_TOKEN), 403, "ip_blocked");
  await eventually(async () => assert.equal((await adminFrom(attacker, ADMIN_TOKEN)).status, 200, "the block ends with its cooldown"), COOLDOWN_S * 1000 + 3000);
});

/** Tables and alarms left in the address objects' storage (python3's sqlite3). */
function guardStorage(persistDir) {
  const script = path.join(tempDir("inspect"), "inspect.py");
  fs.writeFileSync(
    script,
    [
      "import glob, json, sqlite3, sys",
      "out = {'objects': 0, 'tables': 0, 'rows': 0, 'alarms': 0, 'left': []}",
      "for f in glob.glob(sys.argv[1] + '/v3/do/keyward-IpGuard/*.sqlite'):",
      "    c = sqlite3.connect('file:' + f + '?mode=ro', uri=True, timeout=5)",
      "    names = [r[0] for r in c.execute(\"select name from sqlite_master where type = 'table'\")]",
      "    if f.endswith('metadata.sqlite'):",
      "        out['alarms'] += sum(c.execute('select count(*) from _cf_ALARM').fetchone()[0] for n in names if n == '_cf_ALARM')",
      "        continue",
      "    out['objects'] += 1",
      "    mine = [n for n in names if not n.startswith('_cf_')]",
      "    out['tables'] += len(mine)",
      "    for n in mine:",
      "        rows = c.execute('select * from \"%s\"' % n).fetchall()",
      "        out['rows'] += len(rows)",
      "        if len(out['left']) < 5: out['left'].append([n, [list(map(str, r)) for r in rows]])",
      "print(json.dumps(out))",
    ].join("\n"),
  );
  // A file being written may fail one read: read again.
  for (let attempt = 1; ; attempt++) {
    try {
      return JSON.parse(execFileSync("python3", [script, persistDir], { stdio: ["ignore", "pipe", "pipe"] }).toString());
    } catch (e) {
      if (attempt === 5) throw e;
    }
  }
}

test("after a flood from 1,000 distinct addresses, the guard's storage returns to empty", async () => {
  const addresses = Array.from({ length: 1000 }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.7`);
  for (let i = 0; i < addresses.length; i += 50) {
    const batch = await Promise.all(
      addresses.slice(i, i + 50).map(async (ip) => {
        const started = Date.now();
        return { res: await from(ip), ms: Date.now() - started };
      }),
    );
    for (const { res, ms } of batch) {
      assert.equal(res.status, 401);
      // Every call has a deadline (STORAGE_TIMEOUT_SECONDS, 5 s): none waits longer.
      assert.ok(ms < 10_000, `a flood request waited ${ms} ms`);
    }
  }
  // One object per address was written (the earliest may be clean already).
  const during = guardStorage(kw.persistDir);
  assert.ok(during.objects >= 1000, `expected the flood's objects, saw ${JSON.stringify(during)}`);
  assert.ok(during.rows > 0 && during.alarms > 0, JSON.stringify(during));
  // Each address's window (2 s) ends; its alarm deletes everything it kept.
  const after = await (async () => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const s = guardStorage(kw.persistDir);
      if ((s.tables === 0 && s.alarms === 0) || Date.now() > deadline) return s;
      await sleep(500);
    }
  })();
  assert.deepEqual(
    { tables: after.tables, rows: after.rows, alarms: after.alarms },
    { tables: 0, rows: 0, alarms: 0 },
    JSON.stringify(after.left),
  );
});
