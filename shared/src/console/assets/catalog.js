// Closed lists the console offers in its forms (the API checks them again). A unit test of
// shared::console keeps EVENT_TYPES equal to the gateway's EventType list.

export const EVENT_TYPES = [
  'whatsapp.message.received',
  'whatsapp.message.sent',
  'whatsapp.message.delivered',
  'whatsapp.message.read',
  'whatsapp.message.failed',
  'whatsapp.message.pending',
  'whatsapp.message.edited',
  'whatsapp.message.revoked',
  'whatsapp.conversation.created',
  'whatsapp.conversation.ended',
  'whatsapp.conversation.transferred',
  'whatsapp.conversation.handoff_requested',
  'whatsapp.campaign.completed',
  'whatsapp.contact.created',
  'whatsapp.contact.updated',
  'whatsapp.contact.preferences_updated',
  'whatsapp.contact.user_id_changed',
  'whatsapp.contact.synced',
  'whatsapp.session.status_updated',
  'whatsapp.session.engine_event',
  'whatsapp.template.status_updated',
  'whatsapp.template.quality_updated',
  'whatsapp.template.category_updated',
  'whatsapp.template.components_updated',
  'whatsapp.account.updated',
  'whatsapp.account.review_updated',
  'whatsapp.account.alert',
  'whatsapp.account.capability_updated',
  'whatsapp.account.security',
  'whatsapp.account.settings_updated',
  'whatsapp.phone_number.quality_updated',
  'whatsapp.phone_number.name_updated',
  'whatsapp.call.received',
  'whatsapp.call.ringing',
  'whatsapp.call.accepted',
  'whatsapp.call.rejected',
  'whatsapp.call.ended',
  'whatsapp.call.updated',
  'whatsapp.group.joined',
  'whatsapp.group.left',
  'whatsapp.group.participants_updated',
  'whatsapp.group.updated',
  'whatsapp.label.upserted',
  'whatsapp.label.deleted',
  'whatsapp.label.chat_added',
  'whatsapp.label.chat_removed',
  'whatsapp.presence.updated',
  'whatsapp.poll.voted',
  'whatsapp.poll.vote_failed',
  'whatsapp.chat.archive_updated',
  'whatsapp.event.responded',
  'whatsapp.event.response_failed',
  'whatsapp.flow.updated',
  'whatsapp.history.synced',
  'whatsapp.provider.error',
  'whatsapp.provider.event',
];

/** Filters an endpoint can hold besides exact types: everything, or a family. */
export const EVENT_FILTER_WILDCARDS = ['*', 'whatsapp.*'].concat(
  [...new Set(EVENT_TYPES.map((t) => t.split('.').slice(0, 2).join('.')))].map((f) => `${f}.*`));

export const DELIVERY_STATUSES = [
  ['retrying', 'Retrying'],
  ['delivered', 'Delivered'],
  ['dead_lettered', 'Dead-lettered'],
  ['endpoint_disabled', 'Endpoint disabled'],
  ['skipped', 'Skipped'],
];

/** Header names whose values are secrets or signatures: shown masked. */
export const MASKED_HEADERS = ['x-webhook-signature', 'webhook-signature', 'authorization', 'x-api-key'];

/** The mask the API shows for write-only values. */
export const MASK = '********';

/** badge kind for a delivery or attempt status. */
export function statusKind(status) {
  switch (status) {
    case 'delivered': return 'ok';
    case 'retrying': return 'warn';
    case 'skipped': return 'neutral';
    default: return 'bad';
  }
}
