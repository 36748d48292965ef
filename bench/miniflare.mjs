// The benchmark closer to production (issue 21 §5): keyward and the two bare
// baselines under workerd through Miniflare's API (the npm package wrangler
// brings), without wrangler's dev proxy and inspector, which report every fetch
// subrequest to wrangler's Node process and so hide a worker's own cost. keyward
// runs the bundle `wrangler deploy --dry-run` makes (what `make deploy` uploads).
// `make bench` runs it after the `wrangler dev` scenarios; it writes
// bench/MINIFLARE.md, which BENCHMARKS.md includes.
// Besides requests per second it prints workerd's CPU per request (user + system
// time of the workerd processes, read from /proc around each run: the worker and
// its objects together, as one process serves both), and, from a second keyward
// with OBJECT_STATS=true (the objects' own counters, one more write per call, so
// not the instance timed), the billed object calls per request of a quiet key
// (2 requests a second, one at a time: below the budget leases' sustained
// rate), one key on one connection as fast as it goes (sustained: leased), a
// hot key (16 at once) and 16 keys; and the Wasm module's size per part
// (`wasm_parts.mjs`).
// Env: BENCH_SECONDS (per scenario and round, default 8), BENCH_ROUNDS (4).
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { Miniflare } from "miniflare";
import { ROOT, client, objectStats, startOrigin, tempDir } from "../tests/e2e/harness.mjs";
import { writeSection } from "./section.mjs";
import { wasmParts } from "./wasm_parts.mjs";
import { ensureWrk, wrk } from "./wrk.mjs";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 4);
const CONNECTIONS = 16;
const LINGER_MS = 1000; // SETTLE_LINGER_MS's default
const PLAN_LEASE_S = 5; // PLAN_LEASE_SECONDS's default
const TOKEN = "bench-admin-token-0123456789abcdef";
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
};

ensureWrk();

// CPU seconds (user + system) so far of every workerd process this one started.
const TICK = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
function workerdCpuSeconds() {
  let total = 0;
  for (const pid of fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      if (name !== "workerd") continue;
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      // Field 4 (after the name) is the parent; 12 and 13 user and system ticks.
      if (!descends(Number(pid))) continue;
      total += (Number(f[11]) + Number(f[12])) / TICK;
    } catch {}
  }
  return total;
}
function descends(pid) {
  for (let p = pid, hops = 0; p > 1 && hops < 16; hops++) {
    if (p === process.pid) return true;
    const stat = fs.readFileSync(`/proc/${p}/stat`, "utf8");
    p = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  }
  return false;
}
const origin = await startOrigin();
const bundle = tempDir("bundle");
execFileSync(path.join(ROOT, "node_modules/.bin/wrangler"), ["deploy", "--dry-run", "--outdir", bundle], {
  cwd: ROOT,
  env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
  stdio: ["ignore", "ignore", "inherit"],
});
const wasmRule = [{ type: "CompiledWasm", include: ["**/*.wasm"], fallthrough: true }];
const common = { modules: true, compatibilityDate: "2025-09-01", host: "127.0.0.1", port: 0 };

const started = performance.now();
const keywardOptions = (extra = {}) => ({
  ...common,
  name: "keyward",
  modulesRoot: bundle,
  scriptPath: path.join(bundle, "entry.js"),
  modulesRules: wasmRule,
  kvNamespaces: ["KEYS"],
  durableObjects: Object.fromEntries(
    [["KEY_OBJECTS", "KeyObject"], ["ACCOUNT_OBJECTS", "AccountObject"], ["IP_GUARDS", "IpGuard"], ["DIRECTORY", "Directory"]].map(
      ([binding, className]) => [binding, { className, useSQLite: true }],
    ),
  ),
  bindings: {
    ENVIRONMENT: "development",
    ALLOW_HTTP: "true",
    ORIGIN_URL: origin.url,
    ADMIN_TOKEN: TOKEN,
    PLANS: JSON.stringify({ open: { api_access: true } }),
    DEFAULT_PLAN: "open",
    BREAKER_FLOOR: "1000000000000",
    IP_BLOCK_THRESHOLD: "0",
    ...extra.bindings,
  },
  ...extra.options,
});
const keyward = new Miniflare(keywardOptions());
const kwUrl = (await keyward.ready).href.replace(/\/$/, "");
const api = client(kwUrl);
const first = await api.call("GET", "/health");
const coldMs = performance.now() - started;
if (first.status !== 200) throw new Error(`keyward under Miniflare: ${first.status} ${first.text}`);

const forwarder = new Miniflare({
  ...common,
  scriptPath: path.join(ROOT, "bench/bare/forwarder.js"),
  bindings: { ORIGIN_URL: origin.url },
});
const oneHop = new Miniflare({
  ...common,
  scriptPath: path.join(ROOT, "bench/bare/one_hop.js"),
  durableObjects: { COUNTER: { className: "Counter", useSQLite: true } },
  bindings: { ORIGIN_URL: origin.url },
});
const fwUrl = (await forwarder.ready).href.replace(/\/$/, "");
const ohUrl = (await oneHop.ready).href.replace(/\/$/, "");

