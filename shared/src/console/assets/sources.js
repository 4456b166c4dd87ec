// Sources (each provider's webhook URL and whether its secrets are set) and the signature
// diagnosis: a captured request, pasted or uploaded, checked against the source's secrets.

import { ApiError, describe, get, post } from './api.js';
import { badge, busy, copyButton, facts, field, h, replace, select, table } from './dom.js';

const enc = encodeURIComponent;

/** The path before /console/ (an API Gateway stage, or nothing). */
export function stagePrefix() {
  return location.pathname.replace(/\/console(\/.*)?$/, '');
}

/** The URL a provider should call for a source. */
export function webhookUrl(source) {
  return `${location.origin}${stagePrefix()}${source.webhook_path}`;
}

/** The sources, or null when this gateway's API does not list them. */
async function loadSources() {
  try {
    const r = await get('/sources');
    return r.data || [];
  } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.status === 405)) return null;
    throw e;
  }
}

const unavailable = () => h('p.notice', { id: 'sources-unavailable' },
  'This gateway\'s management API does not list sources yet (GET /v1/sources answered 404). '
  + 'Update the gateway to see them here.');

function secretsCell(s) {
  if (!s.secrets) return badge('no secret set', 'bad');
  const what = s.verification === 'token' ? 'token' : 'secret';
  return badge(`${s.secrets} ${what}${s.secrets === 1 ? '' : 's'} set`, 'ok');
}

export async function renderSources(ctx) {
  const sources = await loadSources();
  if (sources === null) {
    ctx.show('Sources', h('h1', {}, 'Sources'), unavailable());
    return;
  }
  const rows = sources.map((s) => {
    const url = webhookUrl(s);
    const extra = [];
    if (s.provider === 'meta') extra.push(`${s.verify_tokens || 0} verify token${s.verify_tokens === 1 ? '' : 's'}`);
    if (s.token_header) extra.push(`token header ${s.token_header}`);
    if (s.token_query) extra.push(`token query ?${s.token_query}=`);
    if (s.public_url) extra.push(`signed URL ${s.public_url}`);
    if (s.sends) extra.push('sends messages');
    return [
      s.id,
      s.provider,
      h('div', {}, h('code', {}, url), ' ', copyButton(url, 'URL')),
      h('div', {}, secretsCell(s), ` by ${s.verification}`),
      extra.length ? extra.join('; ') : '—',
      h('a', { href: `#/diagnose?source=${enc(s.id)}` }, 'Diagnose'),
    ];
  });
  ctx.show('Sources',
    h('h1', {}, 'Sources'),
    h('p.lead', {}, 'Give each provider the webhook URL of its source. A source without a secret accepts nothing.'),
    rows.length
      ? table('Sources', ['ID', 'Provider', 'Webhook URL', 'Verification', 'Details', 'Check a request'], rows)
      : h('p.notice', {}, 'No sources are configured (WAGATE_SOURCES).'));
}

function verdictCard(d) {
  const title = `${d.accepted ? 'Accepted' : 'Refused'}: ${d.verdict.replaceAll('_', ' ')}`;
  const matched = d.matched_secret
    ? `secret ${d.matched_secret.index + 1} of ${d.matched_secret.of}` : null;
  return h(`section.verdict.${d.accepted ? 'accepted' : 'refused'}`, { id: 'verdict', 'aria-labelledby': 'verdict-title' },
    h('h2', { id: 'verdict-title' }, title),
    h('p', { id: 'verdict-summary' }, d.summary),
    facts([
      ['Provider', d.provider],
      ['Checked', d.checked],
      ['Secrets configured', String(d.secrets_configured)],
      ['Matched', matched],
      ['Body form', d.body_form],
      ['Signed URL', d.signed_url ? h('code', {}, d.signed_url) : null],
    ]),
    d.hints && d.hints.length ? [h('h3', {}, 'What to do'), h('ul', { id: 'verdict-hints' }, d.hints.map((t) => h('li', {}, t)))] : null);
}

function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error);
    reader.readAsText(file);
  });
}

export async function renderDiagnose(ctx) {
  const sources = await loadSources();
  if (sources === null) {
    ctx.show('Diagnose', h('h1', {}, 'Diagnose a signature'), unavailable());
    return;
  }
  const chosen = ctx.params.get('source') || (sources[0] && sources[0].id) || '';
  const source = select({ name: 'source' }, sources.map((s) => [s.id, `${s.id} (${s.provider})`]), chosen);
  const raw = h('textarea', { name: 'raw', rows: 12, spellcheck: 'false', placeholder: 'POST /webhooks/meta-demo HTTP/1.1\nX-Hub-Signature-256: sha256=…\n\n{"object":"whatsapp_business_account",…}' });
  const file = h('input', { type: 'file', name: 'file' });
  const url = h('input', { type: 'url', name: 'url', placeholder: 'https://…/webhooks/…' });
  const error = h('p.error', { role: 'alert' });
  const result = h('div', { id: 'diagnosis', 'aria-live': 'polite' });
  const form = h('form.panel', { id: 'diagnose-form' },
    field('Source', source),
    field('Captured request', raw, 'The request as captured: optional request line, headers, a blank line, then the exact body.'),
    field('Or upload a capture', file, 'A file replaces the text above.'),
    field('URL the provider called (optional)', url, 'Needed for Twilio when the gateway is behind a proxy.'),
    error,
    h('button', { type: 'submit' }, 'Diagnose'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    replace(result);
    await busy(form, async () => {
      try {
        let text = raw.value;
        if (file.files && file.files[0]) {
          try {
            text = await readFile(file.files[0]);
          } catch (e) {
            error.textContent = `The file could not be read (${e && e.name ? e.name : e}): choose it again.`;
            return;
          }
        }
        if (!text.trim()) {
          error.textContent = 'Paste a captured request or choose a file.';
          return;
        }
        const body = { raw: text };
        if (url.value.trim()) body.url = url.value.trim();
        const d = await post(`/sources/${enc(source.value)}/diagnose`, body);
        replace(result, verdictCard(d));
      } catch (e) {
        error.textContent = describe(e);
      }
    });
  });
  ctx.show('Diagnose',
    h('h1', {}, 'Diagnose a signature'),
    h('p.lead', {}, 'Why did the gateway accept or refuse a provider\'s request? Nothing here is stored or delivered.'),
    sources.length ? form : h('p.notice', {}, 'No sources are configured.'),
    result);
}
