// The portal's views: Request access, My requests (and one request), To approve, My access.
// Each takes the element to fill and reads and writes only through the Vault API.

import { VaultError, plugin, segment, who } from './api.js';
import { alert, append, busy, button, el, field, replace, uid } from './dom.js';
import { duration, left, principal, resourceKind, statusText, ttlInput, when } from './format.js';

const PAGE = 20;
const RESOURCE_PAGE = 25;

// flash is a message for the next view (after a request is made, say).
let flash = null;
export function setFlash(kind, text) {
  flash = { kind, text };
}
function takeFlash() {
  const f = flash;
  flash = null;
  return f ? alert(f.kind, f.text) : null;
}

function heading(text, intro) {
  return [el('h1', { tabindex: '-1' }, text), intro ? el('p', { class: 'lead' }, intro) : null];
}

function errorBox(err) {
  return alert('error', err instanceof VaultError || err instanceof Error ? err.message : String(err));
}

function loading(text = 'Loading…') {
  return el('p', { class: 'loading', role: 'status' }, text);
}

function badge(status) {
  return el('span', { class: `badge badge-${segment(status)}` }, statusText[status] || status);
}

// until shows a time as "in 59 min (12 Mar 2026, 14:05)", kept current by the ticker.
function until(iso) {
  if (!iso) return '—';
  return el('span', {}, el('span', { 'data-until': iso }, left(iso)), ' ', el('span', { class: 'muted' }, `(${when(iso)})`));
}

// facts is a definition list of [term, value] pairs; empty values are left out.
function facts(rows) {
  return el('dl', { class: 'facts' }, rows.filter(([, v]) => v !== '' && v !== null && v !== undefined && !(Array.isArray(v) && v.length === 0))
    .map(([k, v]) => el('div', { class: 'fact' }, el('dt', {}, k), el('dd', {}, v))));
}

function codeList(items) {
  return el('ul', { class: 'chips' }, (items || []).map((r) => el('li', {}, el('code', {}, String(r)))));
}

function names(list) {
  return (list || []).map(principal).join(', ');
}

// pager fetches pages with fetchPage(after) -> {items, next} and renders each item with
// render(item) into list; "Load more" asks for the next page.
async function pager(container, fetchPage, render, empty) {
  const list = el('div', { class: 'list' });
  const more = el('div', { class: 'more' });
  append(container, list, more);
  const load = async (after) => {
    const { items, next } = await fetchPage(after);
    if (!after && items.length === 0) list.append(empty);
    for (const item of items) list.append(render(item));
    replace(more);
    if (next) {
      const btn = button('Load more', () => busy(btn, 'Loading…', async () => {
        try {
          await load(next);
        } catch (err) {
          replace(more, errorBox(err), btn);
        }
      }));
      more.append(btn);
    }
  };
  await load('');
}

function emptyState(title, text, link) {
  return el('div', { class: 'empty' }, el('p', { class: 'empty-title' }, title), el('p', {}, text), link || null);
}

// ---- Request access -------------------------------------------------------------------

