// Endpoints: list, create, show, edit, enable/disable, delete, rotate the signing secret (shown
// once), send a test event. Custom header values are write-only: never shown, only counted.

import { del, describe, get, patch, path, post } from './api.js';
import { EVENT_FILTER_WILDCARDS, EVENT_TYPES, MASK } from './catalog.js';
import { badge, busy, check, copyButton, facts, field, h, replace, select, table, time } from './dom.js';

/** A secret to show once: {id, secret, what}; cleared as soon as it is rendered. */
let pending = null;

/** Forgets a secret not shown yet (logout). */
export function forget() {
  pending = null;
}

export async function render(ctx) {
  const [id] = ctx.parts;
  if (!id) return list(ctx);
  if (id === 'new') return create(ctx);
  return show(ctx, id);
}

const enc = encodeURIComponent;

function headerCount(headers) {
  const n = Object.keys(headers || {}).length;
  return n === 0 ? 'none' : `${n} header${n === 1 ? '' : 's'} set`;
}

function filters(types) {
  return types && types.length ? types.join(', ') : 'every event';
}

async function list(ctx) {
  const cursor = ctx.params.get('cursor');
  const page = await get(path('/endpoints', { limit: 50, cursor }));
  const rows = page.data.map((e) => [
    h('a', { href: `#/endpoints/${enc(e.id)}` }, e.id),
    h('span.mono', {}, e.url),
    e.enabled ? badge('enabled', 'ok') : badge(e.disabled_reason ? 'disabled by wagate' : 'disabled', 'bad'),
    filters(e.event_types),
    headerCount(e.headers),
  ]);
  ctx.show('Endpoints',
    h('div.row.spread', {}, h('h1', {}, 'Endpoints'), h('a.button', { href: '#/endpoints/new' }, 'New endpoint')),
    rows.length
      ? table('Endpoints', ['ID', 'URL', 'State', 'Event filters', 'Custom headers'], rows)
      : h('p.notice', {}, 'No endpoints yet. Create one to receive events.'),
    pager(page.next_cursor, cursor, '#/endpoints'));
}

/** Next/first page links for a cursor-paged list at `base` (its other query in `query`). */
export function pager(next, cursor, base, query) {
  const params = new URLSearchParams(query || '');
  const links = [];
  if (cursor) {
    params.delete('cursor');
    const q = params.toString();
    links.push(h('a.button.secondary', { href: q ? `${base}?${q}` : base }, 'First page'));
  }
  if (next) {
    params.set('cursor', next);
    links.push(h('a.button.secondary', { href: `${base}?${params}` }, 'Next page'));
  }
  return links.length ? h('nav.pager', { 'aria-label': 'Pages' }, links) : null;
}

/** The form fields of an endpoint; `current` is the endpoint being edited, if any. */
function endpointForm(current, submitText, onSubmit) {
  const url = h('input', { type: 'url', name: 'url', required: true, value: current ? current.url : '', placeholder: 'https://example.com/webhooks/whatsapp' });
  const description = h('input', { type: 'text', name: 'description', value: current?.description || '' });
  const types = h('input', {
    type: 'text', name: 'event_types', value: current ? current.event_types.join(', ') : '', list: 'event-filter-options', autocomplete: 'off',
  });
  const options = h('datalist', { id: 'event-filter-options' },
    EVENT_FILTER_WILDCARDS.concat(EVENT_TYPES).map((t) => h('option', { value: t })));
  const batching = h('input', { type: 'checkbox', name: 'batching', checked: current ? current.batching : true });
  const mediaWait = h('input', { type: 'checkbox', name: 'media_wait', checked: current ? current.media_wait : true });
  const rows = h('div', {});
  const addRow = (name, existing) => {
    const nameInput = h('input', { type: 'text', name: 'header-name', value: name || '', autocomplete: 'off', 'aria-label': 'Header name' });
    const valueInput = h('input', {
      type: 'password', name: 'header-value', autocomplete: 'off', 'aria-label': `Value of header ${name || ''}`.trim(),
      placeholder: existing ? 'unchanged' : '',
    });
    if (existing) valueInput.dataset.existing = name;
    const remove = h('button.secondary', { type: 'button' }, 'Remove');
    const row = h('div.row.header-row', {}, nameInput, valueInput, remove);
    remove.addEventListener('click', () => row.remove());
    rows.appendChild(row);
  };
  for (const name of Object.keys(current?.headers || {})) addRow(name, true);
  const add = h('button.secondary', { type: 'button', onclick: () => addRow('', false) }, 'Add header');
  const error = h('p.error', { role: 'alert' });
  const form = h('form.panel', { id: current ? 'edit-form' : 'create-form', novalidate: true },
    field('URL', url, 'Where deliveries go (https).'),
    field('Description', description),
    field('Event type filters', types, 'Comma-separated: exact types (whatsapp.message.received), families (whatsapp.message.*) or *. Empty: every event.'),
    options,
    check('Batch inbound message bursts', batching),
    check('Wait for media files before delivering', mediaWait),
    h('fieldset', {}, h('legend', {}, 'Custom headers'),
      h('p.hint', {}, current
        ? `${headerCount(current.headers)}. Values are write-only: leave one empty to keep it.`
        : 'Sent with every delivery (e.g. the receiver\'s own API key). Values are write-only: never shown again.'),
      rows, add),
    error,
    h('button', { type: 'submit' }, submitText));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    const headers = {};
    for (const row of rows.querySelectorAll('.header-row')) {
      const [n, v] = row.querySelectorAll('input');
      const name = n.value.trim();
      if (!name) continue;
      headers[name] = v.value === '' && v.dataset.existing === name ? MASK : v.value;
    }
    const body = {
      url: url.value.trim(),
      description: description.value.trim() || null,
      event_types: types.value.split(/[\s,]+/).filter(Boolean),
      batching: batching.checked,
      media_wait: mediaWait.checked,
      headers,
    };
    await busy(form, async () => {
      try {
        await onSubmit(body);
      } catch (e) {
        error.textContent = describe(e);
      }
    });
  });
  return form;
}

