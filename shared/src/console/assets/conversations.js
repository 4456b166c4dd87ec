// Conversations: list (status, source) with a search the API runs (phone, label, and text in
// the id, number, user id, name or a label), and one conversation: contact, context and recent
// messages from both sides, labels and notes (editable), close and transfer.

import { describe, get, path, post, put } from './api.js';
import { badge, busy, facts, field, h, replace, select, table, time } from './dom.js';
import { pager } from './endpoints.js';

const enc = encodeURIComponent;

export async function render(ctx) {
  const [id] = ctx.parts;
  return id ? show(ctx, id) : list(ctx);
}

function who(c) {
  const contact = c.contact || {};
  return contact.name || contact.username || contact.wa_id || contact.user_id || 'unknown';
}

function labels(list) {
  return list && list.length ? h('span.labels', {}, list.map((l) => badge(l, 'neutral'))) : '—';
}

/** Source ids for a select, when the API lists sources (else a text field is offered). */
async function sourceIds() {
  try {
    const r = await get('/sources');
    return (r.data || []).map((s) => s.id);
  } catch {
    return null;
  }
}

async function list(ctx) {
  const params = ctx.params;
  const statusValue = params.get('status') || 'active';
  const sourceValue = params.get('source_id') || '';
  const search = params.get('q') || '';
  const phoneValue = params.get('phone') || '';
  const labelValue = params.get('label') || '';
  const [page, sources] = await Promise.all([
    get(path('/conversations', {
      status: statusValue, source_id: sourceValue, q: search, phone: phoneValue, label: labelValue,
      limit: 50, cursor: params.get('cursor'),
    })),
    sourceIds(),
  ]);
  const status = select({ name: 'status' }, [['active', 'Active'], ['ended', 'Ended']], statusValue);
  const source = sources
    ? select({ name: 'source_id' }, [['', 'Any source'], ...sources], sourceValue)
    : h('input', { type: 'text', name: 'source_id', value: sourceValue });
  const q = h('input', { type: 'search', name: 'q', value: search });
  const phone = h('input', { type: 'tel', name: 'phone', value: phoneValue, autocomplete: 'off' });
  const label = h('input', { type: 'text', name: 'label', value: labelValue });
  const form = h('form.panel', { id: 'conversation-filters', role: 'search', 'aria-label': 'Find conversations' },
    h('div.row', {}, field('Status', status), field('Source', source),
      field('Phone', phone, 'The contact\'s number, any punctuation.'),
      field('Label', label),
      field('Search', q, 'Part of an id, number, user id, name or label.')),
    h('button', { type: 'submit' }, 'Show'));
  const filters = { source_id: source, q, phone, label };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    next.set('status', status.value);
    for (const [name, input] of Object.entries(filters)) {
      if (input.value.trim()) next.set(name, input.value.trim());
    }
    ctx.go(`#/conversations?${next}`);
  });

  const rows = page.data.map((c) => [
    h('a', { href: `#/conversations/${enc(c.id)}` }, who(c)),
    h('span.mono', {}, c.contact?.wa_id || c.contact?.user_id || '—'),
    `${c.source.id} (${c.source.provider})`,
    badge(c.status, c.status === 'active' ? 'ok' : 'neutral'),
    labels(c.labels),
    `${c.inbound_count} in / ${c.outbound_count} out`,
    time(c.last_active_at),
  ]);
  const current = new URLSearchParams();
  current.set('status', statusValue);
  for (const [name, value] of [['source_id', sourceValue], ['q', search], ['phone', phoneValue], ['label', labelValue]]) {
    if (value) current.set(name, value);
  }
  ctx.show('Conversations',
    h('h1', {}, 'Conversations'),
    form,
    rows.length
      ? table('Conversations', ['Contact', 'Phone or user id', 'Source', 'Status', 'Labels', 'Messages', 'Last active'], rows)
      : h('p.notice', {}, search || phoneValue || labelValue ? 'No conversation matches.' : 'No conversations.'),
    pager(page.next_cursor, params.get('cursor'), '#/conversations', current.toString()));
}

function message(m) {
  return h(`li.${m.direction === 'outbound' ? 'outbound' : 'inbound'}`, {},
    h('span.meta', {}, m.direction === 'outbound' ? 'Business' : 'Customer', ' · ',
      m.timestamp ? time(m.timestamp) : 'time unknown', m.message_type ? ` · ${m.message_type}` : ''),
    m.text ? h('span', {}, m.text) : h('em', {}, m.media ? 'media' : '(no text)'));
}