export async function viewRequest(view) {
  append(view, heading('Request access', 'Choose a role and what you need. The people who own it are asked to approve; you pick the access up once they have.'), takeFlash());
  const status = loading();
  view.append(status);
  let roles;
  let bundles = [];
  try {
    const [res, bres] = await Promise.all([
      plugin('GET', 'my/roles'),
      // Bundles are optional: a policy from before them does not allow my/bundles.
      plugin('GET', 'my/bundles').catch((err) => (err instanceof VaultError && err.status === 403 ? null : Promise.reject(err))),
    ]);
    roles = (res && res.data && res.data.roles) || [];
    bundles = (bres && bres.data && bres.data.bundles) || [];
  } catch (err) {
    replace(status, errorBox(err));
    return;
  }
  status.remove();
  if (roles.length === 0 && bundles.length === 0) {
    view.append(emptyState('No roles to ask from yet', 'Your Vault operator defines roles (vault write apono/roles/<name>). Ask them for one.'));
    return;
  }
  const form = el('div', { class: 'role-form' });
  const group = uid('role');
  const pick = (role) => renderRoleForm(form, role);
  const bundleCards = bundles.map((bundle) => {
    const input = el('input', { type: 'radio', name: group, value: `bundle:${bundle.name}`, id: `${group}-bundle-${bundle.name}`, onchange: () => renderBundleForm(form, bundle) });
    return el('div', { class: 'role-choice', 'data-bundle': bundle.name }, input,
      el('label', { for: input.id },
        el('span', { class: 'role-name' }, bundle.name),
        el('span', { class: 'role-meta' },
          el('span', { class: 'tag tag-bundle' }, `Bundle · ${(bundle.parts || []).length} roles`),
          el('span', { class: 'muted' }, `up to ${duration(bundle.ttl)}`)),
        bundle.description ? el('span', { class: 'role-description' }, bundle.description) : null,
        el('span', { class: 'role-resources' }, (bundle.parts || []).map((p) => p.role).join(' + '))));
  });
  const cards = roles.map((role) => {
    const input = el('input', { type: 'radio', name: group, value: role.name, id: `${group}-${role.name}`, onchange: () => pick(role) });
    return el('div', { class: 'role-choice' }, input,
      el('label', { for: input.id },
        el('span', { class: 'role-name' }, role.name),
        el('span', { class: 'role-meta' },
          role.approval === 'required' ? el('span', { class: 'tag' }, 'Needs approval') : el('span', { class: 'tag tag-ok' }, 'Granted at once'),
          role.break_glass ? el('span', { class: 'tag tag-warn' }, 'Break-glass') : null,
          el('span', { class: 'muted' }, `${(role.permissions || []).join(', ')} · up to ${duration(role.max_ttl || role.ttl)}`)),
        el('span', { class: 'role-resources' }, (role.resources || []).join(', '))));
  });
  view.append(el('fieldset', { class: 'roles' }, el('legend', {}, 'Role'), cards),
    bundleCards.length ? el('fieldset', { class: 'roles bundles' }, el('legend', {}, 'Bundles: several roles at once, one login'), bundleCards) : null,
    form);
  if (roles.length === 1 && bundles.length === 0) {
    cards[0].querySelector('input').checked = true;
    pick(roles[0]);
  }
}

