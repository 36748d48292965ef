// The benchmark closer to production (issue 21 §5): keyward and the two bare
// baselines under workerd through Miniflare's API (the npm package wrangler
// brings), without wrangler's dev proxy and inspector, which report every fetch
// subrequest to wrangler's Node process and so hide a worker's own cost. keyward
// runs the bundle `wrangler deploy --dry-run` makes (what `make deploy` uploads).
// `make bench` runs it after the `wrangler dev` scenarios; it writes
// bench/MINIFLARE.md, which BENCHMARKS.md includes.
// Env: BENCH_SECONDS (per scenario and round, default 8), BENCH_ROUNDS (3).
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { Miniflare } from "miniflare";
import { ROOT, client, startOrigin, tempDir } from "../tests/e2e/harness.mjs";
import { ensureWrk, wrk } from "./wrk.mjs";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = 16;
const TOKEN = "bench-admin-token-0123456789abcdef";
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

ensureWrk();
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
const keyward = new Miniflare({
  ...common,
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
  },
});
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

const create = async (name) => {
  const res = await api.call("POST", "/admin/v1/keys", { key: TOKEN, body: { account: "bench", name } });
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
for (let round = 0; round < ROUNDS; round++) {
  scenarios.forEach((s, i) => {
    const r = wrk(s.url, s.key, SECONDS, CONNECTIONS);
    const unexpected = r.requests - (r.statuses["200"] ?? 0) + r.socket_errors;
    if (unexpected > 0) throw new Error(`${s.name}: ${unexpected} answers were not 200: ${JSON.stringify(r.statuses)}`);
    results[i].push(r);
    console.log(`miniflare round ${round + 1} ${s.name.padEnd(48)} ${r.rps.toFixed(0).padStart(6)} req/s  p50 ${r.p50_ms.toFixed(2)} ms  p99 ${r.p99_ms.toFixed(2)} ms`);
  });
}
await Promise.all([keyward.dispose(), forwarder.dispose(), oneHop.dispose()]);
await origin.stop();

const rows = scenarios.map((s, i) => ({
  name: s.name,
  rps: median(results[i].map((r) => r.rps)),
  p50: median(results[i].map((r) => r.p50_ms)),
  p99: median(results[i].map((r) => r.p99_ms)),
}));
const [fw, oh, pub, hotRow, spreadRow] = rows;
const x = (a, b) => `${(a.rps / b.rps).toFixed(2)}×`;
const targets = [
  ["one hot key ≥ 1.0× the bare one-hop worker", x(hotRow, oh), hotRow.rps >= oh.rps],
  ["16 keys ≥ 0.9× the bare one-hop worker", x(spreadRow, oh), spreadRow.rps >= 0.9 * oh.rps],
  ["public path ≥ 0.9× the bare forwarder", x(pub, fw), pub.rps >= 0.9 * fw.rps],
];
const wasm = fs.readdirSync(bundle).find((f) => f.endsWith(".wasm"));
const md = [
  "## Under Miniflare: no dev proxy (`make bench`)",
  "",
  `workerd through Miniflare's API, the deploy bundle (entry.js ${fs.statSync(path.join(bundle, "entry.js")).size} B, Wasm ${fs.statSync(path.join(bundle, wasm)).size} B); wrk, ${CONNECTIONS} connections, medians of ${ROUNDS} rounds of ${SECONDS} s; keyward's start to its first answer: ${coldMs.toFixed(0)} ms.`,
  "",
  "| scenario | req/s | p50 ms | p99 ms | × forwarder | × one-hop |",
  "|---|---|---|---|---|---|",
  ...rows.map((r) => `| ${r.name} | ${r.rps.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${x(r, fw)} | ${x(r, oh)} |`),
  "",
  "| target | measured | |",
  "|---|---|---|",
  ...targets.map(([t, m, ok]) => `| ${t} | ${m} | ${ok ? "met" : "missed"} |`),
  "",
].join("\n");
fs.writeFileSync(path.join(ROOT, "bench/MINIFLARE.md"), md + "\n");
console.log("\n" + md);
