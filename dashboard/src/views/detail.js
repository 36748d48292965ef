// One key: its settings, the live counters of every limit and quota, the usage
// chart, and the request log with filters and paging.
import { api, latest, query } from "../api.js";
import { usageChart } from "../chart.js";
import { errorBox } from "../dialogs.js";
import { badge, exact, field, h, mount, select, time } from "../dom.js";

export async function detailPage(main, id) {
  mount(main, h("p", { class: "muted" }, "Loading…"));
  let key;
  try {
    key = await api("GET", `/keys/${encodeURIComponent(id)}`);
  } catch (err) {
    mount(main, h("p", {}, h("a", { href: "#/keys" }, "← API keys")), errorBox(err));
    return;
  }
  const facts = [
    ["Account", key.account],
    ["Alias", key.alias ?? "—"],
    ["Category", key.category ?? "—"],
    ["Environment", key.environment],
    ["Permissions", key.permissions.join(", ")],
    ["Projects", key.projects.length ? key.projects.join(", ") : "every project"],
    ["Created", exact(key.created_at)],
    ["Expires", key.expires_at ? exact(key.expires_at) : "never"],
    ["Last used", key.last_used_at ? exact(key.last_used_at) : "never"],
    ["Usage count", key.usage_count.toLocaleString("en")],
    ["IP allowlist", key.ip_allowlist.length ? key.ip_allowlist.join(", ") : "every address"],
    ["Carved from", key.parent ? h("a", { href: `#/keys/${key.parent}` }, key.parent) : "—"],
  ];
  const metadata = Object.entries(key.metadata ?? {});
  const chartHost = h("div", { class: "chart-host" });
  const resolution = select({ name: "resolution", value: "hour", onchange: (e) => drawChart(e.target.value) }, [["hour", "Last 24 hours"], ["day", "Last 30 days"]]);
  const logsHost = h("div", { class: "table-host" });
  const childrenHost = h("section", { "aria-labelledby": "children-h" });
  children(key, childrenHost);

  mount(
    main,
    h("p", {}, h("a", { href: "#/keys" }, "← API keys")),
    h("div", { class: "page-head" }, h("h1", {}, key.name), badge(key.status)),
    h("p", {}, h("code", {}, key.prefix), key.suspended_until ? h("span", { class: "warning" }, ` Suspended by the circuit breaker until ${exact(key.suspended_until)}.`) : null),
    sharingAlert(key.sharing),
    h("section", { "aria-labelledby": "limits-h" }, h("h2", { id: "limits-h" }, "Limits and quotas"), limits(key)),
    h("section", { "aria-labelledby": "credits-h" }, h("h2", { id: "credits-h" }, "Credits"), credits(key.credits)),
    childrenHost,
    h("section", { "aria-labelledby": "usage-h" }, h("div", { class: "page-head" }, h("h2", { id: "usage-h" }, "Usage"), field("Show", resolution)), chartHost),
    h("section", { "aria-labelledby": "logs-h" }, h("h2", { id: "logs-h" }, "Request log"), logs(key.id, logsHost), logsHost),
    h("section", { "aria-labelledby": "settings-h" }, h("h2", { id: "settings-h" }, "Settings"),
      h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))),
    metadata.length
      ? h("section", { "aria-labelledby": "meta-h" }, h("h2", { id: "meta-h" }, "Metadata"),
          h("dl", { class: "facts" }, metadata.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])))
      : null,
  );

  const currentChart = latest();
  async function drawChart(res) {
    const mine = currentChart();
    let drawn;
    try {
      drawn = usageChart(await api("GET", `/keys/${key.id}/usage${query({ resolution: res })}`));
    } catch (err) {
      drawn = errorBox(err);
    }
    if (mine()) mount(chartHost, drawn);
  }
  drawChart("hour");
}

/** A balance: what is left, and its refill. */
export function credits(c) {
  if (!c) return h("p", { class: "muted" }, "No credits: requests are not counted against a balance.");
  const r = c.refill;
  const every = r ? (r.interval === "day" ? "every day" : `every month on day ${r.day ?? 1}`) : null;
  return h("dl", { class: "facts credits" },
    h("dt", {}, "Remaining"), h("dd", { "data-credits": c.remaining }, c.remaining.toLocaleString("en")),
    h("dt", {}, "Refill"), h("dd", {}, r ? `${r.amount.toLocaleString("en")} ${every} (UTC)` : "none"),
    h("dt", {}, "Next refill"), h("dd", {}, c.next_refill_at ? exact(c.next_refill_at) : "—"));
}

