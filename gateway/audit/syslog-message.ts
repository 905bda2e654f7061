import { syslogSeverity } from '../../policy/syslog-severity.js';
import type { AuditEntry } from '../store/store.js';
import { canonicalJson } from './canonical-json.js';

/** RFC 5424 §6.2.1 facility codes by the names syslog configurations use. */
export const SYSLOG_FACILITIES = {
  kern: 0, user: 1, mail: 2, daemon: 3, auth: 4, syslog: 5, lpr: 6, news: 7, uucp: 8, cron: 9, authpriv: 10, ftp: 11, ntp: 12,
  audit: 13, alert: 14, clock: 15, local0: 16, local1: 17, local2: 18, local3: 19, local4: 20, local5: 21, local6: 22, local7: 23,
} as const;
export type SyslogFacility = keyof typeof SYSLOG_FACILITIES;

export interface SyslogFormat {
  facility: number;
  /** HOSTNAME, APP-NAME: printable US-ASCII (RFC 5424 §6.2.4, §6.2.5). */
  hostname: string;
  appName: string;
  /** SD-ID of the entry's structured data, `name@private-enterprise-number`. */
  sdId: string;
  /** The longest message sent (bytes, framing excluded); a longer MSG is cut and marked truncated. */
  maxBytes: number;
}

const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/** A header field: printable US-ASCII only (33-126), at most `max` characters, "-" when empty. */
function printable(s: string, max: number): string {
  const clean = s.replace(/[^\x21-\x7e]/g, '_').slice(0, max);
  return clean === '' ? '-' : clean;
}

/** RFC 5424 §6.3.3: inside a PARAM-VALUE, '"', '\' and ']' are escaped with a backslash. */
export function escapeSdValue(value: string): string {
  // Control characters (an LF would end a message early under LF framing) become U+FFFD; MSG keeps the exact text.
  let clean = '';
  for (const ch of value) clean += ch < ' ' || ch === '\x7f' ? '\ufffd' : ch;
  return clean.replace(/["\\\]]/g, (c) => `\\${c}`);
}

/**
 * One audit entry as one RFC 5424 message:
 * `<PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID [sd-id seq=… hash=… prevHash=… actor=… outcome=… code=…] BOM canonical-JSON`.
 * PRI is facility × 8 + the severity policy/syslog-severity.ts gives the entry; TIMESTAMP is the
 * entry's own (when it was written to the chain), MSGID its type. MSG is the entry exactly as
 * hashed and stored, so a SIEM can recompute the hash from it.
 */
export function syslogMessage(e: AuditEntry, f: SyslogFormat): Buffer {
  const pri = f.facility * 8 + syslogSeverity(e);
  const head = `<${pri}>1 ${e.ts} ${printable(f.hostname, 255)} ${printable(f.appName, 48)} - ${printable(e.type, 32)} `;
  const params: Array<[string, string]> = [
    ['seq', String(e.seq)], ['hash', e.hash], ['prevHash', e.prevHash], ['actor', e.actor], ['outcome', e.outcome],
    ...(e.code !== null ? [['code', e.code] as [string, string]] : []),
  ];
  const sd = (extra: Array<[string, string]>): string => `[${f.sdId}${[...params, ...extra].map(([k, v]) => ` ${k}="${escapeSdValue(v)}"`).join('')}]`;
  const body = Buffer.from(canonicalJson(e), 'utf8');
  const whole = Buffer.from(`${head}${sd([])} `, 'utf8');
  if (whole.length + BOM.length + body.length <= f.maxBytes) return Buffer.concat([whole, BOM, body]);
  // Too long for the receiver: the structured data (seq, hash) stays whole, the JSON is cut on a character boundary.
  const cutHead = Buffer.from(`${head}${sd([['truncated', 'true']])} `, 'utf8');
  const room = Math.max(0, f.maxBytes - cutHead.length - BOM.length);
  return Buffer.concat([cutHead, BOM, body.subarray(0, utf8Boundary(body, room))]);
}

/** The largest length ≤ n that does not split a UTF-8 sequence. */
function utf8Boundary(b: Buffer, n: number): number {
  if (n >= b.length) return b.length;
  let i = n;
  while (i > 0 && ((b[i] as number) & 0xc0) === 0x80) i -= 1;
  return i;
}

export type SyslogFraming = 'octet-counted' | 'lf' | 'datagram';

/** RFC 5425/6587 octet counting (`LEN SP MSG`), LF-terminated (non-transparent framing), or a datagram as is (RFC 5426). */
export function frame(msg: Buffer, framing: SyslogFraming): Buffer {
  switch (framing) {
    case 'octet-counted':
      return Buffer.concat([Buffer.from(`${msg.length} `, 'ascii'), msg]);
    case 'lf':
      // The JSON escapes control characters and escapeSdValue replaces them, so no raw LF can end a message early.
      return Buffer.concat([msg, Buffer.from('\n', 'ascii')]);
    case 'datagram':
      return msg;
  }
}
