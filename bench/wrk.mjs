// wrk, as the benchmarks run it: installed from Debian when missing; one JSON line
// of figures per run (bench/wrk.lua), one connection per key for a list of keys.
import { execFileSync, spawnSync } from "node:child_process";
import path from "node:path";
import { ROOT } from "../tests/e2e/harness.mjs";

export function ensureWrk() {
  if (spawnSync("wrk", ["--version"]).error === undefined) return;
  console.log("installing wrk (Debian package)…");
  execFileSync("apt-get", ["update", "-qq"], { stdio: "inherit" });
  execFileSync("apt-get", ["install", "-y", "-qq", "wrk"], { stdio: "inherit" });
}

export function wrk(url, key, seconds, connections = 16) {
  // A list of keys: one connection (and wrk thread) per key.
  const many = Array.isArray(key);
  const threads = many ? key.length : Math.min(2, connections);
  const args = [`-t${threads}`, `-c${many ? key.length : connections}`, `-d${seconds}s`, "--latency", "-s", path.join(ROOT, "bench/wrk.lua")];
  if (key && !many) args.push("-H", `Authorization: Bearer ${key}`);
  args.push(url);
  const env = { ...process.env, WRK_KEYS: many ? key.join(",") : "" };
  const out = execFileSync("wrk", args, { encoding: "utf8", env });
  const line = out.split("\n").find((l) => l.startsWith("WRK_JSON "));
  if (!line) throw new Error(`no WRK_JSON in wrk output:\n${out}`);
  return JSON.parse(line.slice(9));
}
