// The keyward dashboard: sign-in, then Account › API keys, a key's detail, the
// audit trail and the account, on top of /admin/v1 only. Routes live in the
// fragment (#/keys/…), so nothing but the static page is ever requested from
// /admin/ itself.
import { ApiError, api, session } from "./api.js";
import { errorBox } from "./dialogs.js";
import { field, h, mount } from "./dom.js";
import { accountPage } from "./views/account.js";
import { detailPage } from "./views/detail.js";
import { eventsPage } from "./views/events.js";
import { keysPage } from "./views/keys.js";

const app = document.getElementById("app");
let me = null;

function signInPage(problem) {
  const input = h("input", { id: "credential", name: "credential", type: "password", autocomplete: "off", required: true, spellcheck: "false" });
  const errors = h("div", {}, problem ? errorBox(problem) : null);
  const form = h(
    "form",
    {
      class: "signin stack",
      onsubmit: async (e) => {
        e.preventDefault();
        session.signIn(input.value.trim());
        input.value = "";
        await start();
      },
    },
    h("h1", {}, "keyward"),
    h("p", {}, "Sign in with the admin token or an API key holding the admin permission. It is kept in this tab only."),
    field("Admin token or admin key", input),
    errors,
    h("button", {}, "Sign in"),
  );
  mount(app, h("main", { class: "narrow" }, form));
  input.focus();
}

function signOut() {
  session.signOut();
  me = null;
  history.replaceState(null, "", location.pathname);
  signInPage();
}

function layout() {
  const main = h("main", { id: "main", tabindex: "-1" });
  const who = me.account === null ? "Admin token · every account" : `${me.actor} · account ${me.account}`;
  const link = (hash, text) => h("a", { href: hash, "aria-current": location.hash.startsWith(hash) ? "page" : null }, text);
  mount(
    app,
    h("a", { href: "#main", class: "skip" }, "Skip to content"),
    h("header", { class: "top" },
      h("strong", { class: "brand" }, "keyward"),
      h("nav", { "aria-label": "Sections" }, link("#/keys", "API keys"), link("#/events", "Audit trail"), link("#/account", "Account")),
      h("span", { class: "who muted" }, who),
      h("button", { type: "button", class: "secondary small", onclick: signOut }, "Sign out")),
    main,
  );
  return main;
}

function route() {
  if (!me) return;
  const main = layout();
  const [, section, id] = location.hash.split("/");
  if (section === "keys" && id) detailPage(main, decodeURIComponent(id));
  else if (section === "events") eventsPage(main, me);
  else if (section === "account") accountPage(main, me);
  else keysPage(main, me);
}

async function start() {
  if (!session.credential) return signInPage();
  try {
    me = await api("GET", "/me");
  } catch (err) {
    session.signOut();
    return signInPage(err instanceof ApiError ? err : new Error(String(err)));
  }
  if (!location.hash) location.hash = "#/keys";
  else route();
}

window.addEventListener("hashchange", route);
window.addEventListener("unhandledrejection", (e) => {
  e.preventDefault();
  mount(document.getElementById("main") ?? app, errorBox(e.reason));
});
start();
