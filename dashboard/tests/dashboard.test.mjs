// The dashboard in a real browser: Debian's Chromium driven by playwright-core,
// against `wrangler dev` and the example origin. Every step is checked twice where
// it can be: on the page, and through the gate or the API.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import os from "node:os";
import { after, afterEach, before, describe, test } from "node:test";
import { chromium } from "playwright-core";
import { ADMIN_TOKEN, ROOT, client, eventually, startKeyward, startOrigin } from "../../tests/e2e/harness.mjs";

// The README's screenshots are written by `make screenshots` (SCREENSHOTS_DIR=docs);
// `make test` writes them to a throwaway directory, so it changes no tracked file.
const DOCS = process.env.SCREENSHOTS_DIR
  ? path.resolve(ROOT, process.env.SCREENSHOTS_DIR)
  : fs.mkdtempSync(path.join(os.tmpdir(), "keyward-screenshots-"));
const ACCOUNT = `dash-${Date.now().toString(36)}`;
const FREE = `${ACCOUNT}-free`;
const CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

let origin, kw, api, browser;

before(async () => {
  origin = await startOrigin();
  // Sharing detection at 2 networks an hour: the dashboard tests' own requests
  // all come from one address.
  kw = await startKeyward({ originUrl: origin.url, vars: { SHARING_NETWORKS_PER_HOUR: "2" } });
  api = client(kw.base);
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_ARGS });
  fs.mkdirSync(DOCS, { recursive: true });
});
after(async () => {
  await browser?.close();
  await kw?.stop();
  await origin?.stop();
});

/**
 * A fresh browser tab that records what must never happen: uncaught errors,
 * console errors (the only ones allowed are the browser's own notes of API
 * answers the page shows as messages), and script dialogs (an XSS would fire one).
 */
async function openPage(viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: kw.base });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const problems = [];
  const consoleText = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    consoleText.push(m.text());
    if (m.type() === "error" && !/^Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())) {
      problems.push(`console error: ${m.text()}`);
    }
  });
  page.on("dialog", async (d) => {
    problems.push(`script dialog: ${d.message()}`);
    await d.dismiss();
  });
  return { page, context, problems, consoleText };
}

async function signIn(page, credential) {
  await page.goto(`${kw.base}/admin/`);
  await page.getByLabel("Admin token or admin key").fill(credential);
  await page.getByRole("button", { name: "Sign in" }).click();
}

const row = (page, name) => page.locator("tr", { has: page.getByRole("link", { name, exact: true }) });
const gate = (key, p = "/things") => api.call("GET", p, { key });