function renderRoleForm(form, role) {
  const required = role.approval === 'required';
  const chosen = new Set();
  const resourceList = el('div', { class: 'resource-list' });
  const resourceMore = el('div', { class: 'more' });
  const resourceBox = el('fieldset', { class: 'resources' }, el('legend', {}, 'Resources'), resourceList, resourceMore);
  const permission = el('select', { name: 'permission' }, (role.permissions || []).map((p) => el('option', { value: p }, p)));
  const ttl = el('input', { type: 'text', name: 'ttl', value: ttlInput(role.ttl), inputmode: 'text', spellcheck: 'false' });
  const justification = el('textarea', { name: 'justification', rows: '3', required: !!role.require_justification, maxlength: '1024' });
  const preview = el('div', { class: 'preview', 'aria-live': 'polite' });
  const result = el('div', { class: 'result' });
  const submit = el('button', { type: 'submit', class: 'btn btn-primary' }, required ? 'Request access' : 'Get access');

  const addResource = (entry) => {
    const name = typeof entry === 'string' ? entry : entry.name;
    const input = el('input', { type: 'checkbox', value: name, id: uid('res'), onchange: () => { if (input.checked) chosen.add(name); else chosen.delete(name); schedulePreview(); } });
    const owners = typeof entry === 'string' ? [] : (entry.owners || []).map((o) => names(o.approvers)).filter(Boolean);
    resourceList.append(el('div', { class: 'resource' }, input,
      el('label', { for: input.id },
        el('code', {}, name),
        typeof entry === 'string' ? null : el('span', { class: 'muted' }, resourceKind(entry)),
        owners.length ? el('span', { class: 'owner' }, `Owner: ${owners.join('; ')}`) : null)));
    return input;
  };
  const loadResources = async (after) => {
    const res = await plugin('GET', 'resources', { query: { role: role.name, limit: RESOURCE_PAGE, after } });
    const entries = (res && res.data && res.data.resources) || [];
    const inputs = entries.map(addResource);
    replace(resourceMore);
    if (!after && entries.length === 0) resourceList.append(el('p', { class: 'muted' }, 'No resource of this role exists in Vault yet.'));
    if (!after && entries.length === 1) {
      inputs[0].checked = true;
      chosen.add(entries[0].name);
    }
    const next = res && res.data && res.data.next_after;
    if (next) {
      const btn = button('Load more', () => busy(btn, 'Loading…', () => loadResources(next).catch((err) => replace(resourceMore, errorBox(err), btn))));
      resourceMore.append(btn);
    }
  };

  const body = () => {
    const b = { resources: [...chosen], permission: permission.value, justification: justification.value.trim() };
    if (ttl.value.trim()) b.ttl = ttl.value.trim();
    return b;
  };
  let timer = 0;
  let previewSeq = 0;
  const schedulePreview = () => {
    if (!required) return;
    clearTimeout(timer);
    timer = setTimeout(runPreview, 300);
  };
  const runPreview = async () => {
    const seq = ++previewSeq;
    if (chosen.size === 0) {
      replace(preview, el('h2', {}, 'Who will be asked to approve'), el('p', { class: 'muted' }, 'Choose a resource to see who approves it.'));
      return;
    }
    const b = { ...body(), dry_run: true };
    // A preview stores nothing; the real request still needs the person's own justification.
    if (!b.justification && role.require_justification) b.justification = 'preview';
    try {
      const res = await plugin('POST', `requests/${segment(role.name)}`, { body: b });
      if (seq !== previewSeq) return;
      replace(preview, el('h2', {}, 'Who will be asked to approve'), approverSets(res.data, false), notes(res.warnings));
    } catch (err) {
      if (seq !== previewSeq) return;
      replace(preview, el('h2', {}, 'Who will be asked to approve'), errorBox(err));
    }
  };

  replace(form, el('form', {
    class: 'card stack request-form',
    onsubmit: (ev) => {
      ev.preventDefault();
      busy(submit, required ? 'Sending…' : 'Getting access…', async () => {
        replace(result);
        try {
          if (chosen.size === 0) throw new VaultError(0, ['Choose at least one resource']);
          if (role.require_justification && !justification.value.trim()) throw new VaultError(0, ['This role needs a justification: say why you need the access']);
          if (required) {
            const res = await plugin('POST', `requests/${segment(role.name)}`, { body: body() });
            const d = res.data;
            setFlash('ok', `Request sent. ${d.approvers && d.approvers.length ? 'Asked to approve: ' + names(d.approvers) + '.' : ''}`);
            location.hash = `#/requests/${segment(d.request_id)}`;
          } else {
            const res = await plugin('POST', `grants/${segment(role.name)}`, { body: body() });
            replace(result, credentials(res));
          }
        } catch (err) {
          replace(result, errorBox(err));
        }
      });
    },
  },
  el('h2', {}, `Ask for ${role.name}`),
  resourceBox,
  el('div', { class: 'row' },
    field('Permission', permission),
    field('Duration', ttl, `Default ${duration(role.ttl)}, at most ${duration(role.max_ttl || role.ttl)}. For example 30m, 2h.`)),
  field(role.require_justification ? 'Justification (required)' : 'Justification', justification, 'Why you need it: a ticket or an incident. Your approvers see this.'),
  required ? preview : alert('info', 'This role grants at once, without approval, if your Vault policy allows it.'),
  result,
  el('div', { class: 'actions' }, submit)));

  for (const control of [permission, ttl]) control.addEventListener('change', schedulePreview);
  loadResources('').then(schedulePreview, (err) => {
    // Without the resource list, the role's own entries can still be asked for.
    resourceList.append(alert('info', `The resource list is not available (${err.message}); these are the role's resources.`));
    for (const r of role.resources || []) addResource(r);
    if ((role.resources || []).length === 1) {
      resourceList.querySelector('input').checked = true;
      chosen.add(role.resources[0]);
    }
    schedulePreview();
  });
}

