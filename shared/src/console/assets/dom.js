// DOM helpers. Text from the API is only ever set through textContent (never parsed as HTML).

/** h('tag.class', {attr: value, onclick: fn}, child, ...): an element; strings become text. */
export function h(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split('.');
  const el = document.createElement(tag || 'div');
  if (classes.length) el.className = classes.join(' ');
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (name === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (name === 'value' || name === 'checked' || name === 'selected') {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

let ids = 0;
/** A unique id for label/control pairs. */
export function uid(prefix) {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** A labelled control: {label, hint, control} → div.field. */
export function field(label, control, hint) {
  if (!control.id) control.id = uid('f');
  const parts = [h('label', { for: control.id }, label), control];
  if (hint) {
    const hintEl = h('p.hint', { id: uid('hint') }, hint);
    control.setAttribute('aria-describedby', hintEl.id);
    parts.push(hintEl);
  }
  return h('div.field', {}, parts);
}

/** A labelled checkbox. */
export function check(label, input) {
  if (!input.id) input.id = uid('c');
  return h('div.check', {}, input, h('label', { for: input.id }, label));
}

/** A <select> of [value, text] pairs (or plain strings). */
export function select(attrs, options, selected) {
  return h('select', attrs, options.map((o) => {
    const [value, text] = Array.isArray(o) ? o : [o, o];
    return h('option', { value, selected: value === selected }, text);
  }));
}

/** A table with column headings; each row is an array of cells (nodes or text). */
export function table(caption, headings, rows) {
  return h('table', {},
    h('caption.visually-hidden', {}, caption),
    h('thead', {}, h('tr', {}, headings.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows.map((cells) => h('tr', {},
      cells.map((c, i) => h('td', { 'data-label': headings[i] }, c))))));
}

/** A definition list of [term, value] pairs (values that are null/undefined are skipped). */
export function facts(pairs) {
  return h('dl.facts', {}, pairs.filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([t, v]) => [h('dt', {}, t), h('dd', {}, v)]));
}

/** A coloured badge: kind is ok | bad | warn | neutral. */
export function badge(text, kind) {
  return h(`span.badge.${kind || 'neutral'}`, {}, text);
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A time as the browser's locale shows it, keeping the ISO text as its datetime. */
export function time(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return h('time', { datetime: iso }, d.toLocaleString());
}

/** Copies text to the clipboard; answers whether it worked. */
export async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

/** A "Copy" button for `text` that says how it went. */
export function copyButton(text, what) {
  const button = h('button.secondary', { type: 'button' }, `Copy ${what}`);
  button.addEventListener('click', async () => {
    const ok = await copy(text);
    button.textContent = ok ? 'Copied' : 'Copy failed: select the text';
  });
  return button;
}

/** Disables a form's submit buttons while `work` runs. */
export async function busy(form, work) {
  const buttons = [...form.querySelectorAll('button')];
  buttons.forEach((b) => { b.disabled = true; });
  form.setAttribute('aria-busy', 'true');
  try {
    return await work();
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
    form.removeAttribute('aria-busy');
  }
}