describe("the admin token's dashboard", () => {
  let page, problems, consoleText, context;
  let created; // { id, secret } of the key made through the form

  before(async () => {
    ({ page, problems, consoleText, context } = await openPage());
  });
  afterEach(async (t) => {
    // A failed step leaves a picture of the page behind, for whoever reads the log.
    if (t.passed === false || process.env.DASHBOARD_SHOTS) {
      const file = path.join(os.tmpdir(), `keyward-dashboard-${t.name.replace(/\W+/g, "-").slice(0, 60)}.png`);
      await page.screenshot({ path: file, fullPage: true }).catch(() => {});
      console.log(`# screenshot of "${t.name}": ${file}`);
    }
  });
  after(async () => {
    await context?.close();
  });

  test("is served by the worker at /admin/ with a CSP that forbids inline script and other origins", async () => {
    const res = await fetch(`${kw.base}/admin/`);
    assert.equal(res.status, 200);
    const csp = res.headers.get("content-security-policy");
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /connect-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
    assert.equal(res.headers.get("x-content-type-options"), "nosniff");
    const js = await fetch(`${kw.base}/admin/app.js`);
    assert.equal(js.status, 200);
    assert.match(js.headers.get("content-security-policy"), /default-src 'none'/);
  });

  test("a wrong credential shows the API's answer; the right one signs in", async () => {
    await signIn(page, "not-the-token");
    await page.getByRole("alert").filter({ hasText: "Invalid API Key" }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    await signIn(page, ADMIN_TOKEN);
    await page.getByRole("heading", { name: "API keys" }).waitFor();
    await page.getByText("Admin token · every account").waitFor();
    assert.equal(await page.evaluate(() => localStorage.length), 0, "nothing in localStorage");
  });

  test("create a key: the secret is shown once, copied, then gone from the page", async () => {
    await page.getByRole("button", { name: "Create API key" }).click();
    const dialog = page.getByRole("dialog", { name: "Create API key" });
    await dialog.getByLabel("Name", { exact: true }).fill("browser key");
    await dialog.getByLabel("Alias").fill("browser-1");
    await dialog.getByLabel("Account").fill(ACCOUNT);
    await dialog.getByLabel("Category", { exact: true }).selectOption("staging");
    await dialog.getByLabel("Read-write").check();
    await dialog.getByLabel("Projects").fill("p1, p2");
    await dialog.getByLabel("Expires").selectOption("90");
    await dialog.getByLabel("Per minute").fill("100");
    await dialog.getByLabel("Metadata").fill("team=platform\nticket=OPS-7");
    await dialog.getByRole("button", { name: "Create key" }).click();

    const panel = page.getByRole("dialog", { name: "Copy your new API key" });
    await panel.waitFor();
    const secret = await panel.locator("#secret").inputValue();
    assert.match(secret, /^kw_dev_[0-9A-Za-z]{55}$/);
    await panel.getByText("it cannot be shown again").waitFor();
    await panel.getByRole("button", { name: "Copy" }).click();
    await panel.getByText("Copied to the clipboard").waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret);
    await page.screenshot({ path: path.join(DOCS, "create-secret.png") });
    await panel.getByRole("button", { name: "I have stored it" }).click();
    await panel.waitFor({ state: "detached" });

    const html = await page.content();
    assert.ok(!html.includes(secret), "the secret left the page");
    assert.ok(!page.url().includes(secret));
    const stored = await page.evaluate(() => JSON.stringify({ ...sessionStorage, ...localStorage }));
    assert.ok(!stored.includes(secret), "the secret is in no storage");
    assert.ok(!consoleText.some((t) => t.includes(secret)), "the secret is in no console line");

    const listed = (await api.admin("GET", `/keys?account=${ACCOUNT}`)).json.items;
    assert.equal(listed.length, 1);
    const k = listed[0];
    assert.deepEqual([k.name, k.alias, k.category, k.permissions, k.projects], ["browser key", "browser-1", "staging", ["write:all"], ["p1", "p2"]]);
    assert.deepEqual([k.rate_limits, k.metadata], [{ per_minute: 100 }, { team: "platform", ticket: "OPS-7" }]);
    created = { id: k.id, secret };
  });

  test("the key works at the gate, and the table shows its usage count and last use", async () => {
    assert.equal((await gate(created.secret)).status, 200);
    await page.getByLabel("Account").fill(ACCOUNT);
    await page.getByLabel("Account").press("Enter");
    const r = row(page, "browser key");
    await eventually(async () => {
      await page.getByLabel("Status", { exact: true }).selectOption("active");
      assert.equal(await r.locator("[data-usage]").getAttribute("data-usage"), "1");
    });
    await r.getByText(/^(just now|\d+ seconds ago)$/).waitFor();
    const title = await r.locator("[data-last-used] time").getAttribute("title");
    assert.match(title, /GMT$/, "the exact time on hover");
    await r.getByText("browser-1").waitFor();
    await r.getByText("staging").first().waitFor();
    await r.locator(".badge-active").waitFor();
    await page.getByLabel("Status", { exact: true }).selectOption("");
  });

  test("rotate: the new secret in the same panel; the old one stops", async () => {
    await row(page, "browser key").getByRole("button", { name: "Rotate browser key" }).click();
    const dialog = page.getByRole("dialog", { name: "Rotate browser key" });
    await dialog.getByRole("button", { name: "Rotate key" }).click();
    const panel = page.getByRole("dialog", { name: "Copy your new API key" });
    const fresh = await panel.locator("#secret").inputValue();
    assert.notEqual(fresh, created.secret);
    await panel.getByRole("button", { name: "I have stored it" }).click();
    assert.equal((await gate(fresh)).status, 200);
    assert.equal((await gate(created.secret)).json.code, "invalid_key");
    created.secret = fresh;
  });

  test("deactivate refuses the next request; activate lifts it", async () => {
    await row(page, "browser key").getByRole("button", { name: "Deactivate browser key" }).click();
    await row(page, "browser key").locator(".badge-inactive").waitFor();
    const refused = await gate(created.secret);
    assert.deepEqual([refused.status, refused.json.code], [401, "key_inactive"]);
    await row(page, "browser key").getByRole("button", { name: "Activate browser key" }).click();
    await row(page, "browser key").locator(".badge-active").waitFor();
    assert.equal((await gate(created.secret)).status, 200);
  });

  test("filter and search", async () => {
    await api.createKey({ account: ACCOUNT, name: "other key", category: "production" });
    await page.getByLabel("Status", { exact: true }).selectOption("");
    await row(page, "other key").waitFor();
    await page.getByLabel("Search").fill("BROWSER");
    await row(page, "other key").waitFor({ state: "detached" });
    await row(page, "browser key").waitFor();
    await page.getByLabel("Search").fill("nothing-like-this");
    await page.getByText("No keys match").waitFor();
    await page.getByLabel("Search").fill("");
    await page.getByLabel("Category", { exact: true }).fill("production");
    await page.getByLabel("Category", { exact: true }).press("Enter");
    await row(page, "other key").waitFor();
    await row(page, "browser key").waitFor({ state: "detached" });
    await page.getByLabel("Category", { exact: true }).fill("");
    await page.getByLabel("Category", { exact: true }).press("Enter");
    await row(page, "browser key").waitFor();
  });

  test("the key detail: live counters, the request log filtered to 429s, and the usage chart", async () => {
    const limited = await api.createKey({ account: ACCOUNT, name: "limited key", rate_limits: { per_minute: 2 } });
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await gate(limited.key, `/reports/${i}`)).status);
    assert.deepEqual(statuses, [200, 200, 429]);
    await page.goto(`${kw.base}/admin/#/keys/${limited.id}`);
    await page.getByRole("heading", { name: "limited key" }).waitFor();
    const perMinute = page.locator('[data-limit="per_minute"]');
    await perMinute.getByText("2 / 2").waitFor();
    assert.equal(await perMinute.locator("progress").getAttribute("max"), "2");
    const chart = page.locator("figure.chart");
    await chart.waitFor();
    assert.equal(await chart.getAttribute("data-total-requests"), "2");
    assert.equal(await chart.getAttribute("data-total-credits"), "2");
    assert.equal(await chart.locator(".total-requests").textContent(), "2");
    assert.equal(await chart.locator(".total-credits").textContent(), "2");
    assert.equal(await chart.locator("rect.bar").count(), 24);
    await page.getByLabel("Show").selectOption("day");
    await page.locator("figure.chart rect.bar").nth(29).waitFor();
    assert.equal(await page.locator("figure.chart rect.bar").count(), 30);
    assert.equal(await page.locator("figure.chart").getAttribute("data-total-requests"), "2");
    // Admitted requests' log rows arrive after their answers: wait for all three.
    await eventually(async () => {
      await page.getByLabel("Status", { exact: true }).selectOption("2xx");
      await page.getByLabel("Status", { exact: true }).selectOption("");
      assert.equal(await page.locator("table.logs tbody tr").count(), 3);
    }, 10_000);
    await page.getByLabel("Status", { exact: true }).selectOption("429");
    await eventually(async () => {
      const rows = page.locator("table.logs tbody tr");
      assert.equal(await rows.count(), 1);
      assert.equal(await rows.first().getAttribute("data-status"), "429");
    });
    await page.locator("table.logs").getByText("rate_limited").waitFor();
    await page.locator("table.logs").getByText("GET /reports/2").waitFor();
    await page.getByLabel("Status", { exact: true }).selectOption("");
    await page.screenshot({ path: path.join(DOCS, "key-detail.png"), fullPage: true });
    await page.getByRole("link", { name: "← API keys" }).click();
    await page.getByRole("heading", { name: "API keys" }).waitFor();
  });

  test("revoke asks first, naming the key and saying it is permanent", async () => {
    await page.getByLabel("Account").fill(ACCOUNT);
    await page.getByLabel("Account").press("Enter");
    await row(page, "browser key").getByRole("button", { name: "Revoke browser key" }).click();
    const confirm = page.getByRole("dialog", { name: "Revoke browser key?" });
    await confirm.getByText(/browser key \(kw_dev_\w+\) is permanent/).waitFor();
    await confirm.getByRole("button", { name: "Cancel" }).click();
    assert.equal((await gate(created.secret)).status, 200, "cancel changes nothing");
    await row(page, "browser key").getByRole("button", { name: "Revoke browser key" }).click();
    await page.getByRole("dialog", { name: "Revoke browser key?" }).getByRole("button", { name: "Revoke key" }).click();
    await row(page, "browser key").locator(".badge-revoked").waitFor();
    assert.equal((await gate(created.secret)).json.code, "key_revoked");
    assert.equal(await row(page, "browser key").getByRole("button", { name: "Rotate browser key" }).count(), 0);
  });

  test("delete is offered only for a key never used", async () => {
    await api.createKey({ account: ACCOUNT, name: "unused key" });
    await page.getByLabel("Status", { exact: true }).selectOption("active");
    await page.getByLabel("Status", { exact: true }).selectOption("");
    assert.equal(await row(page, "limited key").getByRole("button", { name: /^Delete/ }).count(), 0);
    await row(page, "unused key").getByRole("button", { name: "Delete unused key" }).click();
    await page.getByRole("dialog", { name: "Delete unused key?" }).getByRole("button", { name: "Delete key" }).click();
    await row(page, "unused key").waitFor({ state: "detached" });
    await page.getByText("unused key was deleted.").waitFor();
  });

  test("a name full of markup renders as text, and runs nothing", async () => {
    const evil = `<img src=x onerror=alert(1)><script>alert(2)</script>`;
    await api.createKey({ account: ACCOUNT, name: evil, alias: "xss", metadata: { note: "<b onmouseover=alert(3)>x</b>" } });
    await page.getByLabel("Search").fill("xss");
    const cell = page.getByRole("link", { name: evil, exact: true });
    await cell.waitFor();
    assert.equal(await cell.textContent(), evil);
    assert.equal(await page.locator("table img, table script, table b").count(), 0);
    await cell.click();
    await page.getByRole("heading", { name: evil }).waitFor();
    await page.getByText("<b onmouseover=alert(3)>x</b>").waitFor();
    assert.equal(await page.locator("main img, main b").count(), 0);
    await page.goBack();
    await page.getByLabel("Search").fill("");
  });

  test("the table at 1280 px: screenshot for the README", async () => {
    await page.goto(`${kw.base}/admin/#/keys`);
    await page.getByLabel("Account").fill(ACCOUNT);
    await page.getByLabel("Account").press("Enter");
    await row(page, "limited key").waitFor();
    await page.screenshot({ path: path.join(DOCS, "keys-table.png") });
  });

  test("'Upgrade required' on an account whose plan has no API access, with create disabled", async () => {
    await api.createKey({ account: FREE, name: "free key" });
    assert.equal((await api.admin("PUT", `/accounts/${FREE}`, { plan: "free" })).status, 200);
    await page.getByLabel("Account").fill(FREE);
    await page.getByLabel("Account").press("Enter");
    await page.getByRole("alert").filter({ hasText: "Upgrade required" }).waitFor();
    assert.ok(await page.getByRole("button", { name: "Create API key" }).isDisabled());
    await page.getByLabel("Account").fill(ACCOUNT);
    await page.getByLabel("Account").press("Enter");
    await row(page, "limited key").waitFor();
    assert.ok(await page.getByRole("button", { name: "Create API key" }).isEnabled());
    // The account page says it too, and offers the plan change.
    await page.getByRole("link", { name: "Account" }).click();
    await page.getByLabel("Account id").fill(FREE);
    await page.getByRole("button", { name: "Show" }).click();
    await page.getByRole("alert").filter({ hasText: "Upgrade required" }).waitFor();
    await page.getByLabel("Plan").selectOption("pro");
    await page.getByRole("button", { name: "Change plan" }).click();
    await page.getByRole("heading", { name: `${FREE}: pro plan` }).waitFor();
    assert.equal((await api.admin("GET", `/accounts/${FREE}`)).json.plan, "pro");
    // The change's progress through the account's keys (one here).
    await page.getByText(/^[01] of 1 keys updated$/).waitFor();
  });

  test("credits on the key's and the account's page, child keys under their parent, and a sharing alert", async () => {
    const CREDITED = `${ACCOUNT}-credits`;
    const balance = { remaining: 900, refill: { amount: 900, interval: "month", day: 15 } };
    assert.equal((await api.admin("PUT", `/accounts/${CREDITED}`, { credits: balance })).status, 200);
    const parent = await api.createKey({ account: CREDITED, name: "reseller key", credits: { remaining: 5, refill: { amount: 5, interval: "day" } } });
    const child = await api.createKey({ account: CREDITED, name: "customer key", parent: parent.id });
    for (const ip of ["198.51.100.1", "203.0.113.1", "192.0.2.1"]) {
      assert.equal((await api.call("GET", "/things", { key: child.key, headers: { "cf-connecting-ip": ip } })).status, 200);
    }
    await page.getByLabel("Account id").fill(CREDITED);
    await page.getByRole("button", { name: "Show" }).click();
    await page.locator('.credits [data-credits="897"]').waitFor();
    await page.getByText("900 every month on day 15 (UTC)").waitFor();
    // The list: the child right under its parent, though it is newer.
    await page.getByRole("link", { name: "API keys" }).click();
    await page.getByLabel("Account", { exact: true }).fill(CREDITED);
    await page.getByLabel("Account", { exact: true }).press("Enter");
    // The unfiltered list (every account) also holds the newest keys: wait for the filtered one.
    await page.locator(`.table-host[data-account="${CREDITED}"] table.keys`).waitFor();
    await row(page, "customer key").waitFor();
    const order = await page.locator("table.keys tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.keyId));
    assert.deepEqual(order, [parent.id, child.id]);
    assert.equal(await row(page, "customer key").getAttribute("class"), "child depth-1");
    // The parent's page: its balance, its refill, its children.
    await page.goto(`${kw.base}/admin/#/keys/${parent.id}`);
    await page.getByRole("heading", { name: "reseller key" }).waitFor();
    await page.locator('[data-credits="2"]').waitFor();
    await page.getByText("5 every day (UTC)").waitFor();
    await page.getByRole("heading", { name: "Child keys" }).waitFor();
    // The child's page: where it is carved from, and that it looks shared.
    await page.locator("ul.children").getByRole("link", { name: "customer key" }).click();
    await page.getByRole("alert").filter({ hasText: "Possibly shared" }).waitFor();
    assert.match(await page.getByRole("alert").filter({ hasText: "Possibly shared" }).textContent(), /3 client networks in one hour \(more than 2\)/);
    await page.getByRole("link", { name: parent.id }).waitFor();
    await page.getByRole("link", { name: "← API keys" }).click();
    await page.getByRole("heading", { name: "API keys" }).waitFor();
  });

  test("the audit trail, filtered by action", async () => {
    await page.getByRole("link", { name: "Audit trail" }).click();
    await page.getByRole("heading", { name: "Audit trail" }).waitFor();
    await page.getByLabel("Account").fill(ACCOUNT);
    await page.getByLabel("Account").press("Enter");
    await page.getByLabel("Action").selectOption("key.revoked");
    const rows = page.locator("table.events tbody tr");
    await eventually(async () => assert.equal(await rows.count(), 1));
    await rows.first().getByText("admin_token").waitFor();
    await page.getByLabel("Action").selectOption("");
    await eventually(async () => assert.ok((await rows.count()) >= 8));
  });

  test("keyboard: focus stays inside a dialog, and is visible", async () => {
    await page.getByRole("link", { name: "API keys" }).click();
    await page.getByRole("button", { name: "Create API key" }).focus();
    await page.keyboard.press("Enter");
    const dialog = page.getByRole("dialog", { name: "Create API key" });
    await dialog.waitFor();
    for (let i = 0; i < 40; i++) {
      await page.keyboard.press("Tab");
      const inside = await page.evaluate(() => {
        const el = document.activeElement;
        return !!el && (el === document.body || !!el.closest("dialog"));
      });
      assert.ok(inside, `focus left the dialog after ${i + 1} tabs`);
    }
    // On a control reached by the keyboard, the focus ring shows.
    for (let i = 0; i < 10 && (await page.evaluate(() => document.activeElement?.tagName)) !== "INPUT"; i++) {
      await page.keyboard.press("Tab");
    }
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.equal(outline, "solid", "focus is visible");
    await page.keyboard.press("Escape");
    await dialog.waitFor({ state: "detached" });
  });

  test("at 390 px the page does not overflow sideways", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const hash of ["#/keys", "#/events", "#/account"]) {
      await page.goto(`${kw.base}/admin/${hash}`);
      await page.locator("main h1").waitFor();
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 390, `${hash}: ${width}px wide`);
    }
    // The key list reads without scrolling a table sideways: every cell of every
    // row, the actions included, is on screen, under its column's name.
    await page.goto(`${kw.base}/admin/#/keys`);
    await page.locator("table.keys tbody tr").first().waitFor();
    const layout = await page.evaluate(() => {
      const host = document.querySelector(".table-host");
      const cells = [...document.querySelectorAll("table.keys tbody td")];
      return {
        scroll: host.scrollWidth - host.clientWidth,
        right: Math.max(...cells.map((c) => c.getBoundingClientRect().right)),
        labels: [...new Set(cells.map((c) => getComputedStyle(c, "::before").content))],
      };
    });
    assert.ok(layout.scroll <= 0, `the key table scrolls ${layout.scroll}px sideways`);
    assert.ok(layout.right <= 390, `a cell ends at ${layout.right}px`);
    for (const label of ["Expires", "Actions", "Usage"]) assert.ok(layout.labels.includes(`"${label}"`), JSON.stringify(layout.labels));
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  test("sign out clears the session", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("Admin token or admin key").waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  });

  test("nothing went wrong in the browser along the way", () => {
    assert.deepEqual(problems, []);
  });
});

