// Builds the dashboard into dashboard/dist (served by Workers Static Assets):
// admin/index.html, admin/app.js (one bundled, minified module), admin/app.css,
// and _headers (CSP and friends). Prints each file's size and gzip size.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import zlib from "node:zlib";

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.join(here, "dist");
const esbuild = path.join(here, "../node_modules/.bin/esbuild");
fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(path.join(out, "admin"), { recursive: true });

const common = ["--bundle", "--minify", "--legal-comments=none", "--log-level=warning"];
execFileSync(esbuild, [path.join(here, "src/main.js"), ...common, "--format=esm", "--target=es2022", `--outfile=${path.join(out, "admin/app.js")}`]);
execFileSync(esbuild, [path.join(here, "app.css"), ...common, `--outfile=${path.join(out, "admin/app.css")}`]);
fs.copyFileSync(path.join(here, "index.html"), path.join(out, "admin/index.html"));

// Only this origin's scripts, styles and API; no inline script or style; never framed.
const csp = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");
const headers = ["/admin", "/admin/*"].map((p) =>
  [p, `  Content-Security-Policy: ${csp}`, "  X-Content-Type-Options: nosniff", "  Referrer-Policy: no-referrer", "  X-Frame-Options: DENY", "  Cache-Control: no-cache"].join("\n"),
);
fs.writeFileSync(path.join(out, "_headers"), headers.join("\n") + "\n");

let raw = 0;
let gz = 0;
for (const f of ["index.html", "app.js", "app.css"]) {
  const bytes = fs.readFileSync(path.join(out, "admin", f));
  const g = zlib.gzipSync(bytes, { level: 9 }).length;
  raw += bytes.length;
  gz += g;
  console.log(`dashboard ${f.padEnd(10)} ${String(bytes.length).padStart(6)} B, gzip ${String(g).padStart(5)} B`);
}
console.log(`dashboard total      ${String(raw).padStart(6)} B, gzip ${String(gz).padStart(5)} B`);
