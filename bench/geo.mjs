// `make geo`: geography, simulated (issue 21 §1). Starts keyward under `wrangler
// dev` with TEST_GEO=weur (the admin is in Western Europe; every object call waits
// the round trip between its caller's region and the object's, src/request/regions.rs)
// and OBJECT_STATS=true, beside the bare forwarder of bench/bare, and prints per
// client region the latency keyward adds over the forwarder (p50/p99) for:
//   1. a key created from Europe, used from Oceania (quiet: one request at a time;
//      sustained: GEO_CONCURRENCY at once);
//   2. one key used from three regions at once;
//   3. an account with account-wide limits whose keys are used from three regions;
//   4. a revocation: the first request from every region sent after its call answered;
// and the object calls per gated request of each, from the objects' own counters.
// Writes bench/GEO.md and its section of BENCHMARKS.md.
//   5. one key with sustained traffic from three regions at once (budget leases),
//      and an account with account-wide limits, one key per region: added latency
//      after a warm-up, exactness against a per-minute limit (the key's; the
//      account's), and a revocation (a plan change) under that load refused in
//      every region once it answered;
// Env: GEO_REQUESTS (per region and scenario, default 200), GEO_CONCURRENCY (8),
// GEO_SUSTAINED_SECONDS (8; the first 2 s are the warm-up),
// GEO_SUSTAINED_CONCURRENCY (2 per region).
import fs from "node:fs";
import path from "node:path";
import { ROOT, client, frozenBuild, objectStats, startKeyward, startOrigin, tempDir } from "../tests/e2e/harness.mjs";
import { writeSection } from "./section.mjs";

const REQUESTS = Number(process.env.GEO_REQUESTS ?? 200);
const CONCURRENCY = Number(process.env.GEO_CONCURRENCY ?? 8);
const THREE = ["oc", "enam", "weur"];
const SUSTAINED_S = Number(process.env.GEO_SUSTAINED_SECONDS ?? 8);
// Connections per region for sustained traffic: enough to be sustained (over 8
// requests a second), few enough that the two cores this runs on (client, dev
// proxy and workerd together) are not saturated, which would measure CPU, not
// geography.
const SUSTAINED_C = Number(process.env.GEO_SUSTAINED_CONCURRENCY ?? 2);
const WARM_MS = 2000;

const pctl = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

const origin = await startOrigin();
const persistDir = tempDir("geo");
const kw = await startKeyward({
  originUrl: origin.url,
  persistDir,
  config: frozenBuild(),
  vars: {
    TEST_GEO: "weur",
    OBJECT_STATS: "true",
    BREAKER_ENABLED: "false",
    IP_BLOCK_THRESHOLD: "0",
    PLANS: JSON.stringify({
      open: { api_access: true },
      shared: { api_access: true, account_limits: { per_minute: 1_000_000 } },
      shared600: { api_access: true, account_limits: { per_minute: 600 } },
      closed: { api_access: false },
    }),
    DEFAULT_PLAN: "open",
  },
});
const forwarder = await startKeyward({ originUrl: origin.url, config: path.join(ROOT, "bench/bare/forwarder.toml") });
const api = client(kw.base);
const bare = client(forwarder.base);

/** Latencies (ms) of `n` requests with `key` from `region`, `concurrency` at once. */
async function load(c, key, region, n, concurrency) {
  const ms = [];
  let sent = 0;
  let failed = 0;
  const headers = region ? { "x-keyward-test-region": region } : {};
  const one = async () => {
    while (sent < n) {
      sent++;
      const t = performance.now();
      const res = await c.call("GET", "/things", { key, headers });
      ms.push(performance.now() - t);
      if (res.status !== 200) failed++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, one));
  if (failed) throw new Error(`${failed} of ${n} requests from ${region} were refused`);
  return ms;
}

/**
 * `concurrency` connections from `region`, one request after another, until
 * `stop.now`: each request's start, latency and status.
 */
async function sustain(c, key, region, concurrency, stop) {
  const out = [];
  const headers = { "x-keyward-test-region": region };
  const one = async () => {
    while (!stop.now) {
      const at = performance.now();
      const res = await c.call("GET", "/things", { key, headers });
      out.push({ at, ms: performance.now() - at, status: res.status, code: res.json?.code });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, one));
  return out;
}
const pause = (ms) => new Promise((r) => setTimeout(r, ms));

