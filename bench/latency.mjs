// Median and p90 latency of sequential requests to a running keyward.
// Usage: node bench/latency.mjs <url> [key] [count]
const [url, key, count = "500"] = process.argv.slice(2);
const headers = key ? { authorization: `Bearer ${key}` } : {};
const times = [];
for (let i = 0; i < Number(count) + 20; i++) {
  const t = performance.now();
  const res = await fetch(url, { headers });
  await res.arrayBuffer();
  if (i >= 20) times.push(performance.now() - t); // first 20 warm up
  if (res.status >= 500) throw new Error(`status ${res.status}`);
}
times.sort((a, b) => a - b);
const q = (p) => times[Math.min(times.length - 1, Math.floor(p * times.length))].toFixed(2);
console.log(JSON.stringify({ url, n: times.length, p50_ms: q(0.5), p90_ms: q(0.9), p99_ms: q(0.99) }));
