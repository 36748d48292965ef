// The account: its plan and the plan's limits, "Upgrade required" when the plan
// has no API access, and the plan change (bootstrap token only).
import { api } from "../api.js";
import { errorBox } from "../dialogs.js";
import { field, h, mount, select } from "../dom.js";
import { credits } from "./detail.js";

export function accountPage(main, me) {
  const root = me.account === null;
  const host = h("div");
  const input = h("input", { name: "account", value: me.account ?? "", required: true, maxlength: 64 });
  mount(
    main,
    h("h1", {}, "Account"),
    root
      ? h("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); show(input.value.trim()); } },
          field("Account id", input), h("button", {}, "Show"))
      : null,
    host,
  );
  async function show(id) {
    if (!id) return;
    let acct;
    try {
      acct = await api("GET", `/accounts/${encodeURIComponent(id)}`);
    } catch (err) {
      mount(host, errorBox(err));
      return;
    }
    const d = acct.plan_details ?? {};
    const limit = (o, k) => (o?.[k] ? o[k].toLocaleString("en") : "none");
    const rows = [
      ["API access", d.api_access ? "included" : "not included"],
      ["Per key, per second", limit(d.rate_limits, "per_second")],
      ["Per key, per minute", limit(d.rate_limits, "per_minute")],
      ["Per key, per day", limit(d.rate_limits, "per_day")],
      ["Account-wide, per second", limit(d.account_limits, "per_second")],
      ["Account-wide, per minute", limit(d.account_limits, "per_minute")],
    ];
    // A plan change reaches the keys in batches; each key is held to the new plan
    // on its next request even before its turn.
    if (acct.keys_total > 0) {
      rows.push(["Latest plan change", `${acct.keys_updated.toLocaleString("en")} of ${acct.keys_total.toLocaleString("en")} keys updated`]);
    }
    const errors = h("div");
    mount(
      host,
      h("h2", {}, `${acct.id}: ${acct.plan} plan`),
      d.api_access === false
        ? h("div", { class: "upgrade", role: "alert" }, h("strong", {}, "Upgrade required"), ` — the ${acct.plan} plan does not include API access.`)
        : null,
      h("dl", { class: "facts" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      h("h3", {}, "Credits"),
      credits(acct.credits),
      root ? changePlan(acct, errors) : null,
      errors,
    );
  }
  async function changePlanTo(acct, plan, errors) {
    try {
      await api("PUT", `/accounts/${encodeURIComponent(acct.id)}`, { plan });
      show(acct.id);
    } catch (err) {
      mount(errors, errorBox(err));
    }
  }
  function changePlan(acct, errors) {
    const plans = h("select", { name: "plan" });
    api("GET", "/openapi.json")
      .then((doc) => {
        for (const p of doc.components.schemas.Plan.enum) plans.append(h("option", { value: p, selected: p === acct.plan }, p));
      })
      .catch((err) => mount(errors, errorBox(err)));
    return h("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); changePlanTo(acct, plans.value, errors); } },
      field("Plan", plans), h("button", {}, "Change plan"));
  }
  if (me.account) show(me.account);
}
