import { ApiFailure } from '../api/api-client.js';
import type { I18n } from './i18n.js';
import { en } from './messages-en.js';

export interface FailureText {
  message: string;
  /** What the server added (a field name, a time), with times shown in the reader's zone. */
  detail: string | null;
}

const ISO_TIME = /\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)/g;

/** Translates a failure by its catalogue code; the server's own sentence only when the code is new to this interface. */
export function failureText(err: unknown, i18n: I18n): FailureText {
  // Not an answer from the gateway: a chunk or request that never arrived.
  if (!(err instanceof ApiFailure)) return { message: i18n.m.errors.NETWORK, detail: null };
  const errors = i18n.m.errors as Record<string, string>;
  const message = errors[err.code] ?? err.serverMessage;
  let detail = err.detail;
  if (err.code === 'ACCOUNT_LOCKED') {
    const until = detail?.match(ISO_TIME)?.[0];
    return { message, detail: until ? i18n.t('signIn.lockedUntil', { time: i18n.time(until) }) : null };
  }
  if (detail) {
    // Sign-in refusals repeat the catalogue sentence before the detail: keep only what it adds.
    if (detail.startsWith(err.serverMessage)) detail = detail.slice(err.serverMessage.length).trim().replace(/^\((.*)\)$/, '$1');
    detail = detail.replace(ISO_TIME, (t) => i18n.time(t));
  }
  return { message, detail: detail || null };
}

/** A session's end as the terminal banner says it: the catalogue's sentence for the code, else the gateway's notice. */
export function endText(code: string | null | undefined, reason: string | null | undefined, serverMessage: string | null | undefined, i18n: I18n): string {
  const errors = i18n.m.errors as Record<string, string>;
  const reasons = i18n.m.names.endReason as Record<string, string>;
  // Signed out or lapsed: "sign in first" is the code, the reason says what happened.
  if (code === 'UNAUTHENTICATED' && reason && reasons[reason]) return reasons[reason];
  if (code && errors[code]) return errors[code];
  if (reason && reasons[reason]) return reasons[reason];
  return serverMessage?.trim() || i18n.t('terminal.endedPlain');
}

/**
 * What a gateway notice adds to its code's sentence (the kill reason, the grant's id), without
 * repeating the English sentence the banner already shows translated.
 */
export function noticeDetail(message: string | null | undefined, code: string | null | undefined): string | null {
  if (!message?.trim()) return null;
  const english = code ? (en.errors as Record<string, string>)[code] : undefined;
  if (english && message.includes(english)) {
    const rest = message.slice(message.indexOf(english) + english.length);
    return /^\s*\((.*)\)/.exec(rest)?.[1]?.trim() || null;
  }
  return message.replace(/\s*\[[A-Z_]+\]\s*$/, '').trim() || null;
}
