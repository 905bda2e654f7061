import type { Ref } from 'preact';
import { useEffect, useId, useRef, useState } from 'preact/hooks';
import { ApiFailure } from '../api/api-client.js';
import type { Enrolment, SsoState } from '../api/api-types.js';
import { Field } from '../components/form-field.js';
import { QrCode } from '../components/qr-code.js';
import { ErrorNote, Notice } from '../components/status-views.js';
import { useI18n } from '../i18n/i18n.js';
import { LanguageMenu } from '../i18n/language-menu.js';
import { cancelSso, confirmEnrolment, signIn, ssoSecondFactor, ssoState, type SignedOutReason } from './auth-state.js';

/**
 * A TOTP code's input, the same for sign-in, single sign-on's second factor and enrolment: digits
 * (spaces allowed, as apps group them), the browser's one-time-code autofill, its hint read out.
 */
function TotpInput({ id, name, value, onValue, required = false, inputRef }: {
  id: string; name: string; value: string; onValue: (v: string) => void; required?: boolean; inputRef?: Ref<HTMLInputElement>;
}) {
  return (
    <input ref={inputRef} id={id} name={name} inputMode="numeric" autocomplete="one-time-code" required={required} pattern="[0-9 ]{6,8}" maxLength={9}
      aria-describedby={`${id}-hint`} value={value} onInput={(e) => onValue(e.currentTarget.value)} />
  );
}

/** The secret in groups of four, as authenticator apps show it when typed by hand. */
const grouped = (secret: string): string => secret.replace(/(.{4})(?=.)/g, '$1 ');

/**
 * A refusal the single sign-on callback sent the browser back with (/?sso_error=CODE), shown in
 * the reader's language; the address is cleaned so a reload does not show it again.
 */
function takeSsoError(): ApiFailure | null {
  const code = new URLSearchParams(window.location.search).get('sso_error');
  if (!code || !/^[A-Z_]{1,64}$/.test(code)) return null;
  window.history.replaceState(null, '', `/${window.location.hash}`);
  return new ApiFailure(0, code, code);
}

export function SignInPage({ reason }: { reason: SignedOutReason }) {
  const { t } = useI18n();
  const [enrolment, setEnrolment] = useState<{ offer: Enrolment['enrolment']; viaSso: boolean } | null>(null);
  const [sso, setSso] = useState<SsoState | null>(null);
  const [ssoError] = useState<ApiFailure | null>(takeSsoError);
  useEffect(() => {
    void ssoState().then(setSso);
  }, []);
  const pending = sso?.pending ?? null;
  return (
    <div class="auth-page">
      <header class="auth-header">
        <span class="brand">
          <span class="brand-mark" aria-hidden="true" />
          {t('app.name')}
        </span>
        <LanguageMenu />
      </header>
      <main id="main" class="auth-main">
        {enrolment ? (
          <EnrolForm enrolment={enrolment.offer} viaSso={enrolment.viaSso} onCancel={() => setEnrolment(null)} />
        ) : pending && sso ? (
          <SsoTotpForm user={pending.user} onEnrol={(offer) => setEnrolment({ offer, viaSso: true })}
            onCancel={() => void cancelSso().then(() => setSso({ ...sso, pending: null }))} />
        ) : (
          <SignInForm reason={reason} sso={sso} ssoError={ssoError} onEnrol={(offer) => setEnrolment({ offer, viaSso: false })} />
        )}
      </main>
      <footer class="auth-footer">{t('app.tagline')}</footer>
    </div>
  );
}

function SignInForm({ reason, sso, ssoError, onEnrol }: {
  reason: SignedOutReason; sso: SsoState | null; ssoError: ApiFailure | null; onEnrol: (e: Enrolment['enrolment']) => void;
}) {
  const { t } = useI18n();
  const ids = { user: useId(), password: useId(), totp: useId() };
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [totp, setTotp] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const first = useRef<HTMLInputElement>(null);

  useEffect(() => first.current?.focus(), []);

  async function submit(e: Event): Promise<void> {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const r = await signIn(username.trim(), password, totp);
      if (r.kind === 'enrol') onEnrol(r.enrolment);
    } catch (err) {
      setError(err);
      // A failed code is spent either way; the next try needs the next one.
      setTotp('');
    } finally {
      setBusy(false);
    }
  }

  return (
    <section class="card auth-card" aria-labelledby="sign-in-title">
      <h1 id="sign-in-title">{t('signIn.title')}</h1>
      {reason === 'idle' && <Notice kind="warning">{t('signIn.signedOutIdle')}</Notice>}
      {reason === 'signed-out' && <Notice kind="success">{t('signIn.signedOut')}</Notice>}
      {error === null && ssoError !== null && <ErrorNote error={ssoError} />}
      {error !== null && <ErrorNote error={error} />}
      {sso?.enabled && (
        <div class="sso-choice">
          <a class="btn btn-primary btn-block" href="/api/auth/sso/start">{t('signIn.sso', { name: sso.displayName ?? '' })}</a>
          <p class="hint">{t('signIn.ssoHint')}</p>
          <p class="sso-or" aria-hidden="true">{t('signIn.ssoOr')}</p>
        </div>
      )}
      <form onSubmit={(e) => void submit(e)} class="form" noValidate={false}>
        <Field id={ids.user} label={t('signIn.username')} required>
          <input ref={first} id={ids.user} name="username" autocomplete="username" required value={username}
            onInput={(e) => setUsername(e.currentTarget.value)} />
        </Field>
        <Field id={ids.password} label={t('signIn.password')} required>
          <input id={ids.password} name="password" type="password" autocomplete="current-password" required value={password}
            onInput={(e) => setPassword(e.currentTarget.value)} />
        </Field>
        <Field id={ids.totp} label={t('signIn.totp')} hint={t('signIn.totpHint')}>
          <TotpInput id={ids.totp} name="totp" value={totp} onValue={setTotp} />
        </Field>
        <button type="submit" class="btn btn-primary btn-block" disabled={busy}>
          {busy ? t('signIn.busy') : t('signIn.submit')}
        </button>
      </form>
    </section>
  );
}

