// The bare one-hop worker of `make bench`: one SQLite Durable Object increment per
// request, then the forward — what any design that consults an object on every
// request pays at least.
import { DurableObject } from "cloudflare:workers";

export class Counter extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS hits (one INTEGER PRIMARY KEY, n INTEGER NOT NULL)");
  }

  async fetch() {
    this.ctx.storage.sql.exec("INSERT INTO hits (one, n) VALUES (1, 1) ON CONFLICT(one) DO UPDATE SET n = n + 1");
    return new Response("counted");
  }
}

export default {
  async fetch(req, env) {
    const url = new URL(req.url);
    const counted = await env.COUNTER.get(env.COUNTER.idFromName("one key")).fetch("https://counter/");
    if (!counted.ok) return new Response("counter failed", { status: 503 });
    return fetch(env.ORIGIN_URL + url.pathname + url.search, { method: req.method, headers: req.headers });
  },
};
