// The management API, relative to the console (`../v1/…`), so a stage prefix is kept. The key
// lives in sessionStorage only: gone when the tab closes, never in a URL or lasting storage.

const KEY = 'wagate.adminKey';

export function key() {
  return sessionStorage.getItem(KEY);
}

export function setKey(value) {
  sessionStorage.setItem(KEY, value);
}

export function clearKey() {
  sessionStorage.removeItem(KEY);
}

/** An API error answer: status, code and the API's message (which never echoes secrets). */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/** What to tell the operator about a failed call. */
export function describe(error) {
  if (error instanceof ApiError) {
    if (error.status === 429) {
      const wait = error.retryAfter ? ` in ${error.retryAfter} s` : ' in a moment';
      return `Too many requests: slow down and try again${wait}.`;
    }
    if (error.status === 401) return 'The API key was refused (401).';
    return `${error.message} (${error.status}${error.code ? ` ${error.code}` : ''})`;
  }
  return `The gateway could not be reached: ${error && error.message ? error.message : error}`;
}

/** Called when a call answers 401 after login (the key was revoked): set by the app. */
let onUnauthorized = () => {};
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

/** The path under /v1 with a query built from `params` (empty values left out). */
export function path(base, params) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') query.set(k, v);
  }
  const text = query.toString();
  return text ? `${base}?${text}` : base;
}

/** Calls `method` on `/v1{route}` with an optional JSON body; answers the parsed JSON. */
export async function call(method, route, body, options = {}) {
  const headers = { Accept: 'application/json' };
  const stored = options.key || key();
  if (stored) headers['X-API-Key'] = stored;
  const init = { method, headers, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const url = new URL(`../v1${route}`, document.baseURI);
  const response = await fetch(url, init);
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const err = (data && data.error) || {};
    const error = new ApiError(response.status, err.code || '',
      err.message || data?.message || response.statusText || 'request failed',
      response.headers.get('Retry-After'));
    if (response.status === 401 && !options.key) onUnauthorized(error);
    throw error;
  }
  return data;
}

export const get = (route, options) => call('GET', route, undefined, options);
export const post = (route, body) => call('POST', route, body);
export const patch = (route, body) => call('PATCH', route, body);
export const put = (route, body) => call('PUT', route, body);
export const del = (route) => call('DELETE', route);