/** The calls every object has served so far, by object. */
function calls() {
  return objectStats(persistDir).reduce((sum, o) => sum + (o.calls ?? 0), 0);
}

// The forwarder's own latency at each concurrency: what keyward adds is measured
// over it, so the origin and the local machine cancel out.
const base = {};
// (Three regions at once are 3 × CONCURRENCY connections on this machine.)
for (const c of [...new Set([1, CONCURRENCY, 3 * SUSTAINED_C])]) {
  await load(bare, undefined, undefined, 50, c); // warm
  const ms = await load(bare, undefined, undefined, REQUESTS, c);
  base[c] = { p50: pctl(ms, 50), p99: pctl(ms, 99) };
}

const rows = [];
/** Runs `fn` (which sends `requests` gated requests) and records its rows and calls per request. */
async function scenario(name, requests, fn) {
  const before = calls();
  const measured = await fn();
  const perRequest = (calls() - before) / requests;
  for (const m of measured) rows.push({ scenario: name, ...m, calls: perRequest });
}
const added = (ms, c) => ({ p50: pctl(ms, 50) - base[c].p50, p99: pctl(ms, 99) - base[c].p99 });

let seq = 0;
const account = (label) => `geo-${label}-${Date.now().toString(36)}-${seq++}`;
// Keys are created by the admin, in weur (TEST_GEO's region): where production
// creates their objects; they move near their clients on first use.
const create = async (body) => api.createKey({ name: "geo", ...body });

// 1. Created from Europe, used from Oceania: its first request there moves its
// object to oc (objects::key::placement); the first request pays the round trip.
const moved = {};
{
  const k = await create({ account: account("far") });
  const t0 = performance.now();
  [moved.firstMs] = await load(api, k.key, "oc", 1, 1);
  for (moved.requests = 1; ; moved.requests++) {
    const [ms] = await load(api, k.key, "oc", 1, 1);
    if (ms < base[1].p50 + 40) break;
    if (moved.requests > 100) throw new Error("the key's object did not move to oc");
  }
  moved.ms = performance.now() - t0;
  await scenario("created in weur, used from oc (moved there), quiet", REQUESTS, async () => [
    { region: "oc", concurrency: 1, ...added(await load(api, k.key, "oc", REQUESTS, 1), 1) },
  ]);
  await scenario(`created in weur, used from oc (moved there), ${CONCURRENCY} at once`, REQUESTS, async () => [
    { region: "oc", concurrency: CONCURRENCY, ...added(await load(api, k.key, "oc", REQUESTS, CONCURRENCY), CONCURRENCY) },
  ]);
}

// 1b. The same, for an account that declared its region (oc): the key is still
// created by the admin in weur, its objects are made in oc.
{
  const a = account("declared");
  const put = await api.admin("PUT", `/accounts/${a}`, { plan: "open", region: "oc" });
  if (put.status !== 200) throw new Error(`region: ${put.status} ${put.text}`);
  const k = await create({ account: a });
  await load(api, k.key, "oc", 5, 1);
  await scenario("account declared oc, created in weur, used from oc, quiet", REQUESTS, async () => [
    { region: "oc", concurrency: 1, ...added(await load(api, k.key, "oc", REQUESTS, 1), 1) },
  ]);
  await scenario(`account declared oc, created in weur, used from oc, ${CONCURRENCY} at once`, REQUESTS, async () => [
    { region: "oc", concurrency: CONCURRENCY, ...added(await load(api, k.key, "oc", REQUESTS, CONCURRENCY), CONCURRENCY) },
  ]);
}

// 2. One key, three regions at once.
{
  const k = await create({ account: account("three") });
  await scenario("one key from three regions at once", REQUESTS * THREE.length, async () => {
    const all = await Promise.all(THREE.map((r) => load(api, k.key, r, REQUESTS, CONCURRENCY)));
    return THREE.map((r, i) => ({ region: r, concurrency: CONCURRENCY, ...added(all[i], CONCURRENCY) }));
  });
}

// 3. An account with account-wide limits, one key per region.
{
  const a = account("shared");
  const put = await api.admin("PUT", `/accounts/${a}`, { plan: "shared" });
  if (put.status !== 200) throw new Error(`plan: ${put.status} ${put.text}`);
  const keys = await Promise.all(THREE.map(() => create({ account: a })));
  await scenario("account-wide limits, its keys from three regions", REQUESTS * THREE.length, async () => {
    const all = await Promise.all(THREE.map((r, i) => load(api, keys[i].key, r, REQUESTS, CONCURRENCY)));
    return THREE.map((r, i) => ({ region: r, concurrency: CONCURRENCY, ...added(all[i], CONCURRENCY) }));
  });
}

