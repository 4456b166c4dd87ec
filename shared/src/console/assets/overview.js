// The overview: GET /v1/stats for the last hour or day. Charts are SVG drawn here (no library),
// each with the same figures as a table for screen readers; every number is the API's, and what
// the API does not know is shown as unknown, never as zero.

import { get } from './api.js';
import { badge, h, table, time } from './dom.js';

const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) el.setAttribute(name, String(value));
  for (const child of children) if (child) el.appendChild(child);
  return el;
}

const number = (n) => (n === null || n === undefined ? 'unknown' : Math.round(n).toLocaleString());
const ms = (n) => (n === null || n === undefined ? '—' : `${Math.round(n).toLocaleString()} ms`);

function stepLabel(iso) {
  return new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/**
 * A bar chart of `series` ([{key, label, kind}]) over `steps`, stacked per step; `kind` picks the
 * colour class. Answers a figure with the chart and a visually hidden table of the same figures.
 */
function barChart(id, title, steps, series) {
  const width = 640;
  const height = 180;
  const pad = { left: 44, right: 8, top: 10, bottom: 26 };
  const totals = steps.map((s) => series.reduce((sum, x) => sum + (s[x.key] || 0), 0));
  const max = Math.max(1, ...totals);
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const barW = plotW / Math.max(1, steps.length);
  const chart = svg('svg', {
    viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-labelledby': `${id}-title`,
  });
  chart.appendChild(svg('title', { id: `${id}-title` }));
  chart.firstChild.textContent = `${title}: ${series.map((x) => `${x.label} ${number(steps.reduce((a, s) => a + (s[x.key] || 0), 0))}`).join(', ')}`;
  // Axis: 0 and the maximum.
  for (const [value, y] of [[0, pad.top + plotH], [max, pad.top]]) {
    const label = svg('text', { x: pad.left - 6, y: y + 4, 'text-anchor': 'end', class: 'axis' });
    label.textContent = number(value);
    chart.appendChild(label);
    chart.appendChild(svg('line', { x1: pad.left, x2: width - pad.right, y1: y, y2: y, class: 'grid' }));
  }
  steps.forEach((step, i) => {
    let y = pad.top + plotH;
    for (const s of series) {
      const value = step[s.key] || 0;
      if (value <= 0) continue;
      const barH = (value / max) * plotH;
      y -= barH;
      chart.appendChild(svg('rect', {
        x: pad.left + i * barW + barW * 0.15, y, width: barW * 0.7, height: barH, class: `bar ${s.kind}`,
      }));
    }
    if (i % Math.ceil(steps.length / 6) === 0) {
      const label = svg('text', { x: pad.left + i * barW + barW / 2, y: height - 8, 'text-anchor': 'middle', class: 'axis' });
      label.textContent = stepLabel(step.start);
      chart.appendChild(label);
    }
  });
  const legend = h('ul.legend', {}, series.map((s) => h('li', {}, h(`span.swatch.${s.kind}`, { 'aria-hidden': 'true' }), s.label)));
  const data = table(`${title}, per step`, ['Step', ...series.map((s) => s.label)],
    steps.map((step) => [time(step.start), ...series.map((s) => number(step[s.key]))]));
  data.classList.add('visually-hidden');
  return h('figure.panel.chart-panel', { 'aria-labelledby': `${id}-caption` },
    h('figcaption', { id: `${id}-caption` }, h('h2', {}, title)), chart, legend, data);
}

/** Latency p50/p99 per step as two lines. */
function latencyChart(steps) {
  const width = 640;
  const height = 180;
  const pad = { left: 56, right: 8, top: 10, bottom: 26 };
  const values = steps.flatMap((s) => [s.latency_p50_ms, s.latency_p99_ms]).filter((v) => v !== null && v !== undefined);
  const max = Math.max(1, ...values);
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const x = (i) => pad.left + (steps.length <= 1 ? plotW / 2 : (i * plotW) / (steps.length - 1));
  const y = (v) => pad.top + plotH - (v / max) * plotH;
  const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-labelledby': 'latency-title' });
  const title = svg('title', { id: 'latency-title' });
  title.textContent = values.length ? 'Delivery latency p50 and p99 per step' : 'Delivery latency: no attempt in this window';
  chart.appendChild(title);
  for (const [value, yy] of [[0, pad.top + plotH], [max, pad.top]]) {
    const label = svg('text', { x: pad.left - 6, y: yy + 4, 'text-anchor': 'end', class: 'axis' });
    label.textContent = ms(value);
    chart.appendChild(label);
    chart.appendChild(svg('line', { x1: pad.left, x2: width - pad.right, y1: yy, y2: yy, class: 'grid' }));
  }
  for (const [key, kind] of [['latency_p50_ms', 'ok'], ['latency_p99_ms', 'warn']]) {
    const points = steps.map((s, i) => [s[key], i]).filter(([v]) => v !== null && v !== undefined)
      .map(([v, i]) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`);
    if (points.length) chart.appendChild(svg('polyline', { points: points.join(' '), class: `line ${kind}` }));
    for (const p of points) {
      const [cx, cy] = p.split(',');
      chart.appendChild(svg('circle', { cx, cy, r: 3, class: `dot ${kind}` }));
    }
  }
  steps.forEach((step, i) => {
    if (i % Math.ceil(steps.length / 6) === 0) {
      const label = svg('text', { x: x(i), y: height - 8, 'text-anchor': 'middle', class: 'axis' });
      label.textContent = stepLabel(step.start);
      chart.appendChild(label);
    }
  });
  const legend = h('ul.legend', {},
    h('li', {}, h('span.swatch.ok', { 'aria-hidden': 'true' }), 'p50'),
    h('li', {}, h('span.swatch.warn', { 'aria-hidden': 'true' }), 'p99'));
  const data = table('Delivery latency, per step', ['Step', 'p50', 'p99'],
    steps.map((s) => [time(s.start), ms(s.latency_p50_ms), ms(s.latency_p99_ms)]));
  data.classList.add('visually-hidden');
  return h('figure.panel.chart-panel', { 'aria-labelledby': 'latency-caption' },
    h('figcaption', { id: 'latency-caption' }, h('h2', {}, 'Delivery latency')), chart, legend, data);
}

function tile(label, value, kind) {
  return h(`div.tile${kind ? `.${kind}` : ''}`, {}, h('span.tile-label', {}, label), h('span.tile-value', {}, value));
}

export async function render(ctx) {
  const range = ctx.params.get('window') === 'day' ? 'day' : 'hour';
  const stats = await get(`/stats?window=${range}`);
  const t = stats.totals;
  const switcher = h('p.row', {},
    h('a', { href: '#/overview?window=hour', 'aria-current': range === 'hour' ? 'true' : undefined }, 'Last hour'),
    h('a', { href: '#/overview?window=day', 'aria-current': range === 'day' ? 'true' : undefined }, 'Last day'));
  const dlq = stats.dead_letter_depth;
  const tiles = h('section.tiles', { 'aria-label': 'Totals' },
    tile('Webhooks accepted', number(t && t.webhooks_accepted)),
    tile('Webhooks refused', number(t && t.webhooks_refused), t && t.webhooks_refused > 0 ? 'warn' : ''),
    tile('Answered 503', number(t && t.webhooks_unavailable), t && t.webhooks_unavailable > 0 ? 'bad' : ''),
    tile('Events', number(t && t.events)),
    tile('Delivered', number(t && t.delivered), 'ok'),
    tile('Failed attempts', number(t && t.failed_attempts), t && t.failed_attempts > 0 ? 'warn' : ''),
    tile('Dead-lettered', number(t && t.dead_lettered), t && t.dead_lettered > 0 ? 'bad' : ''),
    tile('Latency p50 / p99', t ? `${ms(t.latency_p50_ms)} / ${ms(t.latency_p99_ms)}` : 'unknown'),
    tile('Dead-letter queue', dlq === null || dlq === undefined ? 'unknown' : number(dlq), dlq > 0 ? 'bad' : ''));
  const source = stats.metrics_from
    ? h('p.hint', {}, `Webhook, event and delivery figures: ${stats.metrics_from}. From `, time(stats.from), ' to ', time(stats.to), '.')
    : h('p.hint', { role: 'note' }, 'This deployment names no functions whose metrics to read (METRICS_FUNCTIONS), so webhook, event and delivery figures are not shown. The dead-letter queue and endpoints below are read live.');
  const charts = stats.steps.length ? [
    barChart('webhooks', 'Webhooks', stats.steps, [
      { key: 'webhooks_accepted', label: 'Accepted', kind: 'ok' },
      { key: 'webhooks_refused', label: 'Refused', kind: 'warn' },
      { key: 'webhooks_unavailable', label: 'Answered 503', kind: 'bad' },
    ]),
    barChart('deliveries', 'Deliveries', stats.steps, [
      { key: 'delivered', label: 'Delivered', kind: 'ok' },
      { key: 'failed_attempts', label: 'Failed attempts', kind: 'warn' },
      { key: 'dead_lettered', label: 'Dead-lettered', kind: 'bad' },
    ]),
    latencyChart(stats.steps),
  ] : [];
  const trouble = stats.endpoints_in_trouble;
  const troubleSection = h('section.panel', { 'aria-labelledby': 'trouble' },
    h('h2', { id: 'trouble' }, 'Endpoints in trouble'),
    trouble.length
      ? table('Endpoints in trouble', ['Endpoint', 'State', 'Retrying', 'Dead-lettered', 'Last error'],
        trouble.map((e) => [
          h('a', { href: `#/endpoints/${encodeURIComponent(e.endpoint_id)}` }, e.endpoint_id),
          e.enabled ? badge('enabled', 'ok') : badge(e.disabled_reason ? `disabled: ${e.disabled_reason}` : 'disabled', 'bad'),
          `${e.retrying} of ${e.recent}`,
          `${e.dead_lettered} of ${e.recent}`,
          e.last_error ? [e.last_error, ' ', time(e.last_failure_at)] : '—',
        ]))
      : h('p', {}, 'None: every endpoint is enabled and none of their latest deliveries in this window is retrying or dead-lettered.'));
  ctx.show('Overview', h('h1', {}, 'Overview'), switcher, source, tiles, ...charts, troubleSection);
}
