import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { describeCode, type ErrorCode } from '../../policy/error-codes.js';
import { SSO_CALLBACK_PATH } from '../../gateway/config/schema.js';
import { SSO_FLOW_TTL_MS, SsoError, type OidcClient, type SsoFlow } from '../../gateway/identity/oidc-client.js';
import { ssoAccountFor } from '../../gateway/identity/sso-accounts.js';
import { RateLimit } from '../../gateway/limits/rate-limit.js';
import type { Runtime } from '../../gateway/runtime.js';
import { ApiError, declareRoute, route } from './api-route.js';
import { meSchema, readCookie, startWebSession } from './auth-api.js';
import { bearerToken } from './bearer-auth.js';

/** A sign-in is a person at a browser: an API token never starts or finishes one. */
function noToken(req: FastifyRequest): void {
  if (bearerToken(req) !== null) throw new ApiError('TOKEN_NOT_ACCEPTED');
}

const FLOW_COOKIE = 'pc_sso_flow';
const PENDING_COOKIE = 'pc_sso_pending';
const COOKIE_PATH = '/api/auth/sso';

/** A person the IdP vouched for whose sign-in did not assert multi-factor: they owe their Portcullis TOTP code. */
interface PendingSecondFactor {
  user: string;
  issuer: string;
  subject: string;
  expiresAt: number;
}

const flowSchema = z.object({ state: z.string().min(1), nonce: z.string().min(1), verifier: z.string().min(43), expiresAt: z.number() });
const pendingSchema = z.object({ user: z.string().min(1), issuer: z.string().min(1), subject: z.string().min(1), expiresAt: z.number() });

/**
 * Single sign-on for staff through the hospital's OpenID provider (R-A.4d), beside the password
 * sign-in of auth-api.ts. The browser goes to /start, which sends it to the IdP with a fresh
 * state, nonce and PKCE challenge (the verifier stays in a sealed cookie); the IdP sends it back
 * to /callback, where openid-client verifies the answer and the ID token, and sso-accounts.ts
 * decides the account. A sign-in whose IdP did not assert multi-factor continues at /totp with
 * the Portcullis TOTP code (or its first enrolment at /enrol), exactly as a password sign-in
 * would. A session made here is marked `via: 'sso'`.
 *
 * The routes exist whether or not [sso.oidc] is configured (unconfigured, they answer
 * SSO_NOT_CONFIGURED), so the API's declarations and its authorization matrix are one.
 */