// 5. Sustained traffic from three regions: budget leases admit near each region.
/**
 * `SUSTAINED_C` connections from each of THREE regions (with `keys[i]`) for
 * SUSTAINED_S, then `change()` under that load and a second more: the latency
 * added after the warm-up, object calls per request sent between the warm-up
 * and the change, how long the change took to answer, and the requests sent
 * after its answer that were still admitted.
 */
async function sustainedRun(keys, change, refused) {
  const stop = { now: false };
  const started = performance.now();
  const runs = THREE.map((r, i) => sustain(api, keys[i], r, SUSTAINED_C, stop));
  await pause(WARM_MS);
  const before = calls();
  const warmed = performance.now();
  await pause(SUSTAINED_S * 1000 - WARM_MS);
  const during = calls() - before;
  const t = performance.now();
  const changed = await change();
  const answered = performance.now();
  if (changed.status !== 200) throw new Error(`change: ${changed.status} ${changed.text}`);
  await pause(1000);
  stop.now = true;
  const all = await Promise.all(runs);
  const requests = all.flat().filter((x) => x.at >= warmed && x.at < t).length;
  return {
    changeMs: answered - t,
    calls: during / requests,
    rows: THREE.map((r, i) => {
      const warm = all[i].filter((x) => x.at >= warmed && x.at + x.ms < t).map((x) => x.ms);
      const after = all[i].filter((x) => x.at > answered);
      return {
        region: r,
        requests: warm.length,
        ...added(warm, 3 * SUSTAINED_C),
        after: after.length,
        admittedAfter: after.filter((x) => x.status !== refused).length,
      };
    }),
  };
}
/** The same traffic for SUSTAINED_S: admitted and refused. */
async function exactRun(keys) {
  const stop = { now: false };
  const runs = THREE.map((r, i) => sustain(api, keys[i], r, SUSTAINED_C, stop));
  await pause(SUSTAINED_S * 1000);
  stop.now = true;
  const all = (await Promise.all(runs)).flat();
  return { admitted: all.filter((x) => x.status === 200).length, refused: all.filter((x) => x.status === 429).length };
}
let sustained;
{
  const k = await create({ account: account("sustained") });
  sustained = await sustainedRun([k.key, k.key, k.key], () => api.admin("POST", `/keys/${k.id}/revoke`, {}), 401);
}
// 5b. The same against a per-minute limit: admissions across regions never past it.
{
  const LIMIT = 600;
  const k = await create({ account: account("exact"), rate_limits: { per_minute: LIMIT } });
  Object.assign(sustained, { limit: LIMIT, ...(await exactRun([k.key, k.key, k.key])) });
}
// 5c. An account with account-wide limits, one key per region, sustained: slices of
// the account's limits admit near each region; a plan change under that load.
let wide;
{
  const a = account("wide");
  await api.admin("PUT", `/accounts/${a}`, { plan: "shared" });
  const keys = (await Promise.all(THREE.map(() => create({ account: a })))).map((k) => k.key);
  wide = await sustainedRun(keys, () => api.admin("PUT", `/accounts/${a}`, { plan: "closed" }), 403);
}
// 5d. Against an account-wide per-minute limit of 600.
{
  const a = account("wide-exact");
  await api.admin("PUT", `/accounts/${a}`, { plan: "shared600" });
  const keys = (await Promise.all(THREE.map(() => create({ account: a })))).map((k) => k.key);
  Object.assign(wide, { limit: 600, ...(await exactRun(keys)) });
}

// 4. A revocation from weur: the first request from each region sent after it answered.
const revocation = [];
{
  const k = await create({ account: account("revoke") });
  for (const r of THREE) await load(api, k.key, r, 3, 1);
  const t = performance.now();
  const revoked = await api.admin("POST", `/keys/${k.id}/revoke`, {});
  const revokeMs = performance.now() - t;
  if (revoked.status !== 200) throw new Error(`revoke: ${revoked.status} ${revoked.text}`);
  for (const r of ["oc", "enam", "weur", "apac", "sam"]) {
    const s = performance.now();
    const res = await api.call("GET", "/things", { key: k.key, headers: { "x-keyward-test-region": r } });
    revocation.push({ region: r, status: res.status, code: res.json?.code, ms: performance.now() - s, revokeMs });
  }
}

