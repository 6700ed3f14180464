// The API client. The access token lives only in this module's memory; the refresh token
// is an HttpOnly cookie the page never sees, renewed through /api/auth/session/refresh with
// the double-submit CSRF header.

let access = null; // {token, expiresAt}
let me = null;
const listeners = new Set();

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `request failed (${status})`);
    this.status = status;
    this.code = err.code || "internal";
    this.details = err.details;
  }
}

export const currentUser = () => me;
export const accessToken = () => access && access.token;
export function onSession(fn) { listeners.add(fn); }

function setSession(body) {
  access = body ? { token: body.access_token, expiresAt: Date.now() + body.expires_in * 1000 } : null;
  me = body ? body.user : null;
  for (const fn of listeners) fn(me);
}

function csrf() {
  const m = document.cookie.match(/(?:^|;\s*)mh_csrf=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

async function sessionCall(path, body) {
  const res = await fetch(`/api/auth/session${path}`, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

export async function signIn(username, password) {
  setSession(await sessionCall("", { username, password }));
  return me;
}

export async function signUp(username, email, password) {
  await request("POST", "/api/auth/register", { username, email, password }, { auth: false });
  return signIn(username, password);
}

let refreshing = null;
/** A fresh access token from the cookie; one at a time across this browser's tabs. */
export function refresh() {
  if (!csrf()) { setSession(null); return Promise.resolve(); } // no session cookie pair
  if (!refreshing) {
    const run = async () => {
      try {
        setSession(await sessionCall("/refresh"));
      } catch (err) {
        setSession(null);
        if (err.status !== 401 && err.status !== 403) throw err;
      }
    };
    const locked = navigator.locks ? navigator.locks.request("mh-refresh", run) : run();
    refreshing = locked.finally(() => { refreshing = null; });
  }
  return refreshing;
}

export async function signOut() {
  try { await sessionCall("/logout"); } finally { setSession(null); }
}

async function liveToken() {
  if (access && access.expiresAt - Date.now() < 60_000) await refresh();
  return access && access.token;
}

/** A fresh enough access token (renewed a minute before it expires), or null. */
export { liveToken };

export async function request(method, path, body, opts = {}) {
  const headers = { Accept: "application/json" };
  let payload = body;
  if (body !== undefined && !(body instanceof FormData) && !(body instanceof Blob)) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const send = async () => {
    if (opts.auth !== false) {
      const token = await liveToken();
      if (token) headers.Authorization = `Bearer ${token}`;
    }
    return fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  };
  let res = await send();
  if (res.status === 401 && opts.auth !== false && access) {
    await refresh();
    res = await send();
  }
  if (opts.raw) {
    if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
    return res;
  }
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

export const get = (path, params) => {
  const qs = params ? new URLSearchParams(
    Object.entries(params).filter(([, v]) => v !== "" && v !== null && v !== undefined)).toString() : "";
  return request("GET", qs ? `${path}?${qs}` : path);
};
export const post = (path, body) => request("POST", path, body);
export const put = (path, body) => request("PUT", path, body);
export const patch = (path, body) => request("PATCH", path, body);
export const del = (path) => request("DELETE", path);
