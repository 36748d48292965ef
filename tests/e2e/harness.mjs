// Starts real processes for the end-to-end tests: the example origin and
// `wrangler dev` (workerd, local KV and Durable Objects persisted to a temp dir),
// each on a free loopback port, and speaks HTTP to them.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before } from "node:test";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const ADMIN_TOKEN = "e2e-admin-token";
const WRANGLER = path.join(ROOT, "node_modules/.bin/wrangler");

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export function tempDir(label) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `keyward-${label}-`));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function startProcess(cmd, args, opts) {
  const child = spawn(cmd, args, {
    cwd: ROOT,
    detached: true, // own process group: stop() takes workerd down with wrangler
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", ...(opts.env ?? {}) },
  });
  let log = "";
  child.stdout.on("data", (d) => (log += d));
  child.stderr.on("data", (d) => (log += d));
  const exited = new Promise((resolve) => child.on("exit", resolve));
  return {
    child,
    log: () => log,
    /** SIGKILL to the whole process group (wrangler and workerd): a crash. */
    async kill() {
      if (child.exitCode !== null) return;
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {}
      await exited;
    },
    async stop() {
      if (child.exitCode !== null) return;
      try {
        process.kill(-child.pid, "SIGTERM");
      } catch {}
      const done = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]);
      if (!done) {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {}
        await exited;
      }
    },
  };
}

async function waitReady(url, proc, insecure = false) {
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null) throw new Error(`process exited early:\n${proc.log()}`);
    try {
      if (insecure) await insecureGet(url);
      else await fetch(url);
      return;
    } catch {
      await sleep(250);
    }
  }
  throw new Error(`not ready after 90 s: ${url}\n${proc.log()}`);
}

/**
 * Starts the example origin. It records every request it receives; `received()`
 * returns them (method, raw target, headers) and `forget()` clears the record.
 */
export async function startOrigin() {
  const port = await freePort();
  const record = path.join(tempDir("origin"), "received.jsonl");
  fs.writeFileSync(record, "");
  const proc = startProcess("node", ["examples/origin.mjs", String(port)], {
    env: { ORIGIN_RECORD_FILE: record },
  });
  await waitReady(`http://127.0.0.1:${port}/`, proc);
  return {
    ...proc,
    url: `http://127.0.0.1:${port}`,
    received: () =>
      fs
        .readFileSync(record, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l)),
    /** How many answers the origin has sent. */
    answered: () => (fs.existsSync(`${record}.answered`) ? fs.readFileSync(`${record}.answered`, "utf8").length / 2 : 0),
    forget: () => fs.writeFileSync(record, ""),
  };
}

/**
 * Sends `head` (request line and headers, CRLF-separated, without the final blank
 * line) byte for byte over a socket — no client normalizes it — then `body`.
 * Resolves to { status, headers, body, json }.
 */
export function rawRequest(base, head, body = "") {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname);
    const chunks = [];
    socket.on("data", (d) => chunks.push(d));
    socket.on("error", reject);
    socket.on("end", () => {
      const text = Buffer.concat(chunks).toString("latin1");
      const [top, ...rest] = text.split("\r\n\r\n");
      const [statusLine, ...headerLines] = top.split("\r\n");
      const headers = {};
      for (const h of headerLines) {
        const i = h.indexOf(":");
        if (i > 0) headers[h.slice(0, i).toLowerCase()] = h.slice(i + 1).trim();
      }
      let payload = rest.join("\r\n\r\n");
      if (/chunked/i.test(headers["transfer-encoding"] ?? "")) payload = dechunk(payload);
      let json;
      try {
        json = JSON.parse(payload);
      } catch {}
      resolve({ status: Number(statusLine.split(" ")[1]), headers, body: payload, json });
    });
    socket.write(Buffer.from(`${head}\r\nHost: ${hostname}:${port}\r\nConnection: close\r\n\r\n`, "latin1"));
    socket.end(body);
  });
}

function dechunk(text) {
  let out = "";
  let rest = text;
  for (;;) {
    const i = rest.indexOf("\r\n");
    if (i < 0) return out;
    const size = parseInt(rest.slice(0, i), 16);
    if (!size) return out;
    out += rest.slice(i + 2, i + 2 + size);
    rest = rest.slice(i + 2 + size + 2);
  }
}

