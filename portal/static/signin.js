// Signing in: username and password on a userpass or LDAP mount, OIDC through Vault's own
// auth_url and callback, or a pasted token. Only the resulting token is kept, in this
// tab's sessionStorage; the sign-in choices (method, mount, role; never a name or secret)
// are remembered in localStorage to save typing.

import { VaultError, authMount, call, forget, portalURL, signedIn, token } from './api.js';
import { alert, busy, el, field, replace, uid } from './dom.js';

const PREFS_KEY = 'apono-portal-signin';
const OIDC_KEY = 'apono-portal-oidc';

function prefs() {
  try {
    return { method: 'password', passwordMount: 'userpass', oidcMount: 'oidc', oidcRole: '', ...JSON.parse(localStorage.getItem(PREFS_KEY) || '{}') };
  } catch {
    return { method: 'password', passwordMount: 'userpass', oidcMount: 'oidc', oidcRole: '' };
  }
}

function savePrefs(p) {
  localStorage.setItem(PREFS_KEY, JSON.stringify({ method: p.method, passwordMount: p.passwordMount, oidcMount: p.oidcMount, oidcRole: p.oidcRole }));
}

// lookupSelf asks Vault who a token is; the name shown is the login's own name.
export async function lookupSelf(tok, loginMount) {
  const res = await call('GET', 'auth/token/lookup-self', { token: tok });
  const d = (res && res.data) || {};
  const meta = d.meta || {};
  let name = meta.username || meta.name || meta.email || d.display_name || 'signed in';
  const prefix = loginMount ? loginMount.replace(/\//g, '-') + '-' : '';
  if (!meta.username && prefix && name.startsWith(prefix)) name = name.slice(prefix.length);
  return { name: String(name), entity_id: String(d.entity_id || ''), display_name: String(d.display_name || '') };
}

async function completeSignIn(tok, loginMount) {
  const me = await lookupSelf(tok, loginMount);
  signedIn(tok, me);
  return me;
}

// oidcPending is a sign-in this tab started, waiting for the provider to send the person
// back with ?state=&code=.
function oidcPending() {
  try {
    return JSON.parse(sessionStorage.getItem(OIDC_KEY) || 'null');
  } catch {
    return null;
  }
}

function nonce() {
  const bytes = new Uint8Array(20);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

// NOT_STARTED is all the page says about a return to it (with ?state= or ?error=) that no
// sign-in in this tab is waiting for.
const NOT_STARTED = 'This sign-in was not started from this tab; start it again.';

// OAUTH_ERRORS are the error codes OAuth 2.0 (RFC 6749 4.1.2.1) and OpenID Connect (Core
// 3.1.2.6) define for a refused authorization: the one part of a refusal the page shows,
// and only for a sign-in this tab started. error_description, error_uri and any other
// code are never shown.
const OAUTH_ERRORS = new Set([
  'invalid_request', 'unauthorized_client', 'access_denied', 'unsupported_response_type', 'invalid_scope',
  'server_error', 'temporarily_unavailable', 'interaction_required', 'login_required',
  'account_selection_required', 'consent_required', 'invalid_request_uri', 'invalid_request_object',
  'request_not_supported', 'request_uri_not_supported', 'registration_not_supported',
]);

// oidcReturn finishes an OIDC sign-in when the provider has just sent the person back
// here. It returns the route to open, or null when this load is not such a return; it
// throws a VaultError when the sign-in failed.
export async function oidcReturn() {
  const params = new URLSearchParams(location.search);
  if (!params.has('state') && !params.has('error')) return null;
  const pending = oidcPending();
  sessionStorage.removeItem(OIDC_KEY);
  // Take the code out of the address bar (and history) whatever happens next.
  history.replaceState(null, '', portalURL + (pending && pending.route ? '#' + pending.route : location.hash));
  // Anyone can send a link to <mount>/ui?error=...&error_description=<any text>: what the
  // page says about a return is fixed text, never the link's words.
  if (!pending) throw new VaultError(0, [NOT_STARTED]);
  if (params.has('error')) {
    const code = params.get('error');
    throw new VaultError(0, [OAUTH_ERRORS.has(code)
      ? `The identity provider refused the sign-in (${code}). Start it again, or ask your Vault operator.`
      : 'The identity provider refused the sign-in. Start it again, or ask your Vault operator.']);
  }
  const res = await call('GET', `auth/${pending.mount}/oidc/callback`, {
    auth: false,
    query: { state: params.get('state'), code: params.get('code'), client_nonce: pending.nonce },
  });
  const tok = res && res.auth && res.auth.client_token;
  if (!tok) throw new VaultError(0, ['Vault answered the OIDC callback without a token']);
  await completeSignIn(tok, pending.mount);
  return pending.route || '/requests';
}

// renderSignIn shows the sign-in form in view; done(route) runs once signed in.
export function renderSignIn(view, { route, message, error, done }) {
  const p = prefs();
  const status = el('div', { class: 'signin-status' });
  if (message) status.append(alert('info', message));
  if (error) status.append(alert('error', error));
  const showError = (err) => replace(status, alert('error', err.message || String(err)));

  const forms = {
    password: passwordForm(p, showError, done, route),
    oidc: oidcForm(p, showError, route),
    token: tokenForm(showError, done, route),
  };
  const group = uid('method');
  const choose = (method) => {
    p.method = method;
    for (const [name, form] of Object.entries(forms)) form.hidden = name !== method;
  };
  const radio = (value, label) => {
    const input = el('input', { type: 'radio', name: group, value, id: `${group}-${value}`, checked: p.method === value, onchange: () => choose(value) });
    return el('span', { class: 'segment' }, input, el('label', { for: input.id }, label));
  };
  choose(p.method in forms ? p.method : 'password');

  replace(view,
    el('section', { class: 'signin card', 'aria-labelledby': 'signin-title' },
      el('h1', { id: 'signin-title', tabindex: '-1' }, 'Sign in'),
      el('p', { class: 'lead' }, 'Ask for access, approve requests for what you own, and pick up your credentials: as yourself, with your Vault identity.'),
      status,
      el('fieldset', { class: 'segments' },
        el('legend', {}, 'Sign in with'),
        el('div', { class: 'segment-row' },
          radio('password', 'Username'),
          radio('oidc', 'Single sign-on'),
          radio('token', 'Token'))),
      forms.password, forms.oidc, forms.token));
}

function passwordForm(p, showError, done, route) {
  const username = el('input', { type: 'text', name: 'username', autocomplete: 'username', required: true, spellcheck: 'false' });
  const password = el('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const mountInput = el('input', { type: 'text', name: 'mount', value: p.passwordMount, required: true, spellcheck: 'false' });
  const submit = el('button', { type: 'submit', class: 'btn btn-primary' }, 'Sign in');
  return el('form', {
    class: 'stack',
    onsubmit: (ev) => {
      ev.preventDefault();
      busy(submit, 'Signing in…', async () => {
        try {
          const m = authMount(mountInput.value);
          const name = username.value.trim();
          if (!name) throw new VaultError(0, ['Enter your username']);
          const res = await call('POST', `auth/${m}/login/${encodeURIComponent(name)}`, { auth: false, body: { password: password.value } });
          const tok = res && res.auth && res.auth.client_token;
          if (!tok) throw new VaultError(0, ['Vault answered the login without a token']);
          p.passwordMount = m;
          p.method = 'password';
          savePrefs(p);
          password.value = '';
          await completeSignIn(tok, m);
          done(route);
        } catch (err) {
          showError(err);
        }
      });
    },
  },
  field('Username', username),
  field('Password', password),
  field('Auth method path', mountInput, 'userpass, or ldap: the path your Vault operator gave you.'),
  el('div', { class: 'actions' }, submit));
}

function oidcForm(p, showError, route) {
  const mountInput = el('input', { type: 'text', name: 'oidc-mount', value: p.oidcMount, required: true, spellcheck: 'false' });
  const role = el('input', { type: 'text', name: 'oidc-role', value: p.oidcRole, spellcheck: 'false' });
  const submit = el('button', { type: 'submit', class: 'btn btn-primary' }, 'Continue with single sign-on');
  return el('form', {
    class: 'stack',
    onsubmit: (ev) => {
      ev.preventDefault();
      busy(submit, 'Opening your identity provider…', async () => {
        try {
          const m = authMount(mountInput.value);
          const n = nonce();
          const body = { redirect_uri: portalURL, client_nonce: n };
          if (role.value.trim()) body.role = role.value.trim();
          const res = await call('POST', `auth/${m}/oidc/auth_url`, { auth: false, body });
          const target = res && res.data && res.data.auth_url;
          if (!target) {
            throw new VaultError(0, [`Vault gave no sign-in address. Ask your Vault operator to add ${portalURL} to the OIDC role's allowed_redirect_uris.`]);
          }
          const url = new URL(target);
          if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new VaultError(0, ['Vault gave a sign-in address that is not a web address']);
          p.oidcMount = m;
          p.oidcRole = role.value.trim();
          p.method = 'oidc';
          savePrefs(p);
          sessionStorage.setItem(OIDC_KEY, JSON.stringify({ mount: m, nonce: n, route }));
          location.assign(url.href);
        } catch (err) {
          showError(err);
        }
      });
    },
  },
  field('Auth method path', mountInput, 'Your Vault operator set up single sign-on at this path (often oidc).'),
  field('Role', role, 'Leave empty for the default role.'),
  el('div', { class: 'actions' }, submit));
}

function tokenForm(showError, done, route) {
  const input = el('input', { type: 'password', name: 'token', autocomplete: 'off', required: true, spellcheck: 'false' });
  const submit = el('button', { type: 'submit', class: 'btn btn-primary' }, 'Sign in');
  return el('form', {
    class: 'stack',
    onsubmit: (ev) => {
      ev.preventDefault();
      busy(submit, 'Signing in…', async () => {
        try {
          const tok = input.value.trim();
          if (!tok) throw new VaultError(0, ['Paste a Vault token']);
          await completeSignIn(tok, '');
          input.value = '';
          done(route);
        } catch (err) {
          forget();
          showError(err);
        }
      });
    },
  },
  field('Vault token', input, 'A token from vault login (vault print token). It stays in this browser tab only.'),
  el('div', { class: 'actions' }, submit));
}

// signOut revokes the token at Vault and forgets it here; it returns what to tell the person.
export async function signOut() {
  let said = 'You are signed out, and your Vault token was revoked.';
  if (token()) {
    try {
      await call('POST', 'auth/token/revoke-self');
    } catch (err) {
      said = `You are signed out here, but Vault did not revoke the token: ${err.message}`;
    }
  }
  forget();
  return said;
}