const create = async (name, on = api) => {
  const res = await on.call("POST", "/admin/v1/keys", { key: TOKEN, body: { account: "bench", name } });
  if (res.status !== 201) throw new Error(`create: ${res.status} ${res.text}`);
  return res.json.key;
};
const hot = await create("hot");
const spread = [];
for (let i = 0; i < CONNECTIONS; i++) spread.push(await create(`spread ${i}`));

const scenarios = [
  { name: "bare forwarder (JS, baseline)", url: `${fwUrl}/things` },
  { name: "bare one-hop worker (JS + 1 DO write, baseline)", url: `${ohUrl}/things` },
  { name: "keyward public path", url: `${kwUrl}/health` },
  { name: "keyward, one hot valid key (16 connections)", url: `${kwUrl}/things`, key: hot },
  { name: "keyward, 16 valid keys, one connection each", url: `${kwUrl}/things`, key: spread },
];
for (const s of scenarios) wrk(s.url, s.key, 2, CONNECTIONS); // warm-up
const results = scenarios.map(() => []);
// The public path and the forwarder run next to each other, the public path
// first in every other round (the machine's speed drifts over a run, and the
// second of two runs measured a few percent slower in A/B runs of one build),
// after the previous round's last settlements have gone out (they are the
// keyed scenarios' work, not the public path's).
const FW = 0;
const PUB = 2;
const order = (round) => (round % 2 === 0 ? [FW, PUB, 1, 3, 4] : [PUB, FW, 1, 3, 4]);
for (let round = 0; round < ROUNDS; round++) {
  if (round > 0) await new Promise((r) => setTimeout(r, LINGER_MS + 500));
  order(round).forEach((i) => {
    const s = scenarios[i];
    const cpu = workerdCpuSeconds();
    const r = wrk(s.url, s.key, SECONDS, CONNECTIONS);
    r.cpu_ms = ((workerdCpuSeconds() - cpu) * 1000) / Math.max(1, r.requests);
    const unexpected = r.requests - (r.statuses["200"] ?? 0) + r.socket_errors;
    if (unexpected > 0) throw new Error(`${s.name}: ${unexpected} answers were not 200: ${JSON.stringify(r.statuses)}`);
    results[i].push(r);
    console.log(`miniflare round ${round + 1} ${s.name.padEnd(48)} ${r.rps.toFixed(0).padStart(6)} req/s  p50 ${r.p50_ms.toFixed(2)} ms  p99 ${r.p99_ms.toFixed(2)} ms  cpu ${r.cpu_ms.toFixed(3)} ms/req`);
  });
}
await Promise.all([keyward.dispose(), forwarder.dispose(), oneHop.dispose()]);

