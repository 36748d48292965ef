// The Wasm module's size per part (issue 21 §5): its sections, and the code
// section's function bodies grouped by the crate (and, for keyward, the folder)
// their names say. Reads the copy with names that scripts/build.sh keeps
// (target/keyward-names.wasm); the deployed module is the same without them.
import fs from "node:fs";

/** LEB128 unsigned at `at`: [value, next offset]. */
function leb(buf, at) {
  let v = 0;
  let shift = 0;
  for (;;) {
    const b = buf[at++];
    v += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if (b < 0x80) return [v, at];
  }
}

const SECTIONS = ["custom", "type", "import", "function", "table", "memory", "global", "export", "start", "element", "code", "data", "data count"];

/** Sections ([name, bytes]), function body sizes by index and names by index. */
function read(buf) {
  const sections = [];
  const bodies = [];
  const names = new Map();
  let imported = 0;
  let at = 8;
  while (at < buf.length) {
    const id = buf[at];
    const [size, start] = leb(buf, at + 1);
    const end = start + size;
    let name = SECTIONS[id] ?? `section ${id}`;
    if (id === 0) {
      const [n, s] = leb(buf, start);
      name = `custom "${buf.subarray(s, s + n).toString()}"`;
      if (name === 'custom "name"') {
        let p = s + n;
        while (p < end) {
          const kind = buf[p];
          const [len, q] = leb(buf, p + 1);
          if (kind === 1) {
            let [count, r] = leb(buf, q);
            for (let i = 0; i < count; i++) {
              const [idx, r1] = leb(buf, r);
              const [nl, r2] = leb(buf, r1);
              names.set(idx, buf.subarray(r2, r2 + nl).toString());
              r = r2 + nl;
            }
          }
          p = q + len;
        }
      }
    } else if (id === 2) {
      let [count, p] = leb(buf, start);
      for (let i = 0; i < count; i++) {
        for (let k = 0; k < 2; k++) {
          const [l, q] = leb(buf, p);
          p = q + l;
        }
        const kind = buf[p++];
        if (kind === 0) {
          imported++;
          p = leb(buf, p)[1];
        } else if (kind === 1) {
          p++;
          const flags = buf[p++];
          p = leb(buf, p)[1];
          if (flags & 1) p = leb(buf, p)[1];
        } else if (kind === 2) {
          const flags = buf[p++];
          p = leb(buf, p)[1];
          if (flags & 1) p = leb(buf, p)[1];
        } else if (kind === 3) p += 2;
        else p = leb(buf, p)[1];
      }
    } else if (id === 10) {
      let [count, p] = leb(buf, start);
      for (let i = 0; i < count; i++) {
        const [len, q] = leb(buf, p);
        bodies.push(q + len - p);
        p = q + len;
      }
    }
    sections.push([name, end - at]);
    at = end;
  }
  return { sections, bodies, names, imported };
}

/** The part a function's name belongs to: its crate, keyward's by folder. */
function part(name) {
  if (!name) return "(unnamed)";
  const path = name.replace(/^[<&*\s]+(mut\s+|dyn\s+|const\s+)?/, "");
  const seg = path.split(/::|[<>\s,(]/).filter(Boolean);
  const krate = seg[0] ?? "(unnamed)";
  if (krate === "keyward") return `keyward::${seg[1] ?? ""}${seg[1] && seg[2] && /^[a-z_]+$/.test(seg[2]) && ["edge", "objects"].includes(seg[1]) ? `::${seg[2]}` : ""}`;
  if (/^(core|alloc|std|hashbrown|compiler_builtins)$/.test(krate)) return `${krate} (Rust's library)`;
  if (/^(f32|f64|u8|u16|u32|u64|u128|usize|i8|i16|i32|i64|i128|isize|char|str|bool)$/.test(krate)) return "core (Rust's library)";
  if (!name.includes("::")) return "(exports: wasm-bindgen glue)";
  if (/^[a-z_][a-z0-9_]*$/.test(krate)) return krate;
  return "(other: glue, closures, intrinsics)";
}

/** Rows of [part, bytes] for the module at `file`, largest first. */
export function wasmParts(file) {
  const buf = fs.readFileSync(file);
  const { sections, bodies, names, imported } = read(buf);
  const by = new Map();
  bodies.forEach((bytes, i) => {
    const p = part(names.get(imported + i));
    by.set(p, (by.get(p) ?? 0) + bytes);
  });
  const code = [...by].sort((a, b) => b[1] - a[1]);
  return { total: buf.length, sections: sections.filter(([n]) => n !== 'custom "name"'), code };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { total, sections, code } = wasmParts(process.argv[2] ?? "target/keyward-names.wasm");
  console.log(`total ${total} B`);
  for (const [n, b] of sections) console.log(`section ${n}: ${b} B`);
  for (const [n, b] of code) console.log(`${n}: ${b} B`);
}