describe("an admin key's dashboard", () => {
  test("sees only its own account, and what the API refuses shows as a message", async () => {
    const admin = await api.createKey({ account: ACCOUNT, name: "dashboard admin", permissions: ["admin"] });
    const { page, problems, context } = await openPage();
    await signIn(page, admin.key);
    await page.getByText(`key:${admin.id} · account ${ACCOUNT}`).waitFor();
    await row(page, "limited key").waitFor();
    assert.equal(await page.getByLabel("Account").count(), 0, "no account filter for an admin key");
    const accounts = await page.locator("table.keys tbody tr").evaluateAll((rows) => rows.length);
    assert.ok(accounts >= 2);
    assert.equal(await row(page, "free key").count(), 0, "another account's key is not listed");
    // A key of another account, asked for directly: the API's 404, shown plainly.
    const foreign = (await api.admin("GET", `/keys?account=${FREE}`)).json.items[0];
    await page.goto(`${kw.base}/admin/#/keys/${foreign.id}`);
    await page.getByRole("alert").filter({ hasText: "key not found" }).waitFor();
    await page.getByRole("link", { name: "Account" }).click();
    await page.getByRole("heading", { name: `${ACCOUNT}: pro plan` }).waitFor();
    assert.equal(await page.getByRole("button", { name: "Change plan" }).count(), 0);
    assert.deepEqual(problems, []);
    await context.close();
  });
});