// renderBundleForm asks for a bundle: what each part grants and who approves it, one
// duration and justification for all of it.
function renderBundleForm(form, bundle) {
  const ttl = el('input', { type: 'text', name: 'ttl', value: ttlInput(bundle.ttl), inputmode: 'text', spellcheck: 'false' });
  const justification = el('textarea', { name: 'justification', rows: '3', required: !!bundle.require_justification, maxlength: '1024' });
  const preview = el('div', { class: 'preview', 'aria-live': 'polite' });
  const result = el('div', { class: 'result' });
  const submit = el('button', { type: 'submit', class: 'btn btn-primary' }, 'Request the bundle');
  const body = () => {
    const b = { justification: justification.value.trim() };
    if (ttl.value.trim()) b.ttl = ttl.value.trim();
    return b;
  };
  const path = `requests/bundle/${segment(bundle.name)}`;
  const runPreview = async () => {
    const b = { ...body(), dry_run: true };
    if (!b.justification && bundle.require_justification) b.justification = 'preview';
    try {
      const res = await plugin('POST', path, { body: b });
      replace(preview, el('h2', {}, 'Who will be asked to approve'), partList(res.data, false), notes(res.warnings));
    } catch (err) {
      replace(preview, el('h2', {}, 'Who will be asked to approve'), errorBox(err));
    }
  };
  replace(form, el('form', {
    class: 'card stack request-form',
    onsubmit: (ev) => {
      ev.preventDefault();
      busy(submit, 'Sending…', async () => {
        replace(result);
        try {
          if (bundle.require_justification && !justification.value.trim()) throw new VaultError(0, ['This bundle needs a justification: say why you need the access']);
          const res = await plugin('POST', path, { body: body() });
          setFlash('ok', `Request sent. Every part's approvers are asked: ${names(res.data.approvers)}.`);
          location.hash = `#/requests/${segment(res.data.request_id)}`;
        } catch (err) {
          replace(result, errorBox(err));
        }
      });
    },
  },
  el('h2', {}, `Ask for the ${bundle.name} bundle`),
  bundle.description ? el('p', {}, bundle.description) : null,
  el('p', { class: 'muted' }, 'One request for every part below. Each part is approved by its own approvers; once all have approved you pick up one login that holds all of it and ends together.'),
  el('div', { class: 'row' },
    field('Duration', ttl, `At most ${duration(bundle.ttl)}. For example 30m, 1h.`)),
  field(bundle.require_justification ? 'Justification (required)' : 'Justification', justification, 'Why you need it: a ticket or an incident. Every approver sees this.'),
  preview,
  result,
  el('div', { class: 'actions' }, submit)));
  ttl.addEventListener('change', runPreview);
  runPreview();
}

// partList shows a bundle request's parts: what each grants, who approves it and (withState)
// whether it is approved yet.
function partList(d, withState) {
  const sets = d.approver_sets || [];
  return el('ol', { class: 'parts' }, (d.parts || []).map((p) => el('li', { class: 'part', 'data-part': p.role },
    el('div', { class: 'part-head' },
      el('span', { class: 'role-name' }, p.role),
      el('span', { class: 'muted' }, p.permission),
      withState ? el('span', { class: p.approved ? 'tag tag-ok' : 'tag' }, p.approved ? 'approved' : 'waiting') : null),
    codeList(p.resources),
    el('ul', { class: 'set-list' }, (p.approver_sets || []).map((i) => sets[i]).filter(Boolean).map((s) => el('li', { class: 'set' },
      el('span', { class: 'set-label' }, String(s.label || '').replace(`${p.role}: `, '')),
      el('span', { class: 'set-approvers' }, names(s.approvers)),
      withState ? el('span', { class: s.approved ? 'tag tag-ok' : 'tag' }, s.approved ? 'approved' : 'waiting') : null))))));
}

