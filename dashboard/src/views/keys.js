// Account › API Keys: the key table with filters, search and paging, the create
// form, and the row actions (rotate, deactivate / activate, revoke, delete).
import { api, latest, query } from "../api.js";
import { confirmAction, errorBox, modal, showSecret } from "../dialogs.js";
import { announce, badge, exact, field, h, mount, select, time } from "../dom.js";

// The key list's columns, in order (its cells carry them as `data-label`).
const COLUMNS = ["Name", "Prefix", "Category", "Environment", "Status", "Usage", "Last used", "Expires", "Actions"];

const STATUSES = [["", "Any status"], ["active", "Active"], ["inactive", "Inactive"], ["revoked", "Revoked"], ["expired", "Expired"]];
const ENVIRONMENTS = [["", "Any environment"], ["production", "Production"], ["staging", "Staging"], ["development", "Development"]];

/**
 * The page's keys with each child right after its parent (depth-first), when its
 * parent is on the page too; the rest keep their order (newest first).
 */
export function treeOrder(items) {
  const here = new Set(items.map((k) => k.id));
  const children = new Map();
  const roots = [];
  for (const k of items) {
    if (k.parent && here.has(k.parent)) {
      if (!children.has(k.parent)) children.set(k.parent, []);
      children.get(k.parent).push(k);
    } else roots.push(k);
  }
  const out = [];
  const visit = (k, depth) => {
    out.push({ ...k, depth });
    for (const c of children.get(k.id) ?? []) visit(c, depth + 1);
  };
  roots.forEach((k) => visit(k, 0));
  return out;
}

