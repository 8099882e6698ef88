// How times, durations and statuses read on the page.

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

// when is an RFC 3339 time as local date and time ("" for none).
export function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : dateTime.format(d);
}

// duration is a number of seconds in words: "45 s", "30 min", "1 h 30 min", "2 days 4 h".
export function duration(seconds) {
  let s = Math.max(0, Math.round(Number(seconds) || 0));
  if (s < 60) return `${s} s`;
  const days = Math.floor(s / 86400);
  s -= days * 86400;
  const hours = Math.floor(s / 3600);
  s -= hours * 3600;
  const minutes = Math.floor(s / 60);
  const parts = [];
  if (days) parts.push(days === 1 ? '1 day' : `${days} days`);
  if (hours) parts.push(`${hours} h`);
  if (minutes && !days) parts.push(`${minutes} min`);
  return parts.join(' ');
}

// ttlInput is seconds as a value for a duration field: "1h", "90m", "45s".
export function ttlInput(seconds) {
  const s = Number(seconds) || 0;
  if (s > 0 && s % 3600 === 0) return `${s / 3600}h`;
  if (s > 0 && s % 60 === 0) return `${s / 60}m`;
  return s > 0 ? `${s}s` : '';
}

// left is the time from now until iso: "in 59 min", or "ended" once it has passed.
export function left(iso) {
  if (!iso) return '';
  const ms = new Date(iso).getTime() - Date.now();
  if (Number.isNaN(ms)) return '';
  return ms <= 0 ? 'ended' : `in ${duration(ms / 1000)}`;
}

// statusText is what each request status reads as.
export const statusText = {
  pending: 'Waiting for approval',
  approved: 'Approved: ready to pick up',
  granted: 'Picked up',
  denied: 'Denied',
  cancelled: 'Cancelled',
  expired: 'Expired',
  preview: 'Preview',
};

// resourceKind names a resource entry's type for people.
export function resourceKind(r) {
  if (r.type === 'transit') return 'Transit key';
  if (r.kind === 'folder' || String(r.name).endsWith('/*')) return 'KV folder';
  return 'KV secret';
}

// person is how a principal string reads: "group:kv-owners" as "kv-owners (group)".
export function principal(p) {
  const s = String(p);
  const m = /^(group|entity):(.*)$/.exec(s);
  if (!m) return s;
  return m[1] === 'group' ? `${m[2]} (group)` : m[2];
}