// title names what a request or grant is for: its role, or its bundle.
function title(r) {
  return r.bundle ? `the ${r.bundle} bundle` : r.role;
}

// approverSets shows who approves: each set, its approvers, and (withState) whether it has
// approved.
function approverSets(d, withState) {
  const sets = d.approver_sets || [];
  const needed = d.required_approvals || 1;
  const must = sets.filter((s) => s.must_approve).length;
  const plural = (n) => `${n} approval${n === 1 ? '' : 's'}`;
  let rule;
  if (sets.length === 1) {
    rule = `${plural(needed)} from:`;
  } else if (must === sets.length) {
    rule = needed > must ? `One approval from each of these, ${plural(needed)} in all:` : 'One approval from each of these:';
  } else if (must === 0) {
    rule = `${plural(needed)} from any of these:`;
  } else {
    rule = `${plural(needed)} from any of these, including one from each marked “must approve”:`;
  }
  const mixed = must > 0 && must < sets.length;
  return el('div', { class: 'sets' },
    el('p', {}, rule),
    el('ul', { class: 'set-list' }, sets.map((s) => el('li', { class: 'set' },
      el('span', { class: 'set-label' }, String(s.label || '')),
      el('span', { class: 'set-approvers' }, names(s.approvers)),
      mixed && s.must_approve ? el('span', { class: 'tag' }, 'must approve') : null,
      withState ? el('span', { class: s.approved ? 'tag tag-ok' : 'tag' }, s.approved ? 'approved' : 'waiting') : null))));
}

// notes are what the plugin says about how it chose the approvers (a tag it could not
// use, a name below a folder it does not read).
function notes(list) {
  if (!list || list.length === 0) return null;
  return el('div', { class: 'notes' }, el('p', { class: 'notes-title' }, 'Notes'), el('ul', {}, list.map((n) => el('li', {}, String(n)))));
}

// ---- Credentials, shown once -----------------------------------------------------------

function copyButton(getText, label = 'Copy') {
  const btn = button(label, async () => {
    const text = getText();
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const area = el('textarea', { 'aria-hidden': 'true', class: 'offscreen' });
      area.value = text;
      document.body.append(area);
      area.select();
      document.execCommand('copy');
      area.remove();
    }
    btn.textContent = 'Copied';
    setTimeout(() => { btn.textContent = label; }, 2000);
  }, { kind: 'small' });
  return btn;
}

// credentials shows a new grant's username and password: this is the only time the page
// has them, and it keeps them nowhere.
function credentials(res) {
  const d = (res && res.data) || {};
  const loginPath = String(d.login_path || '');
  const m = /^auth\/(.+)\/login\/[^/]+$/.exec(loginPath);
  const loginMount = m ? m[1] : 'userpass';
  const command = `vault login -method=userpass -path=${loginMount} username=${d.username}`;
  const password = el('input', { type: 'password', readOnly: true, value: String(d.password || ''), id: uid('pw'), class: 'secret', autocomplete: 'off', spellcheck: 'false' });
  const show = button('Show', () => {
    const hidden = password.type === 'password';
    password.type = hidden ? 'text' : 'password';
    show.textContent = hidden ? 'Hide' : 'Show';
    show.setAttribute('aria-pressed', String(hidden));
  }, { kind: 'small', 'aria-pressed': 'false' });
  return el('section', { class: 'credentials', 'aria-label': 'Your credentials' },
    el('h3', {}, 'Your access is ready'),
    alert('warn', 'Shown once: copy the password now. Neither this page nor Vault can show it again.'),
    el('div', { class: 'cred' }, el('span', { class: 'cred-label' }, 'Username'),
      el('code', { class: 'cred-value', 'data-cred': 'username' }, String(d.username || '')), copyButton(() => String(d.username || ''))),
    el('div', { class: 'cred' }, el('label', { class: 'cred-label', for: password.id }, 'Password'),
      password, show, copyButton(() => password.value)),
    el('p', { class: 'cred-label' }, 'Log in with the Vault CLI (it asks for the password):'),
    el('div', { class: 'command' }, el('pre', {}, el('code', { 'data-cred': 'command' }, command)), copyButton(() => command, 'Copy command')),
    el('p', { class: 'muted' }, `Against this Vault: VAULT_ADDR=${location.origin}`),
    facts([
      ['Access ends', until(d.expires_at)],
      ['Resources', codeList(d.resources)],
      ['Permission', String(d.permission || '')],
    ]),
    // The grant's warnings say what to send (a PKI grant's not_after, an SSH grant's ttl)
    // and what Vault cannot bound.
    (res.warnings || []).length ? el('div', { class: 'grant-notes', 'aria-label': 'Notes on this access' },
      el('p', { class: 'cred-label' }, 'Notes on this access:'),
      el('ul', {}, ...res.warnings.map((w) => el('li', {}, String(w))))) : null,
    res.lease_id ? el('p', { class: 'muted' }, 'It lasts what was approved: renewing it (', el('code', {}, `vault lease renew ${res.lease_id}`), ') never takes it past that end; more time needs an approved extension.') : null);
}

