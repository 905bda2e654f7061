import { ApiFailure, api, call, setCsrfToken, whenSessionLost } from '../api/api-client.js';
import type { Enrolment, Locale, Me, SsoState } from '../api/api-types.js';
import { isLocale, localeStore, setLocale } from '../i18n/i18n.js';
import { createStore } from '../state/store.js';

export type SignedOutReason = 'idle' | 'signed-out' | null;

export interface AuthState {
  /** False until GET /api/auth/me has answered once. */
  checked: boolean;
  me: Me | null;
  signedOutReason: SignedOutReason;
}

export const authStore = createStore<AuthState>({ checked: false, me: null, signedOutReason: null });

function signedIn(me: Me): void {
  setCsrfToken(me.csrfToken);
  authStore.set({ checked: true, me, signedOutReason: null });
  // The account's language wins over this browser's; an account without one takes this browser's.
  if (isLocale(me.user.locale)) {
    if (me.user.locale !== localeStore.get()) setLocale(me.user.locale);
  } else {
    void rememberLocale(localeStore.get());
  }
}

function signedOut(reason: SignedOutReason): void {
  setCsrfToken(null);
  authStore.set({ checked: true, me: null, signedOutReason: reason });
}

// Any API call that finds the session gone: the idle timeout (or a lock, or a sign-out elsewhere).
whenSessionLost(() => {
  if (authStore.get().me) signedOut('idle');
});

/** On load: a reload keeps the session (the cookie), but the CSRF token lives in memory, so ask for it again. */
export async function restoreSession(): Promise<void> {
  try {
    signedIn(await call<Me>('GET', '/api/auth/me', { signInCall: true }));
  } catch {
    signedOut(null);
  }
}

export type SignInResult = { kind: 'signed-in' } | { kind: 'enrol'; enrolment: Enrolment['enrolment'] };

export async function signIn(username: string, password: string, totp: string): Promise<SignInResult> {
  const body = { username, password, ...(totp.trim() ? { totp: totp.trim() } : {}) };
  const r = await call<Me | Enrolment>('POST', '/api/auth/login', { body, signInCall: true });
  if ('enrolment' in r) return { kind: 'enrol', enrolment: r.enrolment };
  signedIn(r);
  return { kind: 'signed-in' };
}

/** An enrolment begun by a single sign-on is finished on its own route, which knows the IdP vouched for the person. */
export async function confirmEnrolment(token: string, totp: string, viaSso = false): Promise<void> {
  signedIn(await call<Me>('POST', viaSso ? '/api/auth/sso/enrol' : '/api/auth/enrol', { body: { token, totp: totp.trim() }, signInCall: true }));
}

/** Is single sign-on offered, and does a sign-in through it wait for this browser's TOTP code? */
export async function ssoState(): Promise<SsoState> {
  try {
    return await call<SsoState>('GET', '/api/auth/sso', { signInCall: true });
  } catch {
    return { enabled: false, displayName: null, pending: null };
  }
}

/** The TOTP code a single sign-on still needs (the IdP asserted no second factor). */
export async function ssoSecondFactor(totp: string): Promise<SignInResult> {
  const r = await call<Me | Enrolment>('POST', '/api/auth/sso/totp', { body: { totp: totp.trim() }, signInCall: true });
  if ('enrolment' in r) return { kind: 'enrol', enrolment: r.enrolment };
  signedIn(r);
  return { kind: 'signed-in' };
}

export async function cancelSso(): Promise<void> {
  try {
    await call('POST', '/api/auth/sso/cancel', { body: {}, signInCall: true });
  } catch {
    // Nothing to forget: the waiting sign-in lapses by itself.
  }
}

export async function signOut(): Promise<void> {
  let endSessionUrl: string | null = null;
  try {
    ({ endSessionUrl } = await api.post<{ signedOut: boolean; endSessionUrl: string | null }>('/api/auth/logout'));
  } catch (err) {
    // Already signed out on the server (401): the outcome the person asked for.
    if (!(err instanceof ApiFailure)) throw err;
  }
  signedOut('signed-out');
  // Signed in through the IdP: its session ends too (RP-initiated logout), and it sends the browser back here.
  if (endSessionUrl) window.location.assign(endSessionUrl);
}

/** Signed out for inactivity, on the server too, so the cookie stops working even if the page stays open. */
export async function endForInactivity(): Promise<void> {
  if (!authStore.get().me) return;
  try {
    await api.post('/api/auth/logout');
  } catch {
    // Already gone on the server: the idle timeout got there first.
  }
  signedOut('idle');
}

/** The account remembers its language; a failure to save it leaves the choice in this browser only. */
export async function rememberLocale(locale: Locale): Promise<void> {
  if (!authStore.get().me) return;
  try {
    const me = await api.put<Me>('/api/auth/me/locale', { locale });
    setCsrfToken(me.csrfToken);
    const current = authStore.get();
    if (current.me) authStore.set({ ...current, me: { ...current.me, user: me.user } });
  } catch {
    // Not fatal: the page is already in the chosen language.
  }
}

export function chooseLocale(locale: Locale): void {
  setLocale(locale);
  void rememberLocale(locale);
}
