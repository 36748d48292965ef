// `make api-test`: schemathesis (from PyPI, in .venv) against the served OpenAPI
// document under `wrangler dev`, every check, with the bootstrap token. Extra
// arguments are passed to `st run` (e.g. --max-examples). Exits with st's code.
import { spawn } from "node:child_process";
import path from "node:path";
import { ADMIN_TOKEN, ROOT, startKeyward, startOrigin } from "../e2e/harness.mjs";

const origin = await startOrigin();
const kw = await startKeyward({ originUrl: origin.url });
const st = path.join(ROOT, ".venv/bin/st");
const args = [
  "run", `${kw.base}/admin/v1/openapi.json`,
  "--header", `Authorization: Bearer ${ADMIN_TOKEN}`,
  "--checks", "all",
  "--workers", "1",
  "--request-timeout", "20",
  ...process.argv.slice(2),
];
console.log(`st ${args.join(" ")}`);
const code = await new Promise((resolve) => {
  spawn(st, args, { stdio: "inherit", cwd: ROOT }).on("exit", (c) => resolve(c ?? 1));
});
await kw.stop();
await origin.stop();
if (code !== 0) {
  // What the worker logged (errors, uncaught exceptions) explains most failures.
  const lines = kw.log().split("\n").filter((l) => /error|exception|panic|uncaught/i.test(l) && !/Request\.cf|ENOTFOUND/.test(l));
  console.log(`\nwrangler dev logged ${lines.length} error lines; the last ones:\n${lines.slice(-40).join("\n")}`);
}
process.exit(code);