async function pickUp(btn, id, into, after) {
  await busy(btn, 'Picking up…', async () => {
    try {
      const res = await plugin('POST', `requests/${segment(id)}/grant`);
      replace(into, credentials(res));
      if (after) after();
    } catch (err) {
      replace(into, errorBox(err));
    }
  });
}

// cancelControl asks once more before cancelling.
function cancelControl(id, into, onDone) {
  const holder = el('span', { class: 'confirm' });
  const ask = button('Cancel', () => {
    replace(holder,
      el('span', {}, 'Cancel this request?'),
      button('Yes, cancel it', (ev) => busy(ev.currentTarget, 'Cancelling…', async () => {
        try {
          await plugin('POST', `requests/${segment(id)}/cancel`);
          replace(into, alert('ok', 'Request cancelled.'));
          onDone();
        } catch (err) {
          replace(into, errorBox(err));
          replace(holder, ask);
        }
      }), { kind: 'danger' }),
      button('Keep it', () => { replace(holder, ask); ask.focus(); }));
    holder.querySelector('button').focus();
  });
  holder.append(ask);
  return holder;
}

// ---- My requests ----------------------------------------------------------------------

export async function viewMyRequests(view) {
  append(view, heading('My requests', 'What you asked for, where each request stands, and the access to pick up once approved.'), takeFlash(),
    el('p', {}, el('a', { href: '#/request', class: 'btn btn-primary' }, 'Request access')));
  const box = el('div', {});
  view.append(box);
  try {
    await pager(box, async (after) => {
      const res = await plugin('GET', 'requests', { query: { mine: 'true', limit: PAGE, after } });
      return { items: (res && res.data && res.data.requests) || [], next: res && res.data && res.data.next_after };
    }, myRequestCard, emptyState('No requests yet', 'When you ask for access, your requests show here.'));
  } catch (err) {
    box.append(errorBox(err));
  }
}

function deadlineFact(r) {
  if (r.status === 'pending') return ['Time left to approve', until(r.expires_at)];
  // A list entry's expires_at is the current deadline; a full request has pickup_by.
  if (r.status === 'approved') return ['Time left to pick up', until(r.pickup_by || r.expires_at)];
  return ['', ''];
}

function myRequestCard(r) {
  const out = el('div', { class: 'card-out' });
  const actions = el('div', { class: 'actions' }, el('a', { href: `#/requests/${segment(r.request_id)}`, class: 'btn btn-secondary' }, 'Details'));
  let status = badge(r.status);
  const card = el('article', { class: 'card item', 'data-request': r.request_id },
    el('header', { class: 'item-head' }, el('h2', {}, r.bundle ? `${r.bundle} (bundle)` : r.role), status),
    facts([
      ['Resources', codeList(r.resources)],
      ['Permission', r.permission],
      ['Duration', r.ttl ? duration(r.ttl) : ''],
      ['Approvals', r.approvals],
      ['Approved by', (r.approved_by || []).join(', ')],
      deadlineFact(r),
      ['Asked', when(r.created_at)],
    ]),
    out, actions);
  if (r.status === 'approved') {
    const btn = button('Pick up', () => pickUp(btn, r.request_id, out, () => {
      btn.remove();
      cancel.remove();
      const picked = badge('granted');
      status.replaceWith(picked);
      status = picked;
    }), { kind: 'primary' });
    actions.prepend(btn);
  }
  const cancel = r.status === 'pending' || r.status === 'approved' ? cancelControl(r.request_id, out, () => cancel.remove()) : el('span');
  actions.append(cancel);
  return card;
}

