// One section of BENCHMARKS.md, written anew by the benchmark that measures it
// (`make scale`, `make geo`): the text from its heading to the next `## `.
import fs from "node:fs";
import path from "node:path";
import { ROOT } from "../tests/e2e/harness.mjs";

export function writeSection(heading, md) {
  const benchPath = path.join(ROOT, "BENCHMARKS.md");
  if (!fs.existsSync(benchPath)) return;
  const current = fs.readFileSync(benchPath, "utf8");
  const start = current.indexOf(heading);
  const before = start < 0 ? current.trimEnd() + "\n\n" : current.slice(0, start);
  const rest = start < 0 ? "" : current.slice(start + heading.length).replace(/^[\s\S]*?(?=\n## |$)/, "");
  fs.writeFileSync(benchPath, before + md + rest);
}