/** The keys page. `me` is the caller (GET /me); `root` sees every account. */
export function keysPage(main, me) {
  const root = me.account === null;
  const state = { filters: { status: "", environment: "", category: "", account: "", search: "" }, cursors: [null] };
  const message = h("div", { class: "messages" });
  const banner = h("div");
  const createButton = h("button", { type: "button", onclick: () => openCreate(me, refresh) }, "Create API key");
  const tableHost = h("div", { class: "table-host" });
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });

  const onFilter = (name) => (e) => {
    state.filters[name] = e.target.value.trim();
    state.cursors = [null];
    refresh();
  };
  let searchTimer;
  const filters = h(
    "form",
    { class: "filters", role: "search", onsubmit: (e) => e.preventDefault() },
    field("Search", h("input", { type: "search", name: "search", placeholder: "Name, alias or prefix", oninput: (e) => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => onFilter("search")(e), 250);
    } })),
    field("Status", select({ name: "status", onchange: onFilter("status") }, STATUSES)),
    field("Environment", select({ name: "environment", onchange: onFilter("environment") }, ENVIRONMENTS)),
    field("Category", h("input", { name: "category", placeholder: "Any", onchange: onFilter("category") })),
    root ? field("Account", h("input", { name: "account", placeholder: "Every account", onchange: onFilter("account") })) : null,
  );

  mount(
    main,
    h("div", { class: "page-head" }, h("h1", {}, "API keys"), createButton),
    banner,
    message,
    filters,
    tableHost,
    pager,
  );

  const current = latest();
  async function refresh(note) {
    const mine = current();
    message.replaceChildren(note ? h("p", { class: "notice", role: "status" }, note) : "");
    const account = root ? state.filters.account : me.account;
    await planGate(account, banner, createButton);
    const cursor = state.cursors.at(-1);
    let page;
    try {
      page = await api("GET", `/keys${query({ ...state.filters, limit: 25, cursor })}`);
    } catch (err) {
      if (!mine()) return;
      mount(tableHost, errorBox(err));
      tableHost.dataset.account = account ?? "";
      pager.replaceChildren();
      return;
    }
    if (!mine()) return;
    mount(tableHost, table(page.items));
    // Which account's keys the table shows now (tests wait on it after a filter change).
    tableHost.dataset.account = account ?? "";
    pager.replaceChildren(
      state.cursors.length > 1
        ? h("button", { type: "button", class: "secondary", onclick: () => { state.cursors = [null]; refresh(); } }, "First page")
        : "",
      page.cursor
        ? h("button", { type: "button", class: "secondary", onclick: () => { state.cursors.push(page.cursor); refresh(); } }, "Next page")
        : "",
    );
  }

  function table(items) {
    if (items.length === 0) {
      return h("p", { class: "empty" }, "No keys match. Create one with “Create API key”.");
    }
    return h(
      "table",
      { class: "keys" },
      h("caption", { class: "visually-hidden" }, "API keys"),
      h("thead", {}, h("tr", {}, COLUMNS.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, treeOrder(items).map(row)),
    );
  }

  function row(k) {
    const act = (label, run, cls = "secondary") =>
      h("button", { type: "button", class: `small ${cls}`, "aria-label": `${label} ${k.name}`, onclick: () => run(k) }, label);
    const actions = [];
    if (k.status !== "revoked") {
      actions.push(act("Rotate", rotate));
      actions.push(k.status === "inactive" ? act("Activate", (x) => change(x, "activate")) : act("Deactivate", (x) => change(x, "deactivate")));
      actions.push(act("Revoke", revoke, "danger"));
    }
    if (k.usage_count === 0) actions.push(act("Delete", remove, "danger"));
    // Each cell names its column (`data-label`): on a phone the rows are cards.
    const cell = (i, attrs, ...children) => h("td", { "data-label": COLUMNS[i], ...attrs }, ...children);
    // A child key sits under its parent (when both are on this page).
    const depth = k.depth ?? 0;
    return h(
      "tr",
      { "data-key-id": k.id, "data-parent": k.parent ?? "", class: depth ? `child depth-${depth}` : null },
      cell(0, {}, depth ? h("span", { class: "tree", "aria-hidden": "true" }, "↳ ") : null,
        h("a", { href: `#/keys/${k.id}` }, k.name), k.alias ? h("div", { class: "muted" }, k.alias) : null,
        k.parent && !depth ? h("div", { class: "muted" }, "child of ", h("a", { href: `#/keys/${k.parent}` }, k.parent)) : null),
      cell(1, {}, h("code", {}, k.prefix)),
      cell(2, {}, k.category ?? h("span", { class: "muted" }, "—")),
      cell(3, {}, k.environment),
      cell(4, {}, badge(k.status)),
      cell(5, { class: "num", "data-usage": k.usage_count }, k.usage_count.toLocaleString("en")),
      cell(6, { "data-last-used": k.last_used_at ?? "" }, time(k.last_used_at)),
      cell(7, {}, k.expires_at ? h("span", { title: exact(k.expires_at) }, time(k.expires_at)) : h("span", { class: "muted" }, "never")),
      cell(8, {}, h("div", { class: "row-actions" }, actions)),
    );
  }

  async function change(k, action) {
    try {
      const updated = await api("POST", `/keys/${k.id}/${action}`);
      refresh(`${updated.name} is now ${updated.status}.`);
      announce(`${updated.name} is now ${updated.status}`);
    } catch (err) {
      mount(message, errorBox(err));
    }
  }

  async function revoke(k) {
    const ok = await confirmAction(
      `Revoke ${k.name}?`,
      `Revoking ${k.name} (${k.prefix}) is permanent: every request with it is refused from now on, and it cannot be re-enabled.`,
      "Revoke key",
    );
    if (ok) await change(k, "revoke");
  }

  async function remove(k) {
    const ok = await confirmAction(`Delete ${k.name}?`, `${k.name} (${k.prefix}) was never used. Deleting it removes it entirely.`, "Delete key");
    if (!ok) return;
    try {
      await api("DELETE", `/keys/${k.id}`);
      refresh(`${k.name} was deleted.`);
    } catch (err) {
      mount(message, errorBox(err));
    }
  }

  async function rotate(k) {
    const errors = h("div");
    const grace = select({ name: "grace", value: "0" }, [["0", "Stops at once"], ["3600", "Keeps working for 1 hour"], ["86400", "Keeps working for 24 hours"], ["604800", "Keeps working for 7 days"]]);
    const m = modal(
      `Rotate ${k.name}`,
      h(
        "form",
        {
          class: "stack",
          onsubmit: async (e) => {
            e.preventDefault();
            try {
              const rotated = await api("POST", `/keys/${k.id}/rotate`, { grace_period_seconds: Number(grace.value) });
              m.close("done");
              const shown = showSecret(rotated, rotated.key);
              delete rotated.key; // the panel holds the only copy
              await shown;
              refresh(`${rotated.name} has a new secret.`);
            } catch (err) {
              mount(errors, errorBox(err));
            }
          },
        },
        h("p", {}, `A new secret replaces the one of ${k.name} (${k.prefix}); its settings stay.`),
        field("The old secret", grace),
        errors,
        h("div", { class: "actions" }, h("button", { type: "button", class: "secondary", onclick: () => m.close() }, "Cancel"), h("button", {}, "Rotate key")),
      ),
    );
  }

  refresh();
}