/** A single sign-on the IdP did not back with a second factor: the Portcullis TOTP code finishes it. */
function SsoTotpForm({ user, onEnrol, onCancel }: { user: string; onEnrol: (e: Enrolment['enrolment']) => void; onCancel: () => void }) {
  const { t } = useI18n();
  const codeId = useId();
  const [code, setCode] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const first = useRef<HTMLInputElement>(null);
  useEffect(() => first.current?.focus(), []);

  async function submit(e: Event): Promise<void> {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const r = await ssoSecondFactor(code);
      if (r.kind === 'enrol') onEnrol(r.enrolment);
    } catch (err) {
      setError(err);
      setCode('');
    } finally {
      setBusy(false);
    }
  }

  return (
    <section class="card auth-card" aria-labelledby="sso-totp-title">
      <h1 id="sso-totp-title">{t('ssoTotp.title')}</h1>
      <p>{t('ssoTotp.intro', { user })}</p>
      {error !== null && <ErrorNote error={error} />}
      <form class="form" onSubmit={(e) => void submit(e)}>
        <Field id={codeId} label={t('signIn.totp')} hint={t('signIn.totpHint')}>
          <TotpInput inputRef={first} id={codeId} name="totp" value={code} onValue={setCode} />
        </Field>
        <div class="actions">
          <button type="submit" class="btn btn-primary" disabled={busy}>
            {busy ? t('signIn.busy') : t('ssoTotp.submit')}
          </button>
          <button type="button" class="btn" onClick={onCancel}>
            {t('common.cancel')}
          </button>
        </div>
      </form>
    </section>
  );
}

function EnrolForm({ enrolment, viaSso, onCancel }: { enrolment: Enrolment['enrolment']; viaSso: boolean; onCancel: () => void }) {
  const { t } = useI18n();
  const codeId = useId();
  const [code, setCode] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [copied, setCopied] = useState(false);

  async function submit(e: Event): Promise<void> {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await confirmEnrolment(enrolment.token, code, viaSso);
    } catch (err) {
      setError(err);
      setCode('');
    } finally {
      setBusy(false);
    }
  }

  async function copySecret(): Promise<void> {
    try {
      await navigator.clipboard.writeText(enrolment.secret);
      setCopied(true);
    } catch {
      setCopied(false);
    }
  }

  return (
    <section class="card auth-card auth-card-wide" aria-labelledby="enrol-title">
      <h1 id="enrol-title">{t('enrol.title')}</h1>
      <p>{t('enrol.intro')}</p>
      <div class="enrol-grid">
        <QrCode text={enrolment.otpauthUri} label={t('enrol.qrLabel')} />
        <div>
          <p class="label-text">{t('enrol.secretLabel')}</p>
          <p class="secret" data-secret={enrolment.secret}>
            <code>{grouped(enrolment.secret)}</code>
          </p>
          <button type="button" class="btn btn-small" onClick={() => void copySecret()}>
            {copied ? t('terminal.copied') : t('enrol.copySecret')}
          </button>
          <p class="hint">{t('enrol.secretHint')}</p>
        </div>
      </div>
      {error !== null && <ErrorNote error={error} />}
      <form class="form" onSubmit={(e) => void submit(e)}>
        <Field id={codeId} label={t('enrol.code')} hint={t('enrol.codeHint')} required>
          <TotpInput id={codeId} name="enrol-code" value={code} onValue={setCode} required />
        </Field>
        <div class="actions">
          <button type="submit" class="btn btn-primary" disabled={busy}>
            {busy ? t('signIn.busy') : t('enrol.submit')}
          </button>
          <button type="button" class="btn" onClick={onCancel}>
            {t('common.cancel')}
          </button>
        </div>
      </form>
    </section>
  );
}
