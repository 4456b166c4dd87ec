// Deliveries: filtered, cursor-paged list; one delivery with its attempts as a timeline; retry
// one; redrive the dead-letter queue (all, or one endpoint's). Signature and key headers are
// masked wherever headers are shown.

import { describe, get, path, post } from './api.js';
import { DELIVERY_STATUSES, EVENT_TYPES, MASK, MASKED_HEADERS, statusKind } from './catalog.js';
import { badge, busy, facts, field, h, replace, select, table, time } from './dom.js';
import { pager } from './endpoints.js';

const enc = encodeURIComponent;
const FILTERS = ['endpoint_id', 'status', 'event_type', 'since', 'until'];

export async function render(ctx) {
  const [id] = ctx.parts;
  return id ? show(ctx, id) : list(ctx);
}

/** Header [name, value] pairs with secret values masked. */
export function maskHeaders(headers) {
  const pairs = Array.isArray(headers) ? headers : Object.entries(headers || {});
  return pairs.map(([name, value]) => [name,
    MASKED_HEADERS.includes(String(name).toLowerCase()) || value === MASK ? MASK : String(value)]);
}

/** RFC 3339 → the value of a datetime-local input (local time, minutes). */
function toLocalInput(iso) {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime())) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

async function endpointOptions() {
  try {
    const page = await get('/endpoints?limit=100');
    return page.data.map((e) => [e.id, `${e.id} (${e.url})`]);
  } catch {
    return [];
  }
}

async function list(ctx) {
  const params = ctx.params;
  const query = {};
  for (const name of FILTERS) query[name] = params.get(name) || '';
  const [page, endpoints] = await Promise.all([
    get(path('/deliveries', { ...query, limit: 25, cursor: params.get('cursor') })),
    endpointOptions(),
  ]);

  const endpoint = select({ name: 'endpoint_id' }, [['', 'Any endpoint'], ...endpoints], query.endpoint_id);
  if (query.endpoint_id && !endpoints.some(([v]) => v === query.endpoint_id)) {
    endpoint.appendChild(h('option', { value: query.endpoint_id, selected: true }, query.endpoint_id));
  }
  const status = select({ name: 'status' }, [['', 'Any status'], ...DELIVERY_STATUSES], query.status);
  const eventType = select({ name: 'event_type' }, [['', 'Any event type'], ...EVENT_TYPES], query.event_type);
  const since = h('input', { type: 'datetime-local', name: 'since', value: toLocalInput(query.since) });
  const until = h('input', { type: 'datetime-local', name: 'until', value: toLocalInput(query.until) });
  const filterForm = h('form.panel', { id: 'delivery-filters', role: 'search', 'aria-label': 'Filter deliveries' },
    h('div.row', {}, field('Endpoint', endpoint), field('Status', status), field('Event type', eventType)),
    h('div.row', {}, field('Created from', since), field('Created before', until)),
    h('div.row', {}, h('button', { type: 'submit' }, 'Filter'),
      h('a.button.secondary', { href: '#/deliveries' }, 'Clear filters')));
  filterForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    const set = (k, v) => { if (v) next.set(k, v); };
    set('endpoint_id', endpoint.value);
    set('status', status.value);
    set('event_type', eventType.value);
    if (since.value) set('since', new Date(since.value).toISOString());
    if (until.value) set('until', new Date(until.value).toISOString());
    const q = next.toString();
    ctx.go(q ? `#/deliveries?${q}` : '#/deliveries');
  });

  const rows = page.data.map((d) => [
    h('a', { href: `#/deliveries/${enc(d.id)}` }, d.id),
    h('a', { href: `#/endpoints/${enc(d.endpoint_id)}` }, d.endpoint_id),
    d.batch ? `${d.event_type} (batch of ${d.event_ids.length})` : d.event_type,
    badge(d.status.replace('_', ' '), statusKind(d.status)),
    String(d.attempt_count),
    d.next_attempt_at ? time(d.next_attempt_at) : '—',
    time(d.created_at),
  ]);
  const current = new URLSearchParams();
  for (const name of FILTERS) if (query[name]) current.set(name, query[name]);

  ctx.show('Deliveries',
    h('h1', {}, 'Deliveries'),
    filterForm,
    rows.length
      ? table('Deliveries', ['ID', 'Endpoint', 'Event type', 'Status', 'Attempts', 'Next attempt', 'Created'], rows)
      : h('p.notice', {}, 'No deliveries match.'),
    pager(page.next_cursor, params.get('cursor'), '#/deliveries', current.toString()),
    redrivePanel(ctx, endpoints, query.endpoint_id));
}