await kw.stop();
await forwarder.stop();
await origin.stop();

const f = (x) => x.toFixed(1);
const lines = [
  "## Geography, simulated (`make geo`)",
  "",
  `Round trips of \`src/request/regions.rs\` (public figures; 5 ms within a region); the admin, and so every object, in weur; ${REQUESTS} requests per region and scenario; added latency = keyward's percentile − the bare forwarder's at the same concurrency (forwarder p50/p99: ${f(base[1].p50)}/${f(base[1].p99)} ms one at a time, ${f(base[CONCURRENCY].p50)}/${f(base[CONCURRENCY].p99)} ms ${CONCURRENCY} at once). Object calls per request from the objects' own counters (settlements included).`,
  "",
  "| scenario | client region | at once | added p50 ms | added p99 ms | object calls / request |",
  "|---|---|---|---|---|---|",
  ...rows.map((r) => `| ${r.scenario} | ${r.region} | ${r.concurrency} | ${f(r.p50)} | ${f(r.p99)} | ${r.calls.toFixed(2)} |`),
  "",
  `A key created in weur and first used from oc: its first request took ${f(moved.firstMs)} ms (the round trip to weur); its object had moved to oc ${f(moved.ms)} ms later, after ${moved.requests} requests; the rows above are after the move.`,
  "",
  `Revocation (called from weur, answered in ${f(revocation[0].revokeMs)} ms): the first request sent after it answered, per region:`,
  "",
  "| region | answer | its latency ms |",
  "|---|---|---|",
  ...revocation.map((r) => `| ${r.region} | ${r.status} \`${r.code ?? ""}\` | ${f(r.ms)} |`),
  "",
];
const sustainedTable = (r, what) => [
  `${what} (${SUSTAINED_C} at once from each of ${THREE.join(", ")}, ${SUSTAINED_S} s, the first ${WARM_MS / 1000} s excluded; added over the forwarder at ${3 * SUSTAINED_C} at once, p50/p99 ${f(base[3 * SUSTAINED_C].p50)}/${f(base[3 * SUSTAINED_C].p99)} ms): ${r.calls.toFixed(3)} object calls per request after the warm-up.`,
];
lines.push(
  ...sustainedTable(sustained, "One key with sustained traffic"),
  `Revoked under that load from weur, answered in ${f(sustained.changeMs)} ms (it waits out the leases):`,
  "",
  "| client region | requests | added p50 ms | added p99 ms | sent after the revoke answered | of them admitted |",
  "|---|---|---|---|---|---|",
  ...sustained.rows.map((r) => `| ${r.region} | ${r.requests} | ${f(r.p50)} | ${f(r.p99)} | ${r.after} | ${r.admittedAfter} |`),
  "",
  `Against a per-minute limit of ${sustained.limit}, the same traffic for ${SUSTAINED_S} s: ${sustained.admitted} admitted across the three regions, ${sustained.refused} refused (over-admission: ${Math.max(0, sustained.admitted - sustained.limit)}).`,
  "",
  ...sustainedTable(wide, "An account with account-wide limits, one key per region, sustained traffic"),
  `Its plan changed under that load (to one without API access), from weur, answered in ${f(wide.changeMs)} ms (it waits out the slices):`,
  "",
  "| client region | requests | added p50 ms | added p99 ms | sent after the change answered | of them admitted |",
  "|---|---|---|---|---|---|",
  ...wide.rows.map((r) => `| ${r.region} | ${r.requests} | ${f(r.p50)} | ${f(r.p99)} | ${r.after} | ${r.admittedAfter} |`),
  "",
  `Against an account-wide per-minute limit of ${wide.limit}, the same traffic for ${SUSTAINED_S} s: ${wide.admitted} admitted across the three regions, ${wide.refused} refused (over-admission: ${Math.max(0, wide.admitted - wide.limit)}).`,
  "",
);
const md = lines.join("\n") + "\n";
fs.writeFileSync(path.join(ROOT, "bench/GEO.md"), md);
writeSection("## Geography, simulated", md);
console.log(md);
const over = (r) => r.admitted > r.limit || r.rows.some((x) => x.admittedAfter > 0);
if (over(sustained) || over(wide)) {
  console.log("over-admission, or a request admitted after a change answered");
  process.exitCode = 1;
}
if (revocation.some((r) => r.status !== 401)) {
  console.log("a revoked key was admitted after its revoke answered");
  process.exitCode = 1;
}
