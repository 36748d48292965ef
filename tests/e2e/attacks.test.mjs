// Issue 7's attack suite: hostile request lines sent byte for byte over a socket (no
// client normalizes them), each asserted twice — by keyward's answer and by the
// example origin's record of what reached it. What keyward checks is exactly what
// the origin receives; every ambiguity resolves towards refusing.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { client, expectError, rawRequest, startKeyward, startOrigin } from "./harness.mjs";

let origin, kw, api;
const keys = {};

const RULES = [
  { method: "POST", path: "/licenses/**", permission: "license:manage" },
  { method: "DELETE", path: "/records/**", permission: "records:delete" },
  { method: "GET", path: "/reports/**", permission: "reports:read" },
];

before(async () => {
  origin = await startOrigin();
  kw = await startKeyward({
    originUrl: origin.url,
    vars: { PUBLIC_PATHS: "/health,/docs/**", ROUTE_PERMISSIONS: JSON.stringify(RULES) },
  });
  api = client(kw.base);
  const make = async (name, permissions, projects) =>
    (keys[name] = (await api.createKey({ account: "attacks", name, permissions, projects })).key);
  await make("p1", ["write:all"], ["p1"]);
  await make("write", ["write:all"]);
  await make("read", ["read:all"]);
  await make("records", ["write:all", "records:delete"]);
  await make("reports", ["read:all", "reports:read"]);
});
after(async () => {
  await kw?.stop();
  await origin?.stop();
});

/** A raw request: `line` is "METHOD target", sent as is. */
async function send(line, { key, headers = [] } = {}) {
  const head = [`${line} HTTP/1.1`];
  if (key) head.push(`Authorization: Bearer ${key}`);
  head.push(...headers);
  origin.forget();
  const res = await rawRequest(kw.base, head.join("\r\n"));
  return { res, received: origin.received() };
}

/** Refused with `status`/`code`, and nothing reached the origin. */
async function refused(line, opts, status, code, message) {
  const { res, received } = await send(line, opts);
  assert.equal(res.status, status, `${line}: ${res.status} ${res.body}`);
  // A HEAD answer has no body to read the code from.
  if (!line.startsWith("HEAD ")) {
    assert.equal(res.json?.code, code, `${line}: ${res.body}`);
    if (message) assert.equal(res.json?.error, message);
  }
  assert.deepEqual(received, [], `${line} reached the origin`);
  return res;
}

/** Passed, and the origin received exactly `method` and `target`. */
async function reached(line, opts, method, target) {
  const { res, received } = await send(line, opts);
  assert.equal(res.status, 200, `${line}: ${res.status} ${res.body}`);
  assert.equal(received.length, 1, `${line}: origin saw ${JSON.stringify(received)}`);
  assert.equal(received[0].method, method);
  assert.equal(received[0].target, target);
  return received[0];
}

describe("one canonical path", () => {
  test("project scope holds whatever the case, encoding or parameters", async () => {
    const opts = { key: keys.p1 };
    const p2 = "Forbidden: no access to project 'p2'";
    await refused("GET /PROJECTS/p2/tasks", opts, 403, "project_forbidden", p2);
    await refused("GET /Projects/p2/tasks", opts, 403, "project_forbidden", p2);
    await refused("GET /projects/p1/../p2/tasks", opts, 403, "project_forbidden", p2);
    await refused("GET /projects/p1/%2e%2E/p2/tasks", opts, 403, "project_forbidden", p2);
    await refused("GET //projects//p2//tasks", opts, 403, "project_forbidden", p2);
    await refused("GET /projects/%70%32/tasks", opts, 403, "project_forbidden", p2);
    await refused("GET /projects/p1/projects/p2", opts, 403, "project_forbidden", p2);
    // A differently cased id is another project to a case-sensitive origin.
    await refused("GET /projects/P1/tasks", opts, 403, "project_forbidden", "Forbidden: no access to project 'P1'");
    for (const line of ["GET /projects%2Fp2/tasks", "GET /projects%2fp2/tasks", "GET /projects;x=1/p2/tasks", "GET /projects/p1;/tasks"]) {
      const res = await refused(line, opts, 400, "invalid_request");
      assert.equal(res.json.field, "path");
    }
    await reached("GET /projects/p1//tasks/./x?q=%2F", opts, "GET", "/projects/p1/tasks/x?q=%2F");
  });

  test("route rules hold whatever the case, encoding or parameters", async () => {
    const opts = { key: keys.write };
    const msg = "Forbidden: missing permission 'license:manage'";
    for (const line of ["POST /Licenses/1", "POST /LICENSES/1/", "POST /%6Cicenses/1", "POST //licenses/1", "POST /x/../licenses/1"]) {
      await refused(line, opts, 403, "insufficient_permissions", msg);
    }
    await refused("POST /licenses;a/1", opts, 400, "invalid_request");
    await refused("POST /licenses%3Ba/1", opts, 400, "invalid_request");
  });

  test("public paths are exact and cannot be walked out of", async () => {
    for (const line of ["GET /docs/..;/internal", "GET /docs/..%2Finternal", "GET /docs/..%5Cinternal", "GET /docs/%252e%252e/internal", "GET /docs/a%00b", "GET /docs/a%0d%0aX-Injected:%201", "GET /docs/%C0%AE%C0%AE/internal", "GET /docs/%zz"]) {
      await refused(line, {}, 400, "invalid_request");
    }
    // Dot segments are resolved first: the result is not public.
    await refused("GET /docs/../internal", {}, 401, "invalid_key", "Invalid API Key");
    await refused("GET /docs/%2e%2e/internal", {}, 401, "invalid_key");
    await refused("GET /docs/.%2E/internal", {}, 401, "invalid_key");
    // Matching that removes requirements does not fold case.
    await refused("GET /DOCS/x", {}, 401, "invalid_key");
    await refused("GET /Health", {}, 401, "invalid_key");
    await reached("GET /docs//a/./b/%7Euser", {}, "GET", "/docs/a/b/~user");
    await reached("GET /docs/caf%c3%a9?x=%2F..%2F", {}, "GET", "/docs/caf%C3%A9?x=%2F..%2F");
  });

  test("requests the runtime cannot parse never reach the origin", async () => {
    for (const line of ["GET *", "GET http://evil.example/docs/x", "CONNECT /docs/x"]) {
      const { res, received } = await send(line);
      assert.ok(res.status >= 400, `${line}: ${res.status}`);
      assert.deepEqual(received, []);
    }
  });
});

