// `make scale`: no hot object at any scale (issue 12), measured. Starts keyward
// under `wrangler dev` with OBJECT_STATS=true (every Durable Object counts the calls
// it serves), creates SCALE_ACCOUNTS accounts × SCALE_KEYS keys through the API plus
// one account of SCALE_BIG keys, drives mixed traffic and management actions,
// changes the big account's plan, then stops the server and reads every object's
// counter from the local state. Writes bench/SCALE.md (and its section of
// BENCHMARKS.md). Env: SCALE_ACCOUNTS (1000), SCALE_KEYS (20), SCALE_BIG (2000),
// SCALE_SECONDS of mixed traffic (60), SCALE_CONCURRENCY (16).
import fs from "node:fs";
import path from "node:path";
import { ROOT, client, frozenBuild, objectStats, startKeyward, startOrigin, tempDir } from "../tests/e2e/harness.mjs";
import { writeSection } from "./section.mjs";

const ACCOUNTS = Number(process.env.SCALE_ACCOUNTS ?? 1000);
const KEYS = Number(process.env.SCALE_KEYS ?? 20);
const BIG = Number(process.env.SCALE_BIG ?? 2000);
const SECONDS = Number(process.env.SCALE_SECONDS ?? 60);
const CONCURRENCY = Number(process.env.SCALE_CONCURRENCY ?? 16);

