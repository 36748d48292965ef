// Example origin: answers every request with a JSON echo of what it received, so
// you (and the end-to-end tests) can see exactly what keyward forwarded.
// Usage: node examples/origin.mjs [port]   (default 8788, loopback only)
// With ORIGIN_RECORD_FILE set, it also appends each request it receives (method,
// raw target, headers) to that file as one JSON line: the tests' record of what
// reached the origin; and a line to `<file>.answered` for each answer it sent.
import fs from "node:fs";
import http from "node:http";

const port = Number(process.argv[2] ?? process.env.ORIGIN_PORT ?? 8788);
const recordFile = process.env.ORIGIN_RECORD_FILE;

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    if (recordFile) {
      const seen = { method: req.method, target: req.url, headers: req.headers };
      fs.appendFileSync(recordFile, JSON.stringify(seen) + "\n");
    }
    const url = new URL(req.url, "http://origin");
    // Test paths: /hold is never answered (a slow origin caught by a crash);
    // /drop closes the connection unanswered (an origin that cannot be reached);
    // /status/NNN answers NNN (billing tests with a failing origin).
    if (url.pathname === "/hold") return;
    if (url.pathname === "/drop") return req.socket.destroy();
    const forced = /^\/status\/([1-5][0-9][0-9])$/.exec(url.pathname);
    const body = JSON.stringify({
      origin: "example",
      method: req.method,
      path: url.pathname,
      target: req.url,
      query: url.search,
      headers: req.headers,
      body: Buffer.concat(chunks).toString("utf8"),
    });
    if (recordFile) res.on("finish", () => fs.appendFileSync(recordFile + ".answered", "1\n"));
    const status = forced ? Number(forced[1]) : url.pathname === "/teapot" ? 418 : 200;
    res.writeHead(status, {
      "content-type": "application/json",
      "x-origin": "example",
    });
    res.end(body);
  });
});

server.keepAliveTimeout = 65_000;
server.listen(port, "127.0.0.1", () => {
  console.log(`example origin listening on http://127.0.0.1:${port}`);
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => server.close(() => process.exit(0)));