function redrivePanel(ctx, endpoints, selected) {
  const endpoint = select({ name: 'endpoint_id' }, [['', 'All endpoints'], ...endpoints], selected);
  const max = h('input', { type: 'number', name: 'max', min: 1, max: 10000, placeholder: '1000' });
  const result = h('div.result', { id: 'redrive-result', 'aria-live': 'polite' });
  const form = h('form', { id: 'redrive-form' },
    h('div.row', {}, field('Endpoint', endpoint), field('At most', max, 'Deliveries to move (default 1000).')),
    h('button', { type: 'submit' }, 'Redrive dead letters'), result);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    replace(result);
    const body = {};
    if (endpoint.value) body.endpoint_id = endpoint.value;
    if (max.value) body.max = Number(max.value);
    await busy(form, async () => {
      try {
        const r = await post('/deliveries/redrive', body);
        const remaining = r.remaining === null || r.remaining === undefined ? 'unknown' : `about ${r.remaining}`;
        replace(result, h('p.success', {},
          `Moved ${r.moved} back to the delivery queue; kept ${r.kept}; unreadable ${r.unreadable}; still in the dead-letter queue: ${remaining}.`));
      } catch (e) {
        replace(result, h('p.error', {}, describe(e)));
      }
    });
  });
  return h('section.panel', { 'aria-labelledby': 'redrive-title' },
    h('h2', { id: 'redrive-title' }, 'Dead-letter queue'),
    h('p', {}, 'Deliveries that failed for good wait in the dead-letter queue. Redrive puts them back on the delivery queue.'),
    form);
}

function attemptItem(a) {
  const ok = a.outcome === 'delivered';
  const kind = ok ? 'ok' : a.outcome === 'retrying' ? 'pending' : 'bad';
  return h(`li.${kind}`, {},
    h('p', {}, h('strong', {}, `Attempt ${a.attempt}`), ' · ', time(a.at), ' · ',
      badge(a.outcome.replace('_', ' '), statusKind(a.outcome))),
    facts([
      ['Status', a.status === null || a.status === undefined ? 'no answer' : String(a.status)],
      ['Latency', `${a.latency_ms} ms`],
      ['Error', a.error],
    ]));
}

async function show(ctx, id) {
  const d = await get(`/deliveries/${enc(id)}`);
  const attempts = d.attempts || [];
  const result = h('div.result', { id: 'retry-result', 'aria-live': 'polite' });
  const retry = h('button', { type: 'button', id: 'retry' }, 'Retry now');
  retry.addEventListener('click', async () => {
    retry.disabled = true;
    try {
      await post(`/deliveries/${enc(id)}/retry`);
      ctx.go(location.hash, 'Retry queued: refresh to see the new attempt.');
    } catch (e) {
      replace(result, h('p.error', {}, describe(e)));
    } finally {
      retry.disabled = false;
    }
  });
  const refresh = h('button.secondary', { type: 'button', id: 'refresh', onclick: () => ctx.rerender() }, 'Refresh');
  const timeline = attempts.length
    ? h('ol.timeline', { 'aria-label': 'Attempts, oldest first' }, attempts.map(attemptItem),
      d.next_attempt_at ? h('li.pending', {}, h('p', {}, h('strong', {}, 'Next attempt'), ' · ', time(d.next_attempt_at))) : null)
    : h('p', {}, 'No attempt yet.');
  // The body and headers as sent, when the API includes them (masked again here).
  const sent = [];
  if (d.headers) {
    sent.push(h('h3', {}, 'Headers'), h('pre', { id: 'sent-headers' },
      maskHeaders(d.headers).map(([n, v]) => `${n}: ${v}`).join('\n')));
  }
  if (typeof d.body === 'string') sent.push(h('h3', {}, 'Body'), h('pre', { id: 'sent-body' }, d.body));

  ctx.show(`Delivery ${id}`,
    h('p', {}, h('a', { href: `#/deliveries?endpoint_id=${enc(d.endpoint_id)}` }, '← Deliveries')),
    h('h1', {}, `Delivery ${id}`),
    h('section.panel', { 'aria-labelledby': 'd-facts' },
      h('h2', { id: 'd-facts' }, 'Summary'),
      facts([
        ['Status', badge(d.status.replace('_', ' '), statusKind(d.status))],
        ['Endpoint', h('a', { href: `#/endpoints/${enc(d.endpoint_id)}` }, d.endpoint_id)],
        ['Event type', d.event_type],
        ['Batch', d.batch ? `yes, ${d.event_ids.length} events` : 'no'],
        ['Events', h('span.mono', {}, d.event_ids.join(', '))],
        ['Attempts', String(d.attempt_count)],
        ['Next attempt', d.next_attempt_at ? time(d.next_attempt_at) : null],
        ['Created', time(d.created_at)],
        ['Updated', time(d.updated_at)],
      ]),
      h('div.row', {}, retry, refresh), result),
    h('section.panel', { 'aria-labelledby': 'd-attempts' }, h('h2', { id: 'd-attempts' }, 'Attempts'), timeline),
    sent.length ? h('section.panel', { 'aria-labelledby': 'd-sent' }, h('h2', { id: 'd-sent' }, 'Request sent'), sent) : null);
}