const account = (i) => `acct-${String(i).padStart(5, "0")}`;
// Each account's clients come from their own address (as they would).
const ipOf = (i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
const pick = (xs) => xs[Math.floor(Math.random() * xs.length)];

/** Runs `task(i)` for i in [0, n) with `CONCURRENCY` in flight. */
async function pool(n, task) {
  let next = 0;
  const worker = async () => {
    while (next < n) await task(next++);
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

// A frozen copy of the build: a long run is not restarted by edits meanwhile.
const config = frozenBuild();

const origin = await startOrigin();
const persistDir = tempDir("scale");
const kw = await startKeyward({
  originUrl: origin.url,
  persistDir,
  config,
  vars: { OBJECT_STATS: "true", BREAKER_ENABLED: "false", IP_BLOCK_THRESHOLD: "10" },
});
const api = client(kw.base);
const as = (i) => ({ "cf-connecting-ip": ipOf(i) });
const adminAs = async (i, method, p, body) => {
  const res = await api.call(method, `/admin/v1${p}`, { key: "e2e-admin-token", body, headers: as(i) });
  return res;
};

const keys = []; // { id, key, account, i }
const bigKeys = [];
const timings = {};
let t = performance.now();
let failures = 0;
const failedWith = {};
async function create(i, name, into) {
  const res = await adminAs(i, "POST", "/keys", { account: i < 0 ? "big-account" : account(i), name });
  if (res.status !== 201) {
    failures++;
    const why = `${res.status} ${res.json?.code ?? ""}`.trim();
    failedWith[why] = (failedWith[why] ?? 0) + 1;
    return;
  }
  into.push({ id: res.json.id, key: res.json.key, i });
}
console.log(`creating ${ACCOUNTS} accounts × ${KEYS} keys…`);
await pool(ACCOUNTS * KEYS, (n) => create(n % ACCOUNTS, `key ${Math.floor(n / ACCOUNTS)}`, keys));
timings.create = (performance.now() - t) / 1000;
console.log(`  ${keys.length} keys in ${timings.create.toFixed(0)} s; creating the big account's ${BIG}…`);
t = performance.now();
await pool(BIG, (n) => create(-1, `big ${n}`, bigKeys));
timings.createBig = (performance.now() - t) / 1000;

console.log(`mixed traffic for ${SECONDS} s…`);
const counts = { gate: 0, gate2xx: 0, management: 0, refused: 0, other: 0 };
const revoked = [];
const end = performance.now() + SECONDS * 1000;
await Promise.all(
  Array.from({ length: CONCURRENCY }, async () => {
    while (performance.now() < end) {
      const roll = Math.random();
      const k = pick(keys);
      if (roll < 0.9) {
        // A request through the gate with a live (or revoked) key.
        const key = roll < 0.02 && revoked.length ? pick(revoked).key : k.key;
        const res = await api.call("GET", "/things", { key, headers: as(k.i) });
        counts.gate++;
        if (res.status < 300) counts.gate2xx++;
        else counts.refused++;
      } else if (roll < 0.93) {
        await adminAs(k.i, "GET", `/keys?account=${account(k.i)}&limit=20`);
        counts.management++;
      } else if (roll < 0.96) {
        await adminAs(k.i, "GET", `/events?account=${account(k.i)}&limit=20`);
        counts.management++;
      } else if (roll < 0.98) {
        await adminAs(k.i, "PATCH", `/keys/${k.id}`, { metadata: { touched: String(Date.now()) } });
        counts.management++;
      } else if (roll < 0.99) {
        await adminAs(k.i, "POST", `/keys/${k.id}/revoke`);
        revoked.push(k);
        counts.management++;
      } else {
        // The bootstrap token's cross-account views.
        await adminAs(k.i, "GET", "/keys?limit=20");
        await adminAs(k.i, "GET", "/events?limit=20");
        counts.management += 2;
      }
    }
  }),
);

console.log(`changing the plan of the account with ${BIG} keys…`);
t = performance.now();
const put = await adminAs(0, "PUT", "/accounts/big-account", { plan: "business" });
const putMs = performance.now() - t;
let progress;
for (;;) {
  progress = (await adminAs(0, "GET", "/accounts/big-account")).json;
  if (progress.keys_updated >= progress.keys_total) break;
  await new Promise((r) => setTimeout(r, 200));
}
timings.planChange = (performance.now() - t) / 1000;
// What the worker logged as errors (a refusal's cause is logged, not shown).
// eslint-disable-next-line no-control-regex
const logged = kw.log().replace(/\x1b\[[0-9;]*m/g, "").split("\n").filter((l) => l.includes("ERROR"));
const causes = {};
for (const l of logged) {
  const cause = l.replace(/^.*ERROR\]\s*/, "").replace(/key_[0-9A-Za-z]+|acct-\d+|[0-9a-f]{16,}/g, "…").slice(0, 160);
  causes[cause] = (causes[cause] ?? 0) + 1;
}
await kw.stop();
await origin.stop();

// Every object's counter, read from its SQLite file in the local state.
const objects = objectStats(persistDir).filter((o) => o.calls !== undefined);
const total = objects.reduce((s, o) => s + o.calls, 0);
const byClass = {};
for (const o of objects) {
  const c = (byClass[o.class] ??= { objects: 0, calls: 0, max: null });
  c.objects++;
  c.calls += o.calls;
  if (!c.max || o.calls > c.max.calls) c.max = o;
}
const busiest = objects.reduce((a, b) => (b.calls > a.calls ? b : a));
const rate = (o) => o.calls / Math.max(1, (o.last - o.first) / 1000);
const whose = (o) => (!o.account ? o.id : o.class === "KeyObject" ? `a key of ${o.account}` : `account ${o.account}`);
const label = (o) => `${o.class} (${whose(o)})`;

const lines = [];
const row = (...cells) => lines.push(`| ${cells.join(" | ")} |`);
lines.push("## Scale simulation (`make scale`)", "");
lines.push(
  `${ACCOUNTS.toLocaleString("en")} accounts × ${KEYS} keys and one account of ${BIG.toLocaleString("en")} keys ` +
    `(${(keys.length + bigKeys.length).toLocaleString("en")} keys; ${failures} creations refused${failures ? ` — ${Object.entries(failedWith).map(([k, n]) => `${n} × ${k}`).join(", ")}, not retried` : ""}), created through the API ` +
    `under \`wrangler dev\` in ${(timings.create + timings.createBig).toFixed(0)} s; then ${SECONDS} s of mixed traffic on ` +
    `${CONCURRENCY} connections (${counts.gate.toLocaleString("en")} gate requests, ${counts.refused} of them refused; ` +
    `${counts.management.toLocaleString("en")} management calls: listings, events, updates, revocations, cross-account views); ` +
    `then the big account's plan change: answered in ${putMs.toFixed(0)} ms (status ${put.status}), ` +
    `${progress.keys_updated.toLocaleString("en")} of ${progress.keys_total.toLocaleString("en")} keys updated ${timings.planChange.toFixed(1)} s later. ` +
    `Counts are the calls each Durable Object served, from its own counter.`,
  "",
);
row("object class", "objects", "calls", "share of all calls", "busiest one", "its calls", "its calls/s");
row("---", "---:", "---:", "---:", "---", "---:", "---:");
for (const [cls, c] of Object.entries(byClass).sort((a, b) => b[1].calls - a[1].calls)) {
  row(
    cls,
    c.objects.toLocaleString("en"),
    c.calls.toLocaleString("en"),
    `${((100 * c.calls) / total).toFixed(1)}%`,
    whose(c.max),
    c.max.calls.toLocaleString("en"),
    rate(c.max).toFixed(1),
  );
}
lines.push(
  "",
  `**Busiest object: ${label(busiest)} — ${busiest.calls.toLocaleString("en")} of ${total.toLocaleString("en")} calls ` +
    `(${((100 * busiest.calls) / total).toFixed(2)}%), ${rate(busiest).toFixed(1)} calls/s over its active span.** ` +
    `Global objects: Directory ${byClass.Directory?.calls ?? 0} calls (one per new account, one per cross-account page, one migration check per isolate), ` +
    `Registry ${byClass.Registry?.calls ?? 0} (read once by the migration).`,
  "",
);
if (logged.length) {
  lines.push(`The worker logged ${logged.length} error lines:`, "");
  for (const [cause, n] of Object.entries(causes).sort((x, y) => y[1] - x[1]).slice(0, 5)) lines.push(`- ${n} × \`${cause}\``);
  lines.push("");
}
const md = lines.join("\n") + "\n";
fs.writeFileSync(path.join(ROOT, "bench/SCALE.md"), md);
writeSection("## Scale simulation", md);
console.log(md);