/** The last suspicion that the key is shared, and this hour's spread. */
function sharingAlert(s) {
  if (!s?.last_suspected) return null;
  const l = s.last_suspected;
  const why = l.new_country ? `a request from a new country (${l.new_country})` : `${l.networks} client networks in one hour (more than ${l.threshold})`;
  return h("div", { class: "upgrade sharing", role: "alert" },
    h("strong", {}, "Possibly shared"), ` — ${why}, at ${exact(l.at)}. Countries that hour: ${l.countries.join(", ") || "unknown"}.`);
}

/** The keys carved from this one (among its account's 100 newest). */
async function children(key, host) {
  let page;
  try {
    page = await api("GET", `/keys${query({ account: key.account, limit: 100 })}`);
  } catch {
    return;
  }
  const kids = page.items.filter((k) => k.parent === key.id);
  if (!kids.length) return;
  mount(host, h("h2", { id: "children-h" }, "Child keys"),
    h("ul", { class: "children" }, kids.map((k) => h("li", {}, h("a", { href: `#/keys/${k.id}` }, k.name), " ", badge(k.status)))));
}

function limits(key) {
  if (!key.limits.length) return h("p", { class: "muted" }, "No limit or quota applies to this key.");
  return h(
    "ul",
    { class: "limits" },
    key.limits.map((l) =>
      h(
        "li",
        { "data-limit": l.name },
        h("span", { class: "label" }, l.name.replace("_", " ")),
        h("progress", { max: l.limit, value: l.used, "aria-label": `${l.name}: ${l.used} of ${l.limit} used` }),
        h("span", { class: "num" }, `${l.used.toLocaleString("en")} / ${l.limit.toLocaleString("en")}`),
        h("span", { class: "muted" }, l.reset_at ? ["resets ", time(l.reset_at)] : l.window_seconds ? "nothing used in this window" : "all time"),
      ),
    ),
  );
}

/** The log filters; they (re)draw the table into `host`. */
function logs(id, host) {
  const state = { status: "", from: "", to: "", cursors: [null] };
  const iso = (local) => (local ? new Date(local).toISOString() : "");
  const on = (name) => (e) => {
    state[name] = e.target.value;
    state.cursors = [null];
    draw();
  };
  const current = latest();
  async function draw() {
    const mine = current();
    let page;
    try {
      page = await api("GET", `/keys/${id}/logs${query({ status: state.status, from: iso(state.from), to: iso(state.to), limit: 50, cursor: state.cursors.at(-1) })}`);
    } catch (err) {
      if (mine()) mount(host, errorBox(err));
      return;
    }
    if (!mine()) return;
    const rows = page.items.map((l) =>
      h("tr", { "data-status": l.status ?? l.state },
        h("td", {}, h("time", { datetime: l.at, title: exact(l.at) }, exact(l.at))),
        h("td", {}, h("code", {}, `${l.method} ${l.path}`)),
        // A pending or abandoned request has no status yet: its state stands in.
        h("td", { class: "num" }, l.status ?? l.state, l.code ? h("div", { class: "muted" }, l.code) : null),
        h("td", { class: "num" }, `${l.duration_ms} ms`),
        h("td", {}, l.ip ?? "—"),
        h("td", { class: "num" }, l.credits)),
    );
    mount(
      host,
      rows.length
        ? h("table", { class: "logs" }, h("caption", { class: "visually-hidden" }, "Request log"),
            h("thead", {}, h("tr", {}, ["Time (UTC)", "Endpoint", "Status", "Duration", "IP", "Credits"].map((c) => h("th", { scope: "col" }, c)))),
            h("tbody", {}, rows))
        : h("p", { class: "empty" }, "No requests match."),
      h("nav", { class: "pager", "aria-label": "Log pages" },
        state.cursors.length > 1 ? h("button", { type: "button", class: "secondary", onclick: () => { state.cursors = [null]; draw(); } }, "Newest") : "",
        page.cursor ? h("button", { type: "button", class: "secondary", onclick: () => { state.cursors.push(page.cursor); draw(); } }, "Older") : ""),
    );
  }
  draw();
  return h(
    "form",
    { class: "filters", onsubmit: (e) => e.preventDefault() },
    field("Status", select({ name: "log-status", onchange: on("status") }, [["", "All"], ["4xx", "4xx"], ["429", "429 only"], ["2xx", "2xx"]])),
    field("From", h("input", { type: "datetime-local", name: "from", onchange: on("from") })),
    field("To", h("input", { type: "datetime-local", name: "to", onchange: on("to") })),
  );
}