export function registerSso(app: FastifyInstance, rt: Runtime, client: OidcClient | null): void {
  const { config, clock, vault } = rt;
  const perAddress = new RateLimit(config.web.login_rate_per_minute, 60_000);

  const configured = (): OidcClient => {
    if (!client) throw new ApiError('SSO_NOT_CONFIGURED');
    return client;
  };
  const cookie = (name: string, value: string, sameSite: 'Lax' | 'Strict', maxAgeMs: number): string =>
    `${name}=${value}; Path=${COOKIE_PATH}; HttpOnly; Secure; SameSite=${sameSite}; Max-Age=${Math.floor(maxAgeMs / 1000)}`;
  const sealed = <T>(req: FastifyRequest, name: string, schema: z.ZodType<T>): T | null => {
    const raw = readCookie(req, name);
    if (!raw) return null;
    const text = vault.openSignIn(name, decodeURIComponent(raw));
    if (text === null) return null;
    try {
      const parsed = schema.safeParse(JSON.parse(text));
      return parsed.success ? parsed.data : null;
    } catch {
      return null;
    }
  };
  const seal = (name: string, payload: object): string => encodeURIComponent(vault.sealSignIn(name, JSON.stringify(payload)));
  const source = (req: FastifyRequest): string => `web ${req.ip}`;
  const limited = async (req: FastifyRequest, who: string): Promise<void> => {
    if (!perAddress.take(req.ip, clock())) {
      await rt.audit.recordEventually('login.refused', { actor: who, outcome: 'denied', code: 'RATE_LIMITED', data: { user: who, source: source(req), via: 'sso' } });
      throw new ApiError('RATE_LIMITED');
    }
  };
  /** Back to the console, which shows the refusal in the reader's language. */
  const refusedTo = (reply: FastifyReply, code: ErrorCode): FastifyReply => reply.code(303).header('location', `/?sso_error=${code}`).send();

  route(app, {
    method: 'GET', url: '/api/auth/sso', access: 'public', tags: ['auth'],
    summary: 'Is single sign-on configured (and the name of its button)? And is a sign-in through it waiting for the TOTP code?',
    response: z.object({ enabled: z.boolean(), displayName: z.string().nullable(), pending: z.object({ user: z.string() }).nullable() }),
  }, async ({ req }) => {
    const pending = client ? sealed(req, PENDING_COOKIE, pendingSchema) : null;
    return {
      enabled: client !== null,
      displayName: client?.settings.display_name ?? null,
      pending: pending && pending.expiresAt > clock() ? { user: pending.user } : null,
    };
  });

  declareRoute({
    method: 'GET', url: '/api/auth/sso/start', access: 'public', tags: ['auth'], produces: 'text/plain',
    summary: "Begins a single sign-on: redirects (303) to the identity provider with state, nonce and a PKCE challenge",
  });
  app.get('/api/auth/sso/start', async (req, reply) => {
    noToken(req);
    const c = configured();
    await limited(req, 'unknown');
    try {
      const { url, flow } = await c.begin(clock());
      return reply.code(303).header('set-cookie', cookie(FLOW_COOKIE, seal(FLOW_COOKIE, flow), 'Lax', SSO_FLOW_TTL_MS)).header('location', url.href).send();
    } catch (err) {
      if (!(err instanceof SsoError)) throw err;
      await rt.audit.record('login.failed', { actor: 'unknown', outcome: 'denied', code: err.code, data: { source: source(req), method: 'sso', via: 'sso', issuer: c.settings.issuer, reason: err.detail } });
      return refusedTo(reply, err.code);
    }
  });

  declareRoute({
    method: 'GET', url: SSO_CALLBACK_PATH, access: 'public', tags: ['auth'], produces: 'text/plain',
    summary: "The identity provider's answer (the redirect URL to register there): verified, then signed in, or on to the TOTP step; redirects (303) to the console",
  });
  app.get(SSO_CALLBACK_PATH, async (req, reply) => {
    noToken(req);
    const c = configured();
    await limited(req, 'unknown');
    // The flow is used once, whatever the outcome.
    reply.header('set-cookie', cookie(FLOW_COOKIE, '', 'Lax', 0));
    const base = { source: source(req), method: 'sso', via: 'sso', issuer: c.settings.issuer };
    const flow: SsoFlow | null = sealed(req, FLOW_COOKIE, flowSchema);
    if (!flow) {
      await rt.audit.record('login.failed', { actor: 'unknown', outcome: 'denied', code: 'SSO_FAILED', data: { ...base, reason: 'no sign-in flow of this browser (its cookie is missing, expired or not ours)' } });
      return refusedTo(reply, 'SSO_FAILED');
    }
    // Parameters from the request, origin and path from the configured redirect URL (never from the Host header).
    const callbackUrl = new URL(c.settings.redirect_url);
    callbackUrl.search = new URL(req.url, 'https://callback.invalid').search;
    let claims;
    try {
      claims = await c.finish(callbackUrl, flow, clock());
    } catch (err) {
      if (!(err instanceof SsoError)) throw err;
      await rt.audit.record('login.failed', { actor: 'unknown', outcome: 'denied', code: err.code, data: { ...base, reason: err.detail } });
      return refusedTo(reply, err.code);
    }
    const account = await ssoAccountFor(rt, c.settings, claims, source(req));
    if (!account.ok) return refusedTo(reply, account.code);
    const data = { ...base, user: account.user.name, subject: claims.sub };
    if (account.mfa.asserted) {
      await rt.store.updateUser(account.user.name, { failedLogins: 0 });
      await rt.audit.record('login.ok', { actor: account.user.name, outcome: 'ok', data: { ...data, mfa: account.mfa.by } });
      await startWebSession(rt, account.user, req, reply, 'sso');
      return reply.code(303).header('location', '/').send();
    }
    const pending: PendingSecondFactor = { user: account.user.name, issuer: claims.iss, subject: claims.sub, expiresAt: clock() + SSO_FLOW_TTL_MS };
    await rt.audit.record('login.second_factor_required', {
      actor: account.user.name, outcome: 'info', data: { ...data, reason: 'the identity provider did not assert multi-factor authentication; the Portcullis TOTP code is asked for' },
    });
    return reply.code(303).header('set-cookie', cookie(PENDING_COOKIE, seal(PENDING_COOKIE, pending), 'Strict', SSO_FLOW_TTL_MS)).header('location', '/').send();
  });

  /** The person the IdP vouched for, still linked to the same IdP account; else the step is refused (and audited). */
  const pendingOf = async (req: FastifyRequest): Promise<PendingSecondFactor> => {
    const p = sealed(req, PENDING_COOKIE, pendingSchema);
    const linked = p && p.expiresAt > clock() ? await rt.store.findUserBySso(p.issuer, p.subject) : null;
    if (!p || !linked || linked.name !== p.user) {
      await rt.audit.record('login.failed', {
        actor: p?.user ?? 'unknown', outcome: 'denied', code: 'SSO_FAILED',
        data: { source: source(req), method: 'sso+totp', via: 'sso', reason: 'no single sign-on waiting for a TOTP code in this browser (expired, or not ours)' },
      });
      throw new ApiError('SSO_FAILED', 'Sign in through the identity provider again.');
    }
    return p;
  };
  const clearPending = (reply: FastifyReply): void => {
    reply.header('set-cookie', cookie(PENDING_COOKIE, '', 'Strict', 0));
  };
  const refusal = (r: { code: ErrorCode; message: string }): ApiError => new ApiError(r.code, r.message === describeCode(r.code) ? null : r.message);
  const enrolmentSchema = z.object({ enrolment: z.object({ token: z.string(), otpauthUri: z.string(), secret: z.string() }) });

  route(app, {
    method: 'POST', url: '/api/auth/sso/totp', access: 'public', tags: ['auth'],
    summary: 'Finish a single sign-on whose IdP did not assert multi-factor, with the Portcullis TOTP code (an account without one gets an enrolment)',
    body: z.object({ totp: z.string().max(16).default('') }),
    response: z.union([meSchema, enrolmentSchema]),
  }, async ({ body, req, reply }) => {
    configured();
    await limited(req, 'unknown');
    const p = await pendingOf(req);
    const result = await rt.authenticator.signIn({
      username: p.user, password: null, totp: body.totp, source: source(req), method: 'sso+totp', allowEnrolment: true, context: { via: 'sso', issuer: p.issuer },
    });
    if (!result.ok) {
      if (result.enrolment) return { enrolment: result.enrolment };
      throw refusal(result);
    }
    clearPending(reply);
    return startWebSession(rt, result.user, req, reply, 'sso');
  });

  route(app, {
    method: 'POST', url: '/api/auth/sso/enrol', access: 'public', tags: ['auth'],
    summary: 'Finish the TOTP enrolment begun by a single sign-on, with the first code from the authenticator app; signs in',
    body: z.object({ token: z.string().min(10).max(200), totp: z.string().min(1).max(16) }),
    response: meSchema,
  }, async ({ body, req, reply }) => {
    configured();
    await limited(req, 'unknown');
    const p = await pendingOf(req);
    if (body.token.slice(0, Math.max(0, body.token.lastIndexOf('.'))) !== p.user) throw new ApiError('AUTH_FAILED', 'The enrolment is not this sign-in\'s.');
    const result = await rt.authenticator.finishEnrolment(body.token, body.totp, source(req), { via: 'sso', issuer: p.issuer });
    if (!result.ok) throw refusal(result);
    clearPending(reply);
    return startWebSession(rt, result.user, req, reply, 'sso');
  });

  route(app, {
    method: 'POST', url: '/api/auth/sso/cancel', access: 'public', tags: ['auth'],
    summary: 'Forget a single sign-on that waits for its TOTP code in this browser',
    response: z.object({ cancelled: z.boolean() }),
  }, async ({ req, reply }) => {
    configured();
    const had = readCookie(req, PENDING_COOKIE) !== null;
    if (had) clearPending(reply);
    return { cancelled: had };
  });
}