/** Shows "Upgrade required" and disables creation when the account's plan lacks API access. */
async function planGate(account, banner, createButton) {
  banner.replaceChildren();
  createButton.disabled = false;
  if (!account) return;
  try {
    const acct = await api("GET", `/accounts/${encodeURIComponent(account)}`);
    if (acct.plan_details && acct.plan_details.api_access === false) {
      createButton.disabled = true;
      banner.append(
        h("div", { class: "upgrade", role: "alert" },
          h("strong", {}, "Upgrade required"),
          ` — the ${acct.plan} plan of account ${acct.id} does not include API access. Keys of this account are refused until the plan changes.`),
      );
    }
  } catch {
    // Not ours to judge here: the table shows what the API answers.
  }
}

const lines = (text) => text.split(/[\n,]/).map((s) => s.trim()).filter(Boolean);
const number = (v) => (v === "" ? undefined : Number(v));

/** The form control behind an API field name (`quotas.daily` → quota_daily). */
function controlOf(apiField) {
  const [head, tail] = (apiField ?? "").split(".");
  const nested = { quotas: "quota_", rate_limits: "rate_" };
  if (nested[head]) return tail ? `${nested[head]}${tail}` : `${nested[head]}total`;
  return { expires_at: "expires_on", expires_in_days: "expiry" }[head] ?? head;
}

