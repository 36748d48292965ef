// The usage chart: one SVG bar per hour or day, drawn from GET /keys/{id}/usage.
// Totals are written out beside it, so the numbers never depend on reading bars.
import { h, svg } from "./dom.js";

const W = 720;
const H = 160;
const PAD = 24;

export function usageChart(series) {
  const items = series.items;
  const max = Math.max(1, ...items.map((p) => p.requests));
  const slot = (W - PAD) / items.length;
  const requests = items.reduce((n, p) => n + p.requests, 0);
  const credits = items.reduce((n, p) => n + p.credits, 0);
  const label = (p) =>
    series.resolution === "hour"
      ? `${p.start.slice(11, 16)} UTC`
      : p.start.slice(0, 10);
  const bars = items.map((p, i) => {
    const height = Math.round(((H - PAD) * p.requests) / max);
    return svg(
      "rect",
      { class: "bar", x: PAD + i * slot + 1, y: H - PAD - height, width: Math.max(1, slot - 2), height, "data-requests": p.requests },
      svg("title", {}, `${label(p)}: ${p.requests} requests, ${p.credits} credits`),
    );
  });
  const every = series.resolution === "hour" ? 6 : 7;
  const ticks = items.map((p, i) =>
    i % every === 0 ? svg("text", { x: PAD + i * slot, y: H - 6, class: "tick" }, label(p).replace(" UTC", "")) : null,
  );
  const title = series.resolution === "hour" ? "Requests per hour, last 24 hours" : "Requests per day, last 30 days";
  return h(
    "figure",
    { class: "chart", "data-total-requests": requests, "data-total-credits": credits },
    svg(
      "svg",
      { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${title}: ${requests} requests, ${credits} credits in all` },
      svg("line", { x1: PAD, y1: H - PAD, x2: W, y2: H - PAD, class: "axis" }),
      svg("text", { x: 0, y: 12, class: "tick" }, String(max)),
      bars,
      ticks,
    ),
    h("figcaption", {}, `${title}: `, h("strong", { class: "total-requests" }, requests.toLocaleString("en")), " requests, ",
      h("strong", { class: "total-credits" }, credits.toLocaleString("en")), " credits."),
  );
}