describe("methods", () => {
  test("method overrides are checked as the method they name", async () => {
    const del = "Forbidden: missing permission 'records:delete'";
    const opts = (h) => ({ key: keys.write, headers: [h] });
    await refused("POST /records/1", opts("X-HTTP-Method-Override: DELETE"), 403, "insufficient_permissions", del);
    await refused("POST /records/1", opts("X-HTTP-Method: delete"), 403, "insufficient_permissions", del);
    await refused("POST /records/1", opts("X-Method-Override: DELETE"), 403, "insufficient_permissions", del);
    await refused("POST /records/1", opts("X_HTTP_Method_Override: DELETE"), 403, "insufficient_permissions", del);
    await refused("POST /records/1?_method=DELETE", { key: keys.write }, 403, "insufficient_permissions", del);
    // A read-only key cannot POST by naming GET as the override.
    await refused("POST /x", { key: keys.read, headers: ["X-HTTP-Method-Override: GET"] }, 403, "insufficient_permissions", "Forbidden: missing permission 'write:all'");
    // Overrides that disagree, or are not one method, are refused.
    await refused("POST /x", { key: keys.records, headers: ["X-HTTP-Method-Override: DELETE", "X-HTTP-Method: PUT"] }, 400, "invalid_request");
    await refused("POST /x", { key: keys.records, headers: ["X-HTTP-Method-Override: DELETE, GET"] }, 400, "invalid_request");
    // Held: forwarded with the override, as sent.
    const seen = await reached("POST /records/1", { key: keys.records, headers: ["X-HTTP-Method-Override: DELETE"] }, "POST", "/records/1");
    assert.equal(seen.headers["x-http-method-override"], "DELETE");
  });

  test("HEAD needs what GET needs; other methods are forwarded as themselves and need write:all", async () => {
    const reports = "Forbidden: missing permission 'reports:read'";
    await refused("GET /reports/1", { key: keys.read }, 403, "insufficient_permissions", reports);
    await refused("HEAD /reports/1", { key: keys.read }, 403, "insufficient_permissions");
    const { res, received } = await send("HEAD /reports/1", { key: keys.reports });
    assert.equal(res.status, 200);
    assert.deepEqual(received.map((r) => r.method), ["HEAD"]);
    for (const m of ["PURGE", "PROPFIND", "QUERY"]) {
      await refused(`${m} /x`, { key: keys.read }, 403, "insufficient_permissions", "Forbidden: missing permission 'write:all'");
      await reached(`${m} /x`, { key: keys.write }, m, "/x");
    }
    await refused("TRACE /x", { key: keys.write }, 405, "method_not_allowed");
  });
});

describe("headers", () => {
  test("no client header reaches the origin as keyward's identity, in any spelling", async () => {
    const spoof = [
      "X-Keyward-Key-Id: key_evil",
      "X-Keyward_Key-Id: key_evil",
      "X_Keyward_Account: evil",
      "x-keyward-permissions: admin",
      "X-KEYWARD-PROJECTS: p2",
      "X-Keyward-Environment: production",
      "x_keyward_something: 1",
    ];
    for (const [line, key] of [["GET /projects/p1/x", keys.p1], ["GET /docs/x", undefined]]) {
      const { res, received } = await send(line, { key, headers: spoof });
      assert.equal(res.status, 200, res.body);
      const h = received[0].headers;
      const folded = Object.keys(h).filter((n) => n.replace(/_/g, "-").startsWith("x-keyward-"));
      if (key) {
        assert.deepEqual(folded.sort(), ["x-keyward-account", "x-keyward-environment", "x-keyward-key-id", "x-keyward-permissions", "x-keyward-projects"]);
        assert.match(h["x-keyward-key-id"], /^key_[0-9A-Za-z]{22}$/);
        assert.equal(h["x-keyward-account"], "attacks");
        assert.equal(h["x-keyward-permissions"], "write:all");
        assert.equal(h["x-keyward-projects"], "p1");
      } else {
        assert.deepEqual(folded, [], "a public path carries no identity at all");
      }
      assert.equal(h.authorization, undefined);
    }
  });

  test("values written into headers are closed to header syntax at input", async () => {
    for (const [field, value] of [["projects", "p1\r\nX-Keyward-Account: other"], ["projects", "p1,p2"], ["permissions", "admin\nx: y"], ["permissions", "read:all admin"]]) {
      const res = await api.admin("POST", "/keys", { account: "attacks", name: "x", [field]: [value] });
      expectError(assert, res, 400, "invalid_request");
      assert.equal(res.json.field, field);
    }
  });
});
