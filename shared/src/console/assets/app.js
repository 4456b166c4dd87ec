// The console's shell: hash routes (#/endpoints, #/deliveries/dlv_…), the login gate, the nav,
// one status region for results and errors. Pages live in their own modules.

import { ApiError, clearKey, describe, get, key, setKey, whenUnauthorized } from './api.js';
import { field, h, replace } from './dom.js';
import * as endpoints from './endpoints.js';
import * as deliveries from './deliveries.js';
import * as conversations from './conversations.js';
import * as sources from './sources.js';
import * as overview from './overview.js';

const pages = {
  overview: overview.render,
  endpoints: endpoints.render,
  deliveries: deliveries.render,
  conversations: conversations.render,
  sources: sources.renderSources,
  diagnose: sources.renderDiagnose,
};

const view = () => document.getElementById('view');
const flashEl = () => document.getElementById('flash');
let renderToken = 0;
let carried = null;
let firstRender = true;

/** Shows `text` in the status region (kind: success | error | info). */
export function flash(text, kind) {
  const el = flashEl();
  el.className = `flash ${kind === 'error' ? 'error' : kind === 'success' ? 'success' : ''}`;
  el.textContent = text || '';
}

/** `#/a/b?x=1` → {parts: ['a', 'b'], params}. */
function parse() {
  const hash = location.hash.replace(/^#\/?/, '');
  const [route, query] = hash.split('?');
  const parts = route.split('/').filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(query || '') };
}

/** Goes to `hash`, showing `message` once the page is rendered. */
function go(hash, message, kind) {
  carried = message ? { message, kind: kind || 'success' } : null;
  if (location.hash === hash) render();
  else location.hash = hash;
}

async function render() {
  const token = ++renderToken;
  const { parts, params } = parse();
  flash(carried ? carried.message : '', carried ? carried.kind : '');
  carried = null;
  const signedIn = Boolean(key());
  document.getElementById('nav').hidden = !signedIn;
  document.getElementById('logout').hidden = !signedIn;
  if (!signedIn) {
    login();
    return;
  }
  const name = parts[0] || 'overview';
  const page = pages[name];
  if (!page) {
    go('#/overview');
    return;
  }
  for (const a of document.querySelectorAll('nav a')) {
    if (a.getAttribute('href') === `#/${name}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  replace(view(), h('p', { 'aria-busy': 'true' }, 'Loading…'));
  const ctx = {
    parts: parts.slice(1),
    params,
    go,
    flash,
    rerender: render,
    current: () => token === renderToken,
    /** Replaces the view with `nodes` and titles the page, unless another route won. */
    show(title, ...nodes) {
      if (token !== renderToken) return false;
      document.title = `${title} · wagate console`;
      replace(view(), ...nodes);
      const heading = view().querySelector('h1');
      if (heading && !firstRender) {
        heading.setAttribute('tabindex', '-1');
        heading.focus();
      }
      firstRender = false;
      return true;
    },
  };
  try {
    await page(ctx);
  } catch (error) {
    if (token !== renderToken) return;
    if (error instanceof ApiError && error.status === 401) return;
    ctx.show('Error', h('h1', {}, 'Something went wrong'), h('p.error', { role: 'alert' }, describe(error)),
      h('p', {}, h('button.secondary', { type: 'button', onclick: () => render() }, 'Try again')));
  }
}

function login(message) {
  document.title = 'Log in · wagate console';
  const input = h('input', {
    type: 'password', name: 'key', autocomplete: 'off', autocapitalize: 'off', spellcheck: 'false', required: true,
  });
  const error = h('p.error', { id: 'login-error', role: 'alert' }, message || '');
  const form = h('form.panel', { id: 'login', novalidate: true },
    field('Admin API key', input, 'One of the keys in ADMIN_API_KEYS. Kept in this tab only, until you log out or close it.'),
    error,
    h('button', { type: 'submit' }, 'Log in'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) {
      error.textContent = 'Enter an API key.';
      input.focus();
      return;
    }
    error.textContent = '';
    const button = form.querySelector('button');
    button.disabled = true;
    try {
      await get('/endpoints?limit=1', { key: value });
      setKey(value);
      input.value = '';
      const { parts } = parse();
      go(parts.length && pages[parts[0]] ? location.hash : '#/overview', 'Logged in.');
    } catch (e) {
      error.textContent = describe(e);
      input.focus();
    } finally {
      button.disabled = false;
    }
  });
  replace(view(), h('h1', {}, 'Log in'),
    h('p.lead', {}, 'The console manages this gateway through its management API.'), form);
}

function logout() {
  clearKey();
  endpoints.forget();
  go('#/overview', 'Logged out.');
}

whenUnauthorized(() => {
  clearKey();
  endpoints.forget();
  document.getElementById('nav').hidden = true;
  document.getElementById('logout').hidden = true;
  renderToken += 1;
  login('The API key was refused (401): log in again.');
});

document.getElementById('logout').addEventListener('click', logout);
window.addEventListener('hashchange', render);
render();
