// The Worker's module (wrangler's `main`): the dashboard's pages, the Rust fetch
// handler (called past worker-build's per-request class, below), and the Durable
// Object classes.
//
// The dashboard (built by dashboard/build.mjs) is served from this module for GET
// and HEAD on its exact paths; everything else goes to Rust. (Workers Static
// Assets would put its router in front of every request: 0.3–0.6 ms of CPU each
// under `wrangler dev`, measured in bench/NOTES.md.)
//
// Each object class derives from `DurableObject`, which is what makes the runtime
// serve Workers RPC to it, and hands every call to the Rust object of the same
// name: `batch` (commands from `lanes.js`) and `alarm`. Both answer through the
// Rust side's one executor (`task.rs`). With TEST_GEO, `batch` first waits the
// simulated round trip (`far`).
import { DurableObject } from "cloudflare:workers";
import Rust, * as rust from "../../../build/index.js";
import { headers, pages } from "../../../dashboard/dist/pages.mjs";

const REDIRECTS = new Set(["/admin", "/admin/index.html"]);

/** The dashboard's answer to `request`, or undefined when it is not one of its pages. */
function dashboard(request) {
  const url = request.url;
  if (!url.includes("/admin")) return undefined;
  const { pathname, search } = new URL(url);
  if (request.method !== "GET" && request.method !== "HEAD") return undefined;
  if (REDIRECTS.has(pathname)) {
    return new Response(null, { status: 307, headers: { Location: `/admin/${search}`, ...headers } });
  }
  const page = pages[pathname];
  if (page === undefined) return undefined;
  const head = { ...headers, "Content-Type": page.type, ETag: page.etag };
  if (request.headers.get("If-None-Match") === page.etag) {
    return new Response(null, { status: 304, headers: head });
  }
  return new Response(request.method === "HEAD" ? null : page.body, { headers: head });
}

// The Rust fetch handler, called straight from a plain module handler, as the
// bare forwarder is: worker-build's module exports a class (the runtime builds
// an instance of it for every request) wrapped in a Proxy that builds a second
// Proxy and wraps every method it hands out, so as to restart the Wasm instance
// after a panic: about 20 µs of CPU per request under Miniflare (bench/NOTES.md).
// Here that recovery costs one check per request: once the instance is marked
// broken, constructing the wrapped class (which the runtime would have done)
// restarts it first.
const rustFetch = Rust.prototype.fetch;
const init = globalThis.__worker_init_state;

export default {
  fetch(request, env, ctx) {
    const page = dashboard(request);
    if (page !== undefined) return page;
    if (init.criticalError) Reflect.construct(Rust, [ctx, env]);
    try {
      return rustFetch.call({ env, ctx }, request);
    } catch (error) {
      if (error instanceof WebAssembly.RuntimeError) init.criticalError = true;
      throw error;
    }
  },
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function rpcClass(RustObject) {
  return class extends DurableObject {
    constructor(ctx, env) {
      super(ctx, env);
      this.rust = new RustObject(ctx, env);
    }
    // Answered at once when no command needs I/O (the request path's never do),
    // else by the object's asynchronous path. `from` is given only when geography
    // is simulated (TEST_GEO).
    batch(items, from, hint) {
      if (from !== undefined) return this.far(items, from, hint);
      return this.rust.batch_now?.(items) ?? this.rust.batch_later(items);
    }
    alarm() {
      return this.rust.alarm();
    }
    // Simulated geography: the object is where its first call came from, or
    // where that call's location hint said (in production an object is created
    // there, and stays). A call waits half the round trip from its caller's
    // region before it is decided, and half after.
    async far(items, from, hint) {
      const half = rust.Geography.round_trip_ms(from, this.home(hint ?? from)) / 2;
      await sleep(half);
      const answers = await (this.rust.batch_now?.(items) ?? this.rust.batch_later(items));
      await sleep(half);
      return answers;
    }
    home(first) {
      if (this.region !== undefined) return this.region;
      this.region = this.storedHome(first);
      return this.region;
    }
    storedHome(first) {
      const sql = this.ctx.storage.sql;
      sql.exec("CREATE TABLE IF NOT EXISTS geo_home (region TEXT NOT NULL)");
      const row = sql.exec("SELECT region FROM geo_home").toArray()[0];
      if (row !== undefined) return row.region;
      sql.exec("INSERT INTO geo_home (region) VALUES (?)", first);
      return first;
    }
  };
}

export const KeyObject = rpcClass(rust.KeyObject);
export const AccountObject = rpcClass(rust.AccountObject);
export const IpGuard = rpcClass(rust.IpGuard);
export const Directory = rpcClass(rust.Directory);