/** The create form, then the show-once panel. */
function openCreate(me, refresh) {
  const root = me.account === null;
  const errors = h("div");
  const f = (name, props = {}) => h("input", { name, id: `create-${name}`, ...props });
  const category = select({ name: "category" }, [["", "None"], ["production", "Production"], ["development", "Development"], ["staging", "Staging"], ["custom", "Custom…"]]);
  const customCategory = f("category_custom", { hidden: true, "aria-label": "Custom category" });
  category.addEventListener("change", () => (customCategory.hidden = category.value !== "custom"));
  const expiry = select({ name: "expiry" }, [["", "Never"], ["30", "In 30 days"], ["60", "In 60 days"], ["90", "In 90 days"], ["365", "In 365 days"], ["date", "On a date…"]]);
  const expiryDate = f("expires_on", { type: "date", hidden: true, "aria-label": "Expiry date" });
  expiry.addEventListener("change", () => (expiryDate.hidden = expiry.value !== "date"));
  const scope = h(
    "fieldset",
    { class: "scope" },
    h("legend", {}, "Scope"),
    [["read:all", "Read only"], ["write:all", "Read-write"], ["admin", "Admin"]].map(([v, label], i) =>
      h("label", { class: "choice" }, h("input", { type: "radio", name: "scope", value: v, checked: i === 0 }), label),
    ),
  );
  const form = h(
    "form",
    { class: "stack create", novalidate: true },
    h("div", { class: "grid" },
      field("Name", f("name", { required: true, maxlength: 100, placeholder: "prod-main-app" }), "Say what it is for, without secrets or personal names"),
      field("Alias", f("alias", { maxlength: 64, placeholder: "crm-integration" }), "Optional, unique in the account"),
      root ? field("Account", f("account", { required: true, maxlength: 64 })) : null,
      h("div", { class: "field" }, h("label", { for: "create-category", class: "label" }, "Category"), category, customCategory),
    ),
    scope,
    field("More permissions", f("permissions", { placeholder: "license:manage, customer:read" }), "Comma-separated, such as license:manage"),
    field("Projects", f("projects", { placeholder: "p1, p2" }), "Comma-separated; empty reaches every project"),
    h("div", { class: "field" }, h("label", { for: "create-expiry", class: "label" }, "Expires"), expiry, expiryDate),
    h("fieldset", {}, h("legend", {}, "Quotas (rolling)"), h("div", { class: "grid" },
      ["total", "daily", "weekly", "monthly"].map((q) => field(q[0].toUpperCase() + q.slice(1), f(`quota_${q}`, { type: "number", min: 1, inputmode: "numeric" }))))),
    h("fieldset", {}, h("legend", {}, "Rate limits"), h("div", { class: "grid" },
      [["per_second", "Per second"], ["per_minute", "Per minute"], ["per_day", "Per day"]].map(([q, label]) => field(label, f(`rate_${q}`, { type: "number", min: 1, inputmode: "numeric" }))))),
    field("IP allowlist", h("textarea", { name: "ip_allowlist", rows: 2, placeholder: "203.0.113.0/24" }), "One address or CIDR block per line; empty allows every address"),
    field("Metadata", h("textarea", { name: "metadata", rows: 2, placeholder: "team=platform" }), "One key=value per line"),
    errors,
    h("div", { class: "actions" }, h("button", { type: "button", class: "secondary", onclick: () => m.close() }, "Cancel"), h("button", {}, "Create key")),
  );
  category.id = "create-category";
  expiry.id = "create-expiry";
  expiry.name = "expiry";
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const v = (name) => form.elements[name]?.value.trim() ?? "";
    const body = { name: v("name") };
    if (root) body.account = v("account");
    if (v("alias")) body.alias = v("alias");
    const cat = category.value === "custom" ? v("category_custom") : category.value;
    if (cat) body.category = cat;
    body.permissions = [form.elements.scope.value, ...lines(v("permissions"))];
    if (v("projects")) body.projects = lines(v("projects"));
    if (expiry.value === "date") body.expires_at = v("expires_on") ? `${v("expires_on")}T23:59:59Z` : "";
    else if (expiry.value) body.expires_in_days = Number(expiry.value);
    const quotas = Object.fromEntries(["total", "daily", "weekly", "monthly"].map((q) => [q, number(v(`quota_${q}`))]).filter(([, n]) => n !== undefined));
    if (Object.keys(quotas).length) body.quotas = quotas;
    const rates = Object.fromEntries(["per_second", "per_minute", "per_day"].map((q) => [q, number(v(`rate_${q}`))]).filter(([, n]) => n !== undefined));
    if (Object.keys(rates).length) body.rate_limits = rates;
    if (v("ip_allowlist")) body.ip_allowlist = lines(v("ip_allowlist"));
    if (v("metadata")) {
      body.metadata = Object.fromEntries(v("metadata").split("\n").filter((l) => l.trim()).map((l) => {
        const i = l.indexOf("=");
        return i < 0 ? [l.trim(), ""] : [l.slice(0, i).trim(), l.slice(i + 1).trim()];
      }));
    }
    try {
      const created = await api("POST", "/keys", body);
      m.close("created");
      const shown = showSecret(created, created.key);
      delete created.key; // the panel holds the only copy
      await shown;
      refresh(`${created.name} was created.`);
    } catch (err) {
      mount(errors, errorBox(err));
      form.elements[controlOf(err.field)]?.focus?.();
    }
  });
  const m = modal("Create API key", form);
  form.elements.name.focus();
}
