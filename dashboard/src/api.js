// The management API, as the signed-in admin. The credential lives in
// sessionStorage only (gone with the tab) and travels as Authorization: Bearer.

const TOKEN = "keyward.credential";

export const session = {
  get credential() {
    return sessionStorage.getItem(TOKEN);
  },
  signIn(credential) {
    sessionStorage.setItem(TOKEN, credential);
  },
  signOut() {
    sessionStorage.removeItem(TOKEN);
  },
};

/** An answer other than 2xx, carrying the API's own `error` text. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error ?? `The server answered ${status}`);
    this.status = status;
    this.code = body?.code ?? null;
    this.field = body?.field ?? null;
  }
}

export async function api(method, path, body) {
  const headers = { authorization: `Bearer ${session.credential ?? ""}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  let res;
  try {
    res = await fetch(`/admin/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    throw new ApiError(0, { error: "keyward could not be reached", code: "network" });
  }
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

/** A query string of the set values only. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

/**
 * For views that reload as filters change: `const current = latest()`, then in each
 * load `const mine = current();` and, after awaiting, `if (!mine()) return;` — an
 * answer that arrives after a newer request was made is dropped, never drawn.
 */
export function latest() {
  let n = 0;
  return () => {
    const ticket = ++n;
    return () => ticket === n;
  };
}