// Billed object calls per request, from the objects' own counters.
const statsDir = tempDir("miniflare-stats");
const counted = new Miniflare(
  keywardOptions({ bindings: { OBJECT_STATS: "true" }, options: { durableObjectsPersist: path.join(statsDir, "v3/do") } }),
);
const countedUrl = (await counted.ready).href.replace(/\/$/, "");
const countedApi = client(countedUrl);
const allCalls = () => objectStats(statsDir).reduce((n, o) => n + (o.calls ?? 0), 0);
const costs = [];
for (const [name, connections, many] of [
  ["one key, one connection (wrk, as fast as it answers)", 1, false],
  ["hot key (16 at once)", CONNECTIONS, false],
  ["16 keys, one connection each", CONNECTIONS, true],
]) {
  const keys = many ? [] : [await create(name, countedApi)];
  for (let i = 0; many && i < CONNECTIONS; i++) keys.push(await create(`${name} ${i}`, countedApi));
  wrk(`${countedUrl}/things`, many ? keys : keys[0], 1, connections); // first use, leases
  // The warm-up's last settlements go out on their own after SETTLE_LINGER_MS
  // (1000, the default): not this run's calls.
  await new Promise((r) => setTimeout(r, LINGER_MS + 500));
  const before = allCalls();
  const r = wrk(`${countedUrl}/things`, many ? keys : keys[0], SECONDS, connections);
  await new Promise((r) => setTimeout(r, LINGER_MS + 500)); // the run's last settlements
  costs.push({ name, hot: connections > 1 && !many, requests: r.requests, calls: allCalls() - before });
}
// A quiet key: 2 requests a second, one at a time, for 20 s (below the budget
// leases' sustained rate: each request asks its key's object).
const paced = {};
{
  const key = await create("quiet", countedApi);
  await countedApi.call("GET", "/things", { key });
  await new Promise((r) => setTimeout(r, LINGER_MS + 500));
  const before = allCalls();
  const QUIET = 40;
  for (let i = 0; i < QUIET; i++) {
    const res = await countedApi.call("GET", "/things", { key });
    if (res.status !== 200) throw new Error(`quiet key: ${res.status} ${res.text}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  await new Promise((r) => setTimeout(r, LINGER_MS + 500));
  paced.requests = QUIET;
  paced.calls = allCalls() - before;
}
await counted.dispose();
await origin.stop();

const rows = scenarios.map((s, i) => ({
  name: s.name,
  cpu: median(results[i].map((r) => r.cpu_ms)),
  rps: median(results[i].map((r) => r.rps)),
  p50: median(results[i].map((r) => r.p50_ms)),
  p99: median(results[i].map((r) => r.p99_ms)),
}));
const [fw, oh, pub, hotRow, spreadRow] = rows;
const x = (a, b) => `${(a.rps / b.rps).toFixed(2)}×`;
// The public path over the forwarder it ran next to, round by round.
const paired = results[PUB].map((r, round) => r.rps / results[FW][round].rps);
const pairedRatio = median(paired);
const targets = [
  ["one hot key ≥ 1.0× the bare one-hop worker", x(hotRow, oh), hotRow.rps >= oh.rps],
  ["16 keys ≥ 0.9× the bare one-hop worker", x(spreadRow, oh), spreadRow.rps >= 0.9 * oh.rps],
  [
    "public path ≥ 0.9× the bare forwarder (median of the rounds' adjacent pairs)",
    `${pairedRatio.toFixed(2)}× (rounds: ${paired.map((r) => r.toFixed(2)).join(", ")})`,
    pairedRatio >= 0.9,
  ],
  ...costs.map((c, i) => {
    const per = c.calls / Math.max(1, c.requests);
    const target = c.hot ? 0.25 : 1.0;
    return [`${c.name}: ≤ ${target.toFixed(2)} object calls per request`, `${per.toFixed(3)} (${c.calls} calls, ${c.requests} requests)`, per <= target];
  }),
];
const wasm = fs.readdirSync(bundle).find((f) => f.endsWith(".wasm"));
// Sections of the deployed module; its code per part from the copy with names
// (the same functions; its code section differs by re-encoding, under 0.5%).
const deployed = wasmParts(path.join(bundle, wasm)).sections;
const code = deployed.find(([n]) => n === "code")?.[1] ?? 0;
const data = deployed.find(([n]) => n === "data")?.[1] ?? 0;
const parts = wasmParts(path.join(ROOT, "target/keyward-names.wasm"));
const named = parts.code.reduce((n, [, b]) => n + b, 0);
const top = parts.code.slice(0, 14);
const rest = parts.code.slice(14).reduce((n, [, b]) => n + b, 0);
const md = [
  "## Under Miniflare: no dev proxy (`make bench`)",
  "",
  `workerd through Miniflare's API, the deploy bundle (entry.js ${fs.statSync(path.join(bundle, "entry.js")).size} B, Wasm ${fs.statSync(path.join(bundle, wasm)).size} B); wrk, ${CONNECTIONS} connections, medians of ${ROUNDS} rounds of ${SECONDS} s (in each round the forwarder and the public path run next to each other, alternating which goes first); keyward's start to its first answer: ${coldMs.toFixed(0)} ms.`,
  "",
  "| scenario | req/s | p50 ms | p99 ms | workerd CPU ms/request | × forwarder | × one-hop |",
  "|---|---|---|---|---|---|---|",
  ...rows.map((r) => `| ${r.name} | ${r.rps.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.cpu.toFixed(3)} | ${x(r, fw)} | ${x(r, oh)} |`),
  "",
  "| target | measured | |",
  "|---|---|---|",
  ...targets.map(([t, m, ok]) => `| ${t} | ${m} | ${ok ? "met" : "missed"} |`),
  "",
  `A quiet key paced at 2 requests a second (below the budget leases' sustained rate, so each request asks its key's object): ${(paced.calls / paced.requests).toFixed(3)} object calls per request (${paced.calls} calls, ${paced.requests} requests: one check each, the settlements riding the next check, the account's plan lease renewed every ${PLAN_LEASE_S / 2} s, the last settlement alone).`,
  "",
  `Wasm size per part (\`bench/wasm_parts.mjs\`): code ${code} B, data ${data} B (strings, tables), the rest ${fs.statSync(path.join(bundle, wasm)).size - code - data} B (imports, exports, types); the code's function bodies by the crate (keyward's by folder) their names say:`,
  "",
  "| part | bytes of code | share |",
  "|---|---|---|",
  ...top.map(([n, b]) => `| \`${n}\` | ${b} | ${((100 * b) / named).toFixed(1)}% |`),
  `| the rest (${parts.code.length - top.length} parts) | ${rest} | ${((100 * rest) / named).toFixed(1)}% |`,
  "",
].join("\n");
fs.writeFileSync(path.join(ROOT, "bench/MINIFLARE.md"), md + "\n");
// Run alone, it brings BENCHMARKS.md's section up to date too.
writeSection("## Under Miniflare", md + "\n");
console.log("\n" + md);
