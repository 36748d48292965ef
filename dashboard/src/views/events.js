// The audit trail: who created, changed, rotated, revoked which key, and
// suspensions; filters by account, key and action; paging.
import { api, latest, query } from "../api.js";
import { errorBox } from "../dialogs.js";
import { exact, field, h, mount, select } from "../dom.js";

const ACTIONS = ["key.created", "key.updated", "key.rotated", "key.deactivated", "key.activated", "key.revoked", "key.deleted", "key.leaked", "key.suspended", "key.resumed", "key.expiring", "key.expired", "key.quota_threshold", "key.rate_limited", "account.plan_changed"];

export function eventsPage(main, me, initial = {}) {
  const root = me.account === null;
  const state = { account: "", key_id: initial.key_id ?? "", action: "", cursors: [null] };
  const host = h("div", { class: "table-host" });
  const on = (name) => (e) => {
    state[name] = e.target.value.trim();
    state.cursors = [null];
    draw();
  };
  mount(
    main,
    h("h1", {}, "Audit trail"),
    h("form", { class: "filters", onsubmit: (e) => e.preventDefault() },
      root ? field("Account", h("input", { name: "account", placeholder: "Every account", onchange: on("account") })) : null,
      field("Key id", h("input", { name: "key_id", value: state.key_id, placeholder: "key_…", onchange: on("key_id") })),
      field("Action", select({ name: "action", onchange: on("action") }, [["", "Any action"], ...ACTIONS.map((a) => [a, a])]))),
    host,
  );
  const current = latest();
  async function draw() {
    const mine = current();
    let page;
    try {
      page = await api("GET", `/events${query({ account: state.account, key_id: state.key_id, action: state.action, limit: 50, cursor: state.cursors.at(-1) })}`);
    } catch (err) {
      if (mine()) mount(host, errorBox(err));
      return;
    }
    if (!mine()) return;
    mount(
      host,
      page.items.length
        ? h("table", { class: "events" }, h("caption", { class: "visually-hidden" }, "Audit events"),
            h("thead", {}, h("tr", {}, ["Time (UTC)", "Actor", "Action", "Key", "Account", "Details"].map((c) => h("th", { scope: "col" }, c)))),
            h("tbody", {}, page.items.map((e) =>
              h("tr", {},
                h("td", {}, exact(e.at)),
                h("td", {}, e.actor),
                h("td", {}, h("code", {}, e.action)),
                h("td", {}, e.key_id ? h("a", { href: `#/keys/${e.key_id}` }, e.key_id) : "—"),
                h("td", {}, e.account),
                h("td", {}, e.details == null ? "" : h("code", { class: "details" }, JSON.stringify(e.details)))))))
        : h("p", { class: "empty" }, "No events match."),
      h("nav", { class: "pager", "aria-label": "Event pages" },
        state.cursors.length > 1 ? h("button", { type: "button", class: "secondary", onclick: () => { state.cursors = [null]; draw(); } }, "Newest") : "",
        page.cursor ? h("button", { type: "button", class: "secondary", onclick: () => { state.cursors.push(page.cursor); draw(); } }, "Older") : ""),
    );
  }
  draw();
}
