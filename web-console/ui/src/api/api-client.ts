import type { ErrorBody } from './api-types.js';

/** A refusal or failure, with the catalogue code the interface translates. */
export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    /** The server's sentence, shown when the interface has no translation for the code. */
    readonly serverMessage: string,
    readonly detail: string | null = null,
    /** The answer as parsed, for refusals that carry data (an import's row problems). */
    readonly body: unknown = null,
  ) {
    super(serverMessage);
  }
}

/** Codes of failures that never reached the gateway or came back unreadable. */
export const NETWORK_FAILURE = 'NETWORK';
export const UNREADABLE_ANSWER = 'UNREADABLE';

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

// Kept in memory only: a token in storage would outlive the session and be readable by any script.
let csrfToken: string | null = null;
let onSessionLost: (() => void) | null = null;

export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

/** Called once when an API call finds the session gone (idle timeout, sign-out elsewhere, lock). */
export function whenSessionLost(handler: () => void): void {
  onSessionLost = handler;
}

export interface CallOptions {
  body?: unknown;
  /** Sign-in calls answer 401 for a wrong code; that is not a lost session. */
  signInCall?: boolean;
  /** Read the answer as text (CSV, asciicast) instead of JSON. */
  text?: boolean;
  signal?: AbortSignal;
}

function isErrorBody(v: unknown): v is ErrorBody {
  if (typeof v !== 'object' || v === null || !('error' in v)) return false;
  const e = (v as { error: unknown }).error;
  return typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'string';
}

export async function call<T>(method: string, path: string, opts: CallOptions = {}): Promise<T> {
  const headers: Record<string, string> = { accept: opts.text ? '*/*' : 'application/json' };
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  if (STATE_CHANGING.has(method) && csrfToken) headers['x-csrf-token'] = csrfToken;
  let res: Response;
  try {
    res = await fetch(path, {
      method, headers, credentials: 'same-origin', cache: 'no-store',
      ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  } catch (err) {
    if (err instanceof DOMException && err.name === 'AbortError') throw err;
    throw new ApiFailure(0, NETWORK_FAILURE, 'The gateway could not be reached.');
  }
  if (res.status === 401 && !opts.signInCall) onSessionLost?.();
  if (!res.ok) {
    let parsed: unknown = null;
    try {
      parsed = await res.json();
    } catch {
      // A proxy's HTML error page: fall through to the generic failure.
    }
    if (isErrorBody(parsed)) throw new ApiFailure(res.status, parsed.error.code, parsed.error.message, parsed.error.detail ?? null, parsed);
    throw new ApiFailure(res.status, UNREADABLE_ANSWER, `HTTP ${res.status}`, null, parsed);
  }
  if (opts.text) return (await res.text()) as T;
  try {
    return (await res.json()) as T;
  } catch {
    throw new ApiFailure(res.status, UNREADABLE_ANSWER, 'The answer could not be read.');
  }
}

export const api = {
  get: <T>(path: string, signal?: AbortSignal) => call<T>('GET', path, signal ? { signal } : {}),
  text: (path: string) => call<string>('GET', path, { text: true }),
  post: <T>(path: string, body: unknown = {}) => call<T>('POST', path, { body }),
  put: <T>(path: string, body: unknown) => call<T>('PUT', path, { body }),
  patch: <T>(path: string, body: unknown) => call<T>('PATCH', path, { body }),
};

/** A query string from the filled-in fields only. */
export function query(params: Record<string, string | number | boolean | null | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}