/**
 * A copy of the built worker (the module, the Rust build, the dashboard's pages)
 * and a wrangler config serving it without wrangler's build step or file watching:
 * a long benchmark is not restarted by edits to the source meanwhile. Returns the
 * config's path.
 */
export function frozenBuild() {
  const frozen = tempDir("frozen-build");
  for (const part of ["build", "dashboard/dist", "src/edge/js/entry.mjs"]) {
    fs.cpSync(path.join(ROOT, part), path.join(frozen, part), { recursive: true });
  }
  const toml = fs
    .readFileSync(path.join(ROOT, "wrangler.toml"), "utf8")
    .split(/^\[env\.production\]/m)[0]
    .replace(/\[build\]\ncommand = .*\n/, "")
    .replace(/^main = .*$/m, `main = "${path.join(frozen, "src/edge/js/entry.mjs")}"`);
  fs.writeFileSync(path.join(frozen, "wrangler.toml"), toml);
  return path.join(frozen, "wrangler.toml");
}

/**
 * Starts keyward under `wrangler dev`.
 * opts.vars: extra wrangler vars; opts.persistDir: state directory (kept across
 * restarts when reused); opts.config: another wrangler config; opts.https: serve TLS.
 */
export async function startKeyward(opts) {
  const port = await freePort();
  const inspector = await freePort();
  const persistDir = opts.persistDir ?? tempDir("state");
  // These suites send invalid keys on purpose; the limits suite turns blocking on.
  const vars = { ADMIN_TOKEN, ORIGIN_URL: opts.originUrl, IP_BLOCK_THRESHOLD: "0", ...(opts.vars ?? {}) };
  const args = ["dev", "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", String(inspector)];
  args.push("--persist-to", persistDir, "--log-level", "warn");
  for (const [k, v] of Object.entries(vars)) args.push("--var", `${k}:${v}`);
  if (opts.config) args.push("--config", opts.config);
  if (opts.https) args.push("--local-protocol", "https");
  const proc = startProcess(WRANGLER, args, {});
  const scheme = opts.https ? "https" : "http";
  const base = `${scheme}://127.0.0.1:${port}`;
  await waitReady(`${base}/health`, proc, opts.https);
  return { ...proc, base, persistDir };
}

/**
 * The one e2e setup: the example origin and keyward (with `vars`; `opts` as for
 * `startKeyward`) started before the file's tests and stopped after them. The
 * returned object is filled in by then: `origin`, `server` (the keyward process:
 * `base`, `persistDir`, `log()`, `stop()`, `kill()`), `base` and `api`.
 */
export function useKeyward(vars = {}, opts = {}) {
  const kw = {};
  let started, failed;
  // node:test does not run a file's top-level `before` hooks one after another:
  // a file's own hook awaits `kw.ready` instead of reading `kw` at once.
  kw.ready = new Promise((resolve, reject) => ((started = resolve), (failed = reject)));
  kw.ready.catch(() => {});
  before(async () => {
    try {
      kw.origin = await startOrigin();
      kw.server = await startKeyward({ originUrl: kw.origin.url, vars, ...opts });
      kw.base = kw.server.base;
      kw.api = client(kw.server.base);
      started(kw);
    } catch (e) {
      failed(e);
      throw e;
    }
  });
  after(async () => {
    await kw.server?.stop();
    await kw.origin?.stop();
  });
  return kw;
}

/** A GET that accepts wrangler's self-signed certificate. */
export function insecureGet(url, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { rejectUnauthorized: false, headers }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on("error", reject);
  });
}

