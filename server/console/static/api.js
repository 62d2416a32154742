// The server's API, as the page calls it: the caller's credentials on every request (the browser's own for basic
// auth; a bearer token or JWT kept for this tab's session), TAMS errors as exceptions with the error body's summary,
// and listings paged by their Link headers.
const TOKEN_KEY = "tams-console-token";

export class ApiError extends Error {
  constructor(status, summary, type) {
    super(`${status}: ${summary}`);
    this.status = status;
    this.summary = summary;
    this.type = type;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export function authHeaders() {
  const t = token();
  return t ? { Authorization: `Bearer ${t}` } : {};
}

// fetch `path` (relative to the server's root); the Response when it is 2xx, else an ApiError
export async function request(path, { method = "GET", body, headers = {}, signal } = {}) {
  const init = { method, headers: { ...authHeaders(), ...headers }, signal, credentials: "same-origin" };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    let summary = response.statusText;
    let type;
    try {
      const error = await response.json();
      summary = error.summary ?? summary;
      type = error.type;
    } catch {
      // not a TAMS error body: the status says it
    }
    throw new ApiError(response.status, summary, type);
  }
  return response;
}

export async function getJson(path, options) {
  return (await request(path, options)).json();
}

// the URL of the Link header's rel="next", or null
export function nextLink(response) {
  const link = response.headers.get("Link") ?? "";
  for (const part of link.split(",")) {
    const m = /<([^>]*)>\s*;\s*rel="?next"?/.exec(part);
    if (m) {
      const url = new URL(m[1], location.href);
      return url.pathname + url.search;
    }
  }
  return null;
}

// one page of a listing: {items, next (the next page's path or null), count (X-Paging-Count, or null)}
export async function page(path, options) {
  const response = await request(path, options);
  const count = response.headers.get("X-Paging-Count");
  return { items: await response.json(), next: nextLink(response), count: count === null ? null : Number(count) };
}

// a path with query parameters, empty ones left out
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") query.append(k, v);
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}
