// Building the page from values: every value becomes a text node or a vetted attribute,
// never markup, so whatever Vault returns (a justification, a secret's name) shows as text.

// Attributes el() sets with setAttribute; none of them can run script or load anything.
const SAFE_ATTRIBUTES = new Set([
  'class', 'id', 'type', 'name', 'for', 'role', 'tabindex', 'title', 'placeholder',
  'autocomplete', 'inputmode', 'spellcheck', 'min', 'max', 'step', 'rows', 'maxlength',
  'minlength', 'pattern', 'datetime', 'scope', 'colspan', 'lang', 'dir', 'enterkeyhint',
]);

// Properties el() sets on the element itself (form state).
const PROPERTIES = new Set(['value', 'checked', 'disabled', 'required', 'readOnly', 'selected', 'hidden', 'open']);

// el(tag, props, ...children) makes an element. props: safe attributes, aria-* and
// data-*, form properties, on<event> handlers, and href only for the portal's own
// "#/..." links. Children are nodes or strings (text); null, undefined and false are
// skipped; arrays are flattened.
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      node.addEventListener(key.slice(2), value);
    } else if (PROPERTIES.has(key)) {
      node[key] = value;
    } else if (key === 'href') {
      if (!/^#\/[A-Za-z0-9/_.-]*$/.test(String(value))) throw new Error('el: only #/ links are allowed');
      node.setAttribute('href', String(value));
    } else if (SAFE_ATTRIBUTES.has(key) || key.startsWith('aria-') || key.startsWith('data-')) {
      node.setAttribute(key, value === true ? '' : String(value));
    } else {
      throw new Error('el: attribute not allowed: ' + key);
    }
  }
  append(node, children);
  return node;
}

// append adds children (nodes or text) to node.
export function append(node, ...children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// replace empties node and fills it with children.
export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

// uid gives form controls ids their labels can name.
let counter = 0;
export function uid(prefix) {
  counter += 1;
  return `${prefix}-${counter}`;
}

// field is a labelled control: <div class="field"><label>..</label>control<hint></div>.
export function field(label, control, hint) {
  if (!control.id) control.id = uid('f');
  const hintNode = hint ? el('p', { class: 'hint', id: control.id + '-hint' }, hint) : null;
  if (hintNode) control.setAttribute('aria-describedby', hintNode.id);
  return el('div', { class: 'field' }, el('label', { for: control.id }, label), control, hintNode);
}

// alert is a message box; kind is "error", "ok" or "info". Errors are announced.
export function alert(kind, ...children) {
  return el('div', { class: `alert alert-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, children);
}

// button makes a real <button type="button"> (or submit) with a click handler.
export function button(label, onclick, { kind = 'secondary', type = 'button', ...props } = {}) {
  return el('button', { type, class: `btn btn-${kind}`, onclick, ...props }, label);
}

// busy disables a button while work runs and restores it after.
export async function busy(btn, label, work) {
  const before = btn.textContent;
  btn.disabled = true;
  btn.setAttribute('aria-busy', 'true');
  if (label) btn.textContent = label;
  try {
    return await work();
  } finally {
    btn.disabled = false;
    btn.removeAttribute('aria-busy');
    btn.textContent = before;
  }
}
