// The access portal: signs a person in, then routes #/... to its views.

import { VaultError, forget, mount, token, who } from './api.js';
import { alert, el, replace } from './dom.js';
import { left } from './format.js';
import { lookupSelf, oidcReturn, renderSignIn, signOut } from './signin.js';
import { viewAccess, viewApprove, viewMyRequests, viewRequest, viewRequestDetail } from './views.js';

const NAV = [
  ['#/request', 'Request access'],
  ['#/requests', 'My requests'],
  ['#/approve', 'To approve'],
  ['#/access', 'My access'],
];

const ROUTES = [
  [/^\/request$/, 'Request access', viewRequest],
  [/^\/requests$/, 'My requests', viewMyRequests],
  [/^\/requests\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/, 'Request', viewRequestDetail],
  [/^\/approve$/, 'To approve', viewApprove],
  [/^\/access$/, 'My access', viewAccess],
];

const DEFAULT_ROUTE = '/requests';
const main = document.getElementById('main');
const nav = document.getElementById('nav');
const user = document.getElementById('user');

function route() {
  const r = location.hash.replace(/^#/, '');
  return r === '' || r === '/' ? DEFAULT_ROUTE : r;
}

function focusHeading() {
  const h = main.querySelector('h1');
  if (h) h.focus({ preventScroll: true });
}

function showSignIn(options = {}) {
  document.title = 'Sign in · Access portal';
  nav.hidden = true;
  replace(user);
  const view = el('div', { class: 'view' });
  replace(main, view);
  renderSignIn(view, {
    route: route(),
    ...options,
    done: (next) => {
      if (location.hash !== '#' + next) location.hash = '#' + next;
      else render();
    },
  });
  if (options.focus !== false) focusHeading();
}

function renderHeader(current) {
  nav.hidden = false;
  replace(nav, el('ul', {}, NAV.map(([href, label]) => el('li', {},
    el('a', { href, 'aria-current': current === href.slice(1) || (href === '#/requests' && current.startsWith('/requests/')) ? 'page' : false }, label)))));
  const me = who() || {};
  const out = el('button', { type: 'button', class: 'btn btn-quiet', onclick: async () => {
    out.disabled = true;
    const said = await signOut();
    showSignIn({ message: said });
  } }, 'Sign out');
  replace(user, el('span', { class: 'who', title: me.display_name || '' }, el('span', { class: 'muted' }, 'Signed in as '), el('strong', { 'data-who': '' }, me.name || 'you')), out);
}

let rendering = 0;
async function render() {
  const seq = ++rendering;
  if (!token()) {
    showSignIn();
    return;
  }
  const r = route();
  const found = ROUTES.map(([re, title, view]) => [re.exec(r), title, view]).find(([m]) => m);
  renderHeader(r);
  const view = el('div', { class: 'view' });
  replace(main, view);
  if (!found) {
    document.title = 'Not found · Access portal';
    replace(view, el('h1', { tabindex: '-1' }, 'Not found'), el('p', {}, 'This page does not exist. ', el('a', { href: '#' + DEFAULT_ROUTE }, 'Go to My requests')));
    focusHeading();
    return;
  }
  const [m, title, fn] = found;
  document.title = `${title} · Access portal`;
  const work = fn(view, ...m.slice(1));
  focusHeading();
  try {
    await work;
  } catch (err) {
    console.error('portal:', err);
    if (seq === rendering) view.append(alert('error', err.message || String(err)));
  }
  // A view that loaded its heading late gets focus there, unless the person moved on.
  if (seq === rendering && !main.contains(document.activeElement)) focusHeading();
}

// Time-left texts stay current.
setInterval(() => {
  for (const node of document.querySelectorAll('[data-until]')) node.textContent = left(node.getAttribute('data-until'));
}, 30000);

// framed is true when another page holds this one in a frame (an iframe, say). A site that
// frames the portal could lay its own content over it and trick a person into clicking
// (clickjacking), so the page then neither signs in nor shows anything but a notice: this
// works even where the frame-forbidding headers do not reach the browser.
function framed() {
  try {
    return window.top !== window.self;
  } catch {
    return true;
  }
}

function showFramed() {
  document.title = 'Access portal';
  nav.hidden = true;
  replace(user);
  replace(main, el('div', { class: 'view' },
    el('section', { class: 'card', 'data-framed': '' },
      el('h1', { tabindex: '-1' }, 'Open the access portal in its own tab'),
      el('p', {}, 'This page is shown inside another page, so it does not sign in or show anything here.'),
      el('p', {}, 'Open the address your Vault operator gave you in a browser tab of its own.'))));
}

async function start() {
  if (framed()) {
    showFramed();
    return;
  }
  document.getElementById('mount').textContent = mount;
  window.addEventListener('hashchange', render);
  try {
    const next = await oidcReturn();
    if (next !== null) {
      if (location.hash !== '#' + next) location.hash = '#' + next;
      else render();
      return;
    }
  } catch (err) {
    showSignIn({ error: err.message || String(err) });
    return;
  }
  if (token()) {
    // A kept token may have ended (TTL, revoked elsewhere): check it once per load.
    try {
      await lookupSelf(token(), '');
    } catch (err) {
      if (err instanceof VaultError && (err.status === 403 || err.status === 401)) {
        forget();
        showSignIn({ message: 'Your Vault session has ended. Sign in again.' });
        return;
      }
    }
  }
  render();
}

start();