async function show(ctx, id) {
  const c = await get(`/conversations/${enc(id)}`);
  const route = `/conversations/${enc(id)}`;
  const after = (message) => ctx.go(location.hash, message);
  const contact = c.contact || {};

  // Labels.
  const labelInput = h('input', { type: 'text', name: 'labels', value: (c.labels || []).join(', ') });
  const labelError = h('p.error', { role: 'alert' });
  const labelForm = h('form', { id: 'labels-form' },
    field('Labels', labelInput, 'Comma-separated; saving replaces every label.'), labelError,
    h('button', { type: 'submit' }, 'Save labels'));
  labelForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    labelError.textContent = '';
    const next = labelInput.value.split(',').map((l) => l.trim()).filter(Boolean);
    await busy(labelForm, async () => {
      try {
        await put(`${route}/labels`, { labels: next });
        after('Labels saved.');
      } catch (e) { labelError.textContent = describe(e); }
    });
  });

  // Notes: the whole list is sent back on each change.
  const notes = c.notes || [];
  const noteError = h('p.error', { role: 'alert' });
  const saveNotes = async (next, message) => {
    try {
      await put(`${route}/notes`, { notes: next.map((n) => ({ text: n.text, author: n.author || null })) });
      after(message);
    } catch (e) { noteError.textContent = describe(e); }
  };
  const noteList = notes.length
    ? h('ul', { id: 'notes' }, notes.map((n, i) => h('li', {},
      h('p', {}, n.text), h('p.hint', {}, n.author ? `${n.author} · ` : '', time(n.created_at), ' ',
        h('button.link', { type: 'button', onclick: () => saveNotes(notes.filter((_, j) => j !== i), 'Note removed.') },
          'Remove note')))))
    : h('p', {}, 'No notes.');
  const noteText = h('textarea', { name: 'note', rows: 3, maxlength: 2000 });
  const noteAuthor = h('input', { type: 'text', name: 'author', maxlength: 200 });
  const noteForm = h('form', { id: 'note-form' }, field('New note', noteText), field('Author', noteAuthor),
    noteError, h('button', { type: 'submit' }, 'Add note'));
  noteForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    noteError.textContent = '';
    if (!noteText.value.trim()) {
      noteError.textContent = 'Write the note first.';
      return;
    }
    await busy(noteForm, () => saveNotes([...notes, { text: noteText.value.trim(), author: noteAuthor.value.trim() }], 'Note added.'));
  });

  // Transfer and close.
  const toAgent = h('input', { type: 'text', name: 'to_agent', maxlength: 200 });
  const toTeam = h('input', { type: 'text', name: 'to_team', maxlength: 200 });
  const transferNotes = h('input', { type: 'text', name: 'notes', maxlength: 2000 });
  const transferError = h('p.error', { role: 'alert' });
  const transferForm = h('form', { id: 'transfer-form' },
    h('div.row', {}, field('To agent', toAgent), field('To team', toTeam)),
    field('Notes for whoever takes over', transferNotes), transferError,
    h('button', { type: 'submit' }, 'Transfer'));
  transferForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    transferError.textContent = '';
    const body = {};
    if (toAgent.value.trim()) body.to_agent = toAgent.value.trim();
    if (toTeam.value.trim()) body.to_team = toTeam.value.trim();
    if (transferNotes.value.trim()) body.notes = transferNotes.value.trim();
    if (!body.to_agent && !body.to_team) {
      transferError.textContent = 'Name an agent or a team.';
      return;
    }
    await busy(transferForm, async () => {
      try {
        await post(`${route}/transfer`, body);
        after('Conversation transferred.');
      } catch (e) { transferError.textContent = describe(e); }
    });
  });
  const closeError = h('p.error', { role: 'alert' });
  const close = h('button.danger', { type: 'button', id: 'close-conversation' }, 'Close conversation');
  close.addEventListener('click', async () => {
    close.disabled = true;
    try {
      await post(`${route}/close`, { reason: 'manual' });
      after('Conversation closed.');
    } catch (e) {
      closeError.textContent = describe(e);
      close.disabled = false;
    }
  });

  const recent = c.context?.recent_messages || [];
  const assignee = c.assignee && (c.assignee.agent_id || c.assignee.team_id)
    ? [c.assignee.agent_id && `agent ${c.assignee.agent_id}`, c.assignee.team_id && `team ${c.assignee.team_id}`].filter(Boolean).join(', ')
    : null;
  const handoff = c.handoff
    ? [c.handoff.reason, c.handoff.team_id && `team ${c.handoff.team_id}`, c.handoff.requested_by && `by ${c.handoff.requested_by}`].filter(Boolean).join(' · ') || 'requested'
    : null;

  ctx.show(`Conversation with ${who(c)}`,
    h('p', {}, h('a', { href: '#/conversations' }, '← Conversations')),
    h('h1', {}, `Conversation with ${who(c)}`),
    h('div.grid2', {},
      h('section.panel', { 'aria-labelledby': 'c-facts' },
        h('h2', { id: 'c-facts' }, 'Details'),
        facts([
          ['ID', h('span.mono', {}, c.id)],
          ['Status', badge(c.status, c.status === 'active' ? 'ok' : 'neutral')],
          ['Ended because', c.end_reason],
          ['Phone', contact.wa_id],
          ['User id', contact.user_id],
          ['Username', contact.username],
          ['Contact', c.contact_id],
          ['External id', c.external_id],
          ['Source', `${c.source.id} (${c.source.provider})`],
          ['Business', c.business_id],
          ['Assigned to', assignee],
          ['Hand-off asked', handoff],
          ['Messages', `${c.inbound_count} from the customer, ${c.outbound_count} from the business`],
          ['Started', time(c.created_at)],
          ['Last active', time(c.last_active_at)],
          ['Labels', labels(c.labels)],
        ])),
      h('section.panel', { 'aria-labelledby': 'c-messages' },
        h('h2', { id: 'c-messages' }, 'Recent messages'),
        c.context?.summary ? h('p', {}, c.context.summary) : null,
        recent.length ? h('ol.messages', {}, recent.map(message)) : h('p', {}, 'No recent messages kept.'))),
    h('div.grid2', {},
      h('section.panel', { 'aria-labelledby': 'c-labels' }, h('h2', { id: 'c-labels' }, 'Labels'), labelForm),
      h('section.panel', { 'aria-labelledby': 'c-notes' }, h('h2', { id: 'c-notes' }, 'Notes'), noteList, noteForm)),
    c.status === 'active'
      ? h('div.grid2', {},
        h('section.panel', { 'aria-labelledby': 'c-transfer' }, h('h2', { id: 'c-transfer' }, 'Transfer'), transferForm),
        h('section.panel', { 'aria-labelledby': 'c-close' }, h('h2', { id: 'c-close' }, 'Close'),
          h('p', {}, 'Ends the conversation; the next message opens a new one.'), close, closeError))
      : null);
}