function create(ctx) {
  const form = endpointForm(null, 'Create endpoint', async (body) => {
    const created = await post('/endpoints', body);
    pending = { id: created.id, secret: created.secret, what: 'signing secret' };
    ctx.go(`#/endpoints/${enc(created.id)}`, `Endpoint ${created.id} created.`);
  });
  ctx.show('New endpoint', h('p', {}, h('a', { href: '#/endpoints' }, '← Endpoints')), h('h1', {}, 'New endpoint'), form);
}

function secretBox(shown) {
  const box = h('section.secret-box', { 'aria-labelledby': 'secret-title', id: 'secret-box' },
    h('h2', { id: 'secret-title' }, `New ${shown.what}: shown once`),
    h('p', {}, 'Copy it now into the receiver\'s configuration; the console cannot show it again.'),
    h('code', { id: 'secret-value' }, shown.secret));
  box.appendChild(h('div.row', {}, copyButton(shown.secret, 'secret'),
    h('button.secondary', { type: 'button', onclick: () => box.remove() }, 'Dismiss')));
  return box;
}

/** A button that asks again inline before `action` (no browser dialog). */
function confirmButton(text, question, action, kind) {
  const wrap = h('span.row', {});
  const first = h(`button.${kind || 'secondary'}`, { type: 'button' }, text);
  const reset = () => replace(wrap, first);
  first.addEventListener('click', () => {
    const yes = h(`button.${kind || 'secondary'}`, { type: 'button' }, `Yes, ${text.toLowerCase()}`);
    const no = h('button.secondary', { type: 'button', onclick: reset }, 'Cancel');
    yes.addEventListener('click', async () => {
      yes.disabled = true;
      await action();
      if (wrap.isConnected) reset();
    });
    replace(wrap, h('span', {}, question), yes, no);
    yes.focus();
  });
  reset();
  return wrap;
}

