// Example origin: answers every request with a JSON echo of what it received, so
// you (and the end-to-end tests) can see exactly what keyward forwarded.
// Usage: node examples/origin.mjs [port]   (default 8788, loopback only)
import http from "node:http";

const port = Number(process.argv[2] ?? process.env.ORIGIN_PORT ?? 8788);

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const url = new URL(req.url, "http://origin");
    const body = JSON.stringify({
      origin: "example",
      method: req.method,
      path: url.pathname,
      query: url.search,
      headers: req.headers,
      body: Buffer.concat(chunks).toString("utf8"),
    });
    res.writeHead(url.pathname === "/teapot" ? 418 : 200, {
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