// ---- One request ----------------------------------------------------------------------

export async function viewRequestDetail(view, id) {
  const status = loading();
  append(view, el('p', { class: 'crumbs' }, el('a', { href: '#/requests' }, '← My requests'), ' · ', el('a', { href: '#/approve' }, 'To approve')), status);
  let d;
  try {
    d = (await plugin('GET', `requests/${segment(id)}`)).data;
  } catch (err) {
    replace(status, ...heading('Request'), errorBox(err));
    return;
  }
  status.remove();
  const me = who() || {};
  const mine = d.requester_entity_id && d.requester_entity_id === me.entity_id;
  const out = el('div', { class: 'card-out' });
  const actions = el('div', { class: 'actions' });
  append(view, heading(`Request for ${title(d)}`), takeFlash(),
    el('article', { class: 'card item', 'data-request': d.request_id },
      el('header', { class: 'item-head' }, el('h2', {}, mine ? 'You asked for' : `${d.requester_name} asks for`), badge(d.status)),
      facts([
        ['Requested by', d.requester_name],
        ['Resources', codeList(d.resources)],
        ['Permission', d.permission],
        ['Duration', d.ttl ? duration(d.ttl) : ''],
        ['Justification', d.justification],
        ['Asked', when(d.created_at)],
        deadlineFact(d),
        ['Approvals', d.approval_progress],
        ['Decided by', d.decided_by_name || d.decided_by],
        [d.status === 'denied' ? 'Reason for denial' : 'Reason', d.decision_reason],
        ['Grant', d.grant_id ? el('span', {}, el('code', {}, d.grant_id), ' ', el('span', { class: 'muted' }, '(credentials are shown once, at pickup)')) : ''],
      ]),
      el('h3', {}, d.parts ? 'Parts and their approvers' : 'Approvers'),
      d.parts ? partList(d, true) : approverSets(d, true),
      notes(d.notes),
      (d.approvals || []).length ? el('h3', {}, 'Approvals') : null,
      (d.approvals || []).length ? el('ul', { class: 'approvals' }, d.approvals.map((a) => el('li', {},
        el('strong', {}, a.name || a.approver), ` approved ${when(a.approved_at)}`, a.reason ? el('q', {}, a.reason) : null))) : null,
      out, actions));
  if (mine && d.status === 'approved') {
    const btn = button('Pick up', () => pickUp(btn, d.request_id, out, () => actions.replaceChildren()), { kind: 'primary' });
    actions.append(btn);
  }
  if (mine && (d.status === 'pending' || d.status === 'approved')) {
    actions.append(cancelControl(d.request_id, out, () => actions.replaceChildren()));
  }
  if (!mine && d.status === 'pending') {
    view.append(decideForm(d.request_id, d.requester_name));
  }
}

// ---- To approve -----------------------------------------------------------------------

export async function viewApprove(view) {
  append(view, heading('To approve', 'Requests waiting for your decision. Approve only what you own and understand; your name and reason are recorded.'), takeFlash());
  const box = el('div', {});
  view.append(box);
  try {
    await pager(box, async (after) => {
      const res = await plugin('GET', 'requests', { query: { can_approve: 'true', limit: PAGE, after } });
      return { items: (res && res.data && res.data.requests) || [], next: res && res.data && res.data.next_after };
    }, approveCard, emptyState('Nothing to approve', 'When someone asks for access to what you own, the request shows here.'));
  } catch (err) {
    box.append(errorBox(err));
  }
}

