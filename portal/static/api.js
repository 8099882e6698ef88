// Calls to the Vault HTTP API on this page's own origin, with the person's own token.

const TOKEN_KEY = 'apono-portal-token';
const WHO_KEY = 'apono-portal-who';

// mount is the plugin's mount path, read from this page's address: /v1/<mount>/ui.
export const mount = decodeURIComponent(location.pathname.replace(/^\/v1\//, '').replace(/\/ui\/?$/, ''));

// portalURL is the page's own address without query or fragment: the OIDC redirect URI.
export const portalURL = location.origin + location.pathname;

// VaultError carries Vault's own messages (its "errors" array) and the HTTP status.
export class VaultError extends Error {
  constructor(status, messages) {
    super(messages.join('; '));
    this.status = status;
    this.messages = messages;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

// signedIn keeps the token (and who it is, for the header) in this tab's sessionStorage.
export function signedIn(newToken, who) {
  sessionStorage.setItem(TOKEN_KEY, newToken);
  sessionStorage.setItem(WHO_KEY, JSON.stringify(who));
}

export function who() {
  try {
    return JSON.parse(sessionStorage.getItem(WHO_KEY) || 'null');
  } catch {
    return null;
  }
}

export function forget() {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(WHO_KEY);
}

// segment checks a value used as one path segment (a role, a request ID, an auth mount's
// part): a name Vault could have made, never "..", so no value can point a call elsewhere.
export function segment(value) {
  const s = String(value);
  if (!/^[A-Za-z0-9][A-Za-z0-9._@-]*$/.test(s) || s.includes('..')) {
    throw new VaultError(0, [`"${s}" is not a valid name here`]);
  }
  return s;
}

// authMount checks an auth mount path typed by a person ("userpass", "ldap", "corp/oidc").
export function authMount(value) {
  const s = String(value).trim().replace(/^\/+|\/+$/g, '');
  if (s === '') throw new VaultError(0, ['Enter the auth mount (for example userpass)']);
  return s.split('/').map(segment).join('/');
}

// call sends one request to /v1/<path> and returns Vault's JSON answer (null for 204).
// A refusal throws a VaultError with Vault's messages. auth=false sends no token; token
// sends that one instead of the kept one (to check a new token before keeping it).
export async function call(method, path, { body, query, auth = true, token: useToken } = {}) {
  const url = new URL('/v1/' + path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, String(v));
  }
  const headers = { 'X-Vault-Request': 'true' };
  const tok = useToken || (auth ? token() : '');
  if (tok) headers['X-Vault-Token'] = tok;
  const init = { method, headers, cache: 'no-store', credentials: 'omit', redirect: 'error' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(url, init);
  } catch (err) {
    throw new VaultError(0, [`Vault could not be reached (${err.message})`]);
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    let messages = (data && Array.isArray(data.errors) ? data.errors : []).flatMap(unwrap).filter(Boolean);
    if (messages.length === 0) {
      messages = [res.status === 404 ? 'Not found' : `Vault answered HTTP ${res.status}`];
    }
    throw new VaultError(res.status, messages);
  }
  return data;
}

// unwrap takes Vault's "1 error occurred:\n\t* ..." wrapping off a message, so people
// read the plugin's own words.
function unwrap(message) {
  const s = String(message);
  const m = /^\d+ errors? occurred:\s*\n([\s\S]*)$/.exec(s);
  if (!m) return [s.trim()];
  return m[1].split(/\n\t\* /).map((part) => part.replace(/^\t?\* /, '').trim());
}

// plugin calls a path of the plugin's mount.
export function plugin(method, path, options) {
  return call(method, mount + '/' + path, options);
}