/** A client of one running keyward. */
export function client(base) {
  async function call(method, path, { key, body, headers = {} } = {}) {
    const h = { ...headers };
    if (key) h.authorization = `Bearer ${key}`;
    if (body !== undefined) h["content-type"] = "application/json";
    const res = await fetch(base + path, {
      method,
      headers: h,
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, json, text };
  }
  const admin = (method, path, body, token = ADMIN_TOKEN) =>
    call(method, `/admin/v1${path}`, { key: token, body });
  return {
    call,
    admin,
    /** Creates a key and returns the 201 body (with the secret). */
    async createKey(body, token = ADMIN_TOKEN) {
      const res = await admin("POST", "/keys", { account: "acme", name: "test key", ...body }, token);
      if (res.status !== 201) throw new Error(`create failed: ${res.status} ${res.text}`);
      return res.json;
    },
  };
}

/** Asserts an error answer exactly as SPEC §3/§4 renders it. */
export function expectError(assert, res, status, code, message) {
  assert.equal(res.status, status, `expected ${status} ${code}, got ${res.status} ${res.text}`);
  assert.equal(res.headers.get("content-type"), "application/json");
  assert.equal(res.json?.code, code);
  if (message !== undefined) assert.equal(res.json?.error, message);
}

/** Polls until `check` passes: for what the worker writes after its answer. */
export async function eventually(check, ms = 5000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await check();
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await sleep(100);
    }
  }
}

/**
 * A key's `usage_count` once none of its requests is pending settlement (its log
 * holds no `pending` row): the count a "not counted" check may rely on.
 */
export async function settledUsage(api, id) {
  return eventually(async () => {
    const logs = (await api.admin("GET", `/keys/${id}/logs?limit=100`)).json.items;
    assert.ok(logs.every((l) => l.state !== "pending"), "a request is still pending");
    return (await api.admin("GET", `/keys/${id}`)).json.usage_count;
  }, 10_000);
}

/**
 * Polls `check` for `ms`, failing as soon as it fails: for what must *not*
 * happen (no second notice, no retry) over a time the behaviour defines.
 */
export async function stays(check, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    await check();
    if (Date.now() > deadline) return;
    await sleep(100);
  }
}

/**
 * A webhook receiver on a free port: records every delivery (headers, raw body)
 * and answers with `status(n)` for the n-th one (1-based; 204 by default).
 */
export async function startReceiver(status = () => 204) {
  const port = await freePort();
  const received = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
      res.writeHead(status(received.length));
      res.end();
    });
  });
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${port}/hooks/keyward`, received, close: () => server.close() };
}

/**
 * The counters objects keep about themselves when `OBJECT_STATS=true`, read from
 * their SQLite files under the state directory: per object its class, its file
 * (`id`), whose it is (`key`: the key id; `account`: the account), the calls it
 * served (`calls`, `first`, `last`: Unix ms) and the group commits among them
 * (`batches`, `requests` carried, `largest`); a key's object that handed its key
 * over names the object it went to (`moved_to`).
 */
export function objectStats(persistDir) {
  const script = `
import json, os, sqlite3, sys
root = sys.argv[1]
out = []
for cls in sorted(os.listdir(root)):
    d = os.path.join(root, cls)
    for f in os.listdir(d):
        if not f.endswith(".sqlite") or f == "metadata.sqlite":
            continue
        db = sqlite3.connect(os.path.join(d, f))
        o = {"class": cls.replace("keyward-", ""), "id": f[:12]}
        for q, fields in (("SELECT json FROM record", ("id", "account")), ("SELECT json FROM meta", ("account",))):
            try:
                r = db.execute(q).fetchone()
                if r:
                    j = json.loads(r[0])
                    for k in fields:
                        o.setdefault("key" if k == "id" else k, j.get(k))
            except sqlite3.Error:
                pass
        try:
            r = db.execute("SELECT json FROM moved").fetchone()
            if r:
                o["moved_to"] = json.loads(r[0])["to"]
        except sqlite3.Error:
            pass
        for q, fields in (("SELECT batches, requests, largest FROM batch_stats", ("batches", "requests", "largest")),
                          ("SELECT calls, first_at, last_at FROM object_stats", ("calls", "first", "last"))):
            try:
                r = db.execute(q).fetchone()
                if r:
                    o.update(zip(fields, r))
            except sqlite3.Error:
                pass
        db.close()
        out.append(o)
print(json.dumps(out))
`;
  const text = execFileSync("python3", ["-c", script, path.join(persistDir, "v3/do")], {
    encoding: "utf8",
    maxBuffer: 1 << 28,
  });
  return JSON.parse(text);
}