function approveCard(r) {
  return el('article', { class: 'card item', 'data-request': r.request_id },
    el('header', { class: 'item-head' },
      el('h2', {}, `${r.requester_name || r.requester} asks for ${title(r)}`),
      badge(r.status)),
    facts([
      ['Requester', r.requester_name || r.requester],
      ['Resources', codeList(r.resources)],
      ['Permission', r.permission],
      ['Duration', r.ttl ? duration(r.ttl) : ''],
      ['Justification', r.justification || el('span', { class: 'muted' }, 'none given')],
      ['Approvers', names(r.approvers)],
      ['Approvals so far', `${r.approvals}${(r.approved_by || []).length ? ' (' + r.approved_by.join(', ') + ')' : ''}`],
      ['Time left', until(r.expires_at)],
    ]),
    el('p', {}, el('a', { href: `#/requests/${segment(r.request_id)}` }, 'Details')),
    decideForm(r.request_id, r.requester_name || r.requester));
}

// decideForm is a reason and the Approve and Deny buttons.
function decideForm(id, requester) {
  const reason = el('textarea', { name: 'reason', rows: '2', maxlength: '1024' });
  const out = el('div', { class: 'card-out' });
  const act = (verb) => async (ev) => {
    const btn = ev.currentTarget;
    await busy(btn, verb === 'approve' ? 'Approving…' : 'Denying…', async () => {
      try {
        const res = await plugin('POST', `requests/${segment(id)}/${verb}`, { body: { reason: reason.value.trim() } });
        const status = (res && res.data && res.data.status) || '';
        const text = verb === 'deny' ? `You denied the request. ${requester} sees your reason.`
          : status === 'approved' ? `You approved. The request is approved: ${requester} can pick it up.`
            : `You approved. More approvals are needed (${(res && res.data && res.data.approval_progress) || ''}).`;
        replace(form, alert('ok', text));
      } catch (err) {
        replace(out, errorBox(err));
      }
    });
  };
  const form = el('form', { class: 'decide', onsubmit: (ev) => ev.preventDefault() },
    field('Reason', reason, `Recorded with your decision; ${requester} sees it.`),
    out,
    el('div', { class: 'actions' },
      button('Approve', act('approve'), { kind: 'primary' }),
      button('Deny', act('deny'), { kind: 'danger' })));
  return form;
}

// ---- My access ------------------------------------------------------------------------

export async function viewAccess(view) {
  append(view, heading('My access', 'Your live grants and when each ends. When a grant ends, its user and policy are deleted and every token made with it stops working.'), takeFlash());
  const box = el('div', {});
  view.append(box);
  try {
    await pager(box, async (after) => {
      const res = await plugin('GET', 'my/grants', { query: { limit: PAGE, after } });
      return { items: (res && res.data && res.data.grants) || [], next: res && res.data && res.data.next_after };
    }, grantCard, emptyState('No live access', 'Access you pick up shows here until it ends.', el('a', { href: '#/request', class: 'btn btn-primary' }, 'Request access')));
  } catch (err) {
    box.append(errorBox(err));
  }
}

function grantCard(g) {
  return el('article', { class: 'card item', 'data-grant': g.grant_id },
    el('header', { class: 'item-head' }, el('h2', {}, g.bundle ? `${g.bundle} (bundle)` : g.role),
      g.break_glass ? el('span', { class: 'badge badge-denied' }, 'Break-glass') : el('span', { class: 'badge badge-granted' }, 'Live')),
    facts([
      ['Resources', codeList(g.resources)],
      ['Permission', g.permission],
      ['Ends', until(g.expires_at)],
      ['Renewable until', g.max_expires_at && g.max_expires_at !== g.expires_at ? when(g.max_expires_at) : ''],
      ['Since', when(g.issued_at)],
      ['Username', g.username ? el('code', {}, g.username) : ''],
      ['Request', g.request_id ? el('a', { href: `#/requests/${segment(g.request_id)}` }, 'Details') : ''],
    ]));
}