async function show(ctx, id) {
  const endpoint = await get(`/endpoints/${enc(id)}`);
  const shown = pending && pending.id === id ? pending : null;
  const report = (text, kind) => ctx.flash(text, kind);
  const fail = (e) => report(describe(e), 'error');

  const toggle = h('button.secondary', { type: 'button', id: 'toggle' }, endpoint.enabled ? 'Disable' : 'Enable');
  toggle.addEventListener('click', async () => {
    try {
      await post(`/endpoints/${enc(id)}/${endpoint.enabled ? 'disable' : 'enable'}`);
      ctx.go(location.hash, `Endpoint ${endpoint.enabled ? 'disabled' : 'enabled'}.`);
    } catch (e) { fail(e); }
  });
  const remove = confirmButton('Delete', `Delete ${id}? Its deliveries stop.`, async () => {
    try {
      await del(`/endpoints/${enc(id)}`);
      ctx.go('#/endpoints', `Endpoint ${id} deleted.`);
    } catch (e) { fail(e); }
  }, 'danger');

  // Send a test event.
  const testType = select({ name: 'event_type' }, EVENT_TYPES, 'whatsapp.message.received');
  const testResult = h('div.result', { id: 'test-result', 'aria-live': 'polite' });
  const testForm = h('form', { id: 'test-form' }, field('Event type', testType),
    h('button', { type: 'submit' }, 'Send test event'), testResult);
  testForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    replace(testResult);
    await busy(testForm, async () => {
      try {
        const r = await post(`/endpoints/${enc(id)}/test`, { event_type: testType.value });
        const a = r.attempt;
        const good = r.result === 'delivered';
        replace(testResult, h(`div.${good ? 'success' : 'error'}`, {},
          h('p', {}, h('strong', {}, `Test ${r.result.replace('_', ' ')}`), ` (${r.event_type})`),
          a ? facts([
            ['Status', a.status === null || a.status === undefined ? 'no answer' : String(a.status)],
            ['Latency', `${a.latency_ms} ms`],
            ['Error', a.error],
          ]) : h('p', {}, 'No attempt was made.'),
          h('p', {}, h('a', { href: `#/deliveries/${enc(r.delivery_id)}` }, `Delivery ${r.delivery_id}`))));
      } catch (e) {
        replace(testResult, h('p.error', {}, describe(e)));
      }
    });
  });

  // Rotate the signing secret.
  const grace = h('input', { type: 'number', name: 'grace_seconds', min: 0, max: 604800, placeholder: '86400' });
  const rotateError = h('p.error', { role: 'alert' });
  const rotateForm = h('form', { id: 'rotate-form' },
    field('Grace period (seconds)', grace, 'How long the old secret keeps signing too (default 24 h, 0: stop now).'),
    rotateError, h('button', { type: 'submit' }, 'Rotate secret'));
  rotateForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    rotateError.textContent = '';
    const body = grace.value === '' ? {} : { grace_seconds: Number(grace.value) };
    await busy(rotateForm, async () => {
      try {
        const rotated = await post(`/endpoints/${enc(id)}/rotate-secret`, body);
        pending = { id, secret: rotated.secret, what: 'signing secret' };
        ctx.go(location.hash, 'Secret rotated.');
      } catch (e) {
        rotateError.textContent = describe(e);
      }
    });
  });

  const edit = endpointForm(endpoint, 'Save changes', async (body) => {
    await patch(`/endpoints/${enc(id)}`, body);
    ctx.go(location.hash, 'Endpoint saved.');
  });

  const shownOk = ctx.show(id,
    h('p', {}, h('a', { href: '#/endpoints' }, '← Endpoints')),
    h('h1', {}, `Endpoint ${id}`),
    shown ? secretBox(shown) : null,
    h('section.panel', { 'aria-labelledby': 'ep-facts' },
      h('h2', { id: 'ep-facts' }, 'Settings'),
      facts([
        ['URL', h('span.mono', {}, endpoint.url)],
        ['Description', endpoint.description],
        ['State', endpoint.enabled ? badge('enabled', 'ok') : badge('disabled', 'bad')],
        ['Disabled because', endpoint.disabled_reason],
        ['Event filters', filters(endpoint.event_types)],
        ['Batching', endpoint.batching ? 'on' : 'off'],
        ['Media', endpoint.media_wait ? 'waits for stored files' : 'delivered at once (pending)'],
        ['Custom headers', headerCount(endpoint.headers)],
        ['Previous secret signs until', endpoint.previous_secret_expires_at ? time(endpoint.previous_secret_expires_at) : null],
        ['Created', time(endpoint.created_at)],
        ['Updated', time(endpoint.updated_at)],
      ]),
      h('div.row', {}, toggle, remove,
        h('a.button.secondary', { href: `#/deliveries?endpoint_id=${enc(id)}` }, 'Deliveries'))),
    h('div.grid2', {},
      h('section.panel', { 'aria-labelledby': 'ep-test' }, h('h2', { id: 'ep-test' }, 'Send a test event'), testForm),
      h('section.panel', { 'aria-labelledby': 'ep-rotate' }, h('h2', { id: 'ep-rotate' }, 'Rotate the signing secret'), rotateForm)),
    h('h2', {}, 'Edit'),
    edit);
  if (shownOk && shown) pending = null;
}
