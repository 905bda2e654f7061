import { currentAuditContext, webChannel } from '../../gateway/audit/audit-context.js';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { describeCode, type ErrorCode } from '../../policy/error-codes.js';
import { RateLimit } from '../../gateway/limits/rate-limit.js';
import type { Runtime } from '../../gateway/runtime.js';
import type { UserRecord, WebSessionVia } from '../../gateway/store/store.js';
import { ApiError, browserSession, route, type Principal } from './api-route.js';
import { bearerToken, createBearerAuth } from './bearer-auth.js';
import { currentWebSession, type WebSocketSessions } from './web-session-keeper.js';

export const SESSION_COOKIE = 'pc_session';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

const tokenId = (token: string): string => createHash('sha256').update(token).digest('hex');

export function readCookie(req: FastifyRequest, name: string): string | null {
  const header = req.headers.cookie;
  if (!header) return null;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return null;
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export const meSchema = z.object({
  user: z.object({ name: z.string(), roles: z.array(z.string()), org: z.string().nullable(), locale: z.string().nullable() }),
  csrfToken: z.string(),
  idleTimeoutSeconds: z.number(),
  expiresAt: z.string(),
}).meta({ id: 'Me' });

const userView = (u: UserRecord) => ({ name: u.name, roles: u.roles, org: u.org, locale: u.locale });

/**
 * A signed-in browser: an opaque cookie, and the CSRF token this session's state changes must
 * carry. `via` says how the person signed in (password + TOTP, or single sign-on).
 */
export async function startWebSession(rt: Runtime, user: UserRecord, req: FastifyRequest, reply: FastifyReply, via: WebSessionVia): Promise<z.input<typeof meSchema>> {
  const { store, config, clock } = rt;
  const now = clock();
  const token = randomBytes(32).toString('base64url');
  const csrf = randomBytes(32).toString('base64url');
  const expiresAt = Math.min(now + config.web.session_max_age, now + config.web.session_idle_timeout);
  await store.createWebSession({ id: tokenId(token), user: user.name, csrf, createdAt: now, lastSeenAt: now, expiresAt, address: req.ip, via });
  reply.header('set-cookie', `${SESSION_COOKIE}=${token}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=${Math.floor(config.web.session_max_age / 1000)}`);
  return { user: userView(user), csrfToken: csrf, idleTimeoutSeconds: config.web.session_idle_timeout / 1000, expiresAt: new Date(expiresAt).toISOString() };
}

/** What sign-out needs from single sign-on: where the browser ends the IdP's session too (null: nowhere). */
export interface SignOutElsewhere {
  endSessionUrl(): Promise<string | null>;
}

/**
 * Sign-in for the API and console: password + TOTP (the same Authenticator as SSH: same lockout,
 * same replay refusal, same audit), then an opaque session cookie — HttpOnly, Secure,
 * SameSite=Strict — whose SHA-256 is the store key (a stolen database holds no usable cookie).
 * Every state-changing request must also carry the session's CSRF token in X-CSRF-Token.
 */
export function registerAuth(app: FastifyInstance, rt: Runtime, sockets: WebSocketSessions, sso: SignOutElsewhere | null = null): void {
  const { store, config, clock } = rt;
  const perAddress = new RateLimit(config.web.login_rate_per_minute, 60_000);

  const bearer = createBearerAuth(rt);
  app.decorateRequest('principal', null);
  app.addHook('preHandler', async (req) => {
    // A bearer request is the token's alone (the cookie, if any, is ignored) and needs no CSRF
    // token: a page on another site cannot set the Authorization header (no CORS is offered).
    const token = bearerToken(req);
    const door = currentAuditContext();
    if (token !== null) {
      // Everything this request does is the token's (its use and its refusals too).
      if (door) door.channel = 'token';
      req.principal = await bearer(req, token);
      return;
    }
    req.principal = await sessionOf(req);
    if (door) door.channel = webChannel(req.principal?.session ?? null);
    const access = req.routeOptions.config.access;
    if (access && access !== 'public' && req.principal && !SAFE_METHODS.has(req.method)) {
      const sent = req.headers['x-csrf-token'];
      if (typeof sent !== 'string' || !sameSecret(sent, browserSession(req.principal).csrf)) throw new ApiError('CSRF_INVALID');
    }
  });

  async function sessionOf(req: FastifyRequest): Promise<Principal | null> {
    const token = readCookie(req, SESSION_COOKIE);
    if (!token || !/^[A-Za-z0-9_-]{43}$/.test(token)) return null;
    return currentWebSession(rt, tokenId(token));
  }

  const startSession = (user: UserRecord, req: FastifyRequest, reply: FastifyReply) => startWebSession(rt, user, req, reply, 'password');
  const limited = async (who: string, req: FastifyRequest): Promise<void> => {
    if (!perAddress.take(req.ip, clock())) {
      await rt.audit.recordEventually('login.refused', { actor: who, outcome: 'denied', code: 'RATE_LIMITED', data: { user: who, source: `web ${req.ip}` } });
      throw new ApiError('RATE_LIMITED');
    }
  };
  const refusal = (r: { code: ErrorCode; message: string }): ApiError => new ApiError(r.code, r.message === describeCode(r.code) ? null : r.message);

  const enrolmentSchema = z.object({ enrolment: z.object({ token: z.string(), otpauthUri: z.string(), secret: z.string() }) }).meta({ id: 'Enrolment' });

  route(app, {
    method: 'POST', url: '/api/auth/login', access: 'public', tags: ['auth'],
    summary: 'Sign in with password and TOTP code: sets the session cookie and returns the CSRF token. An account without TOTP yet gets an enrolment instead (after a right password)',
    body: z.object({ username: z.string().min(1).max(64), password: z.string().min(1).max(1024), totp: z.string().max(16).default('') }),
    response: z.union([meSchema, enrolmentSchema]),
  }, async ({ body, req, reply }) => {
    await limited(body.username, req);
    const source = `web ${req.ip}`;
    const early = await rt.authenticator.precheck(body.username, source);
    const result = early ?? await rt.authenticator.signIn({ username: body.username, password: body.password, totp: body.totp, source, method: 'password+totp', allowEnrolment: true });
    if (!result.ok) {
      if (result.enrolment) return { enrolment: result.enrolment };
      throw refusal(result);
    }
    return startSession(result.user, req, reply);
  });

  route(app, {
    method: 'POST', url: '/api/auth/enrol', access: 'public', tags: ['auth'],
    summary: 'Finish a TOTP enrolment with the first code from the authenticator app; signs in',
    body: z.object({ token: z.string().min(10).max(200), totp: z.string().min(1).max(16) }),
    response: meSchema,
  }, async ({ body, req, reply }) => {
    await limited(body.token.split('.')[0] ?? 'unknown', req);
    const result = await rt.authenticator.finishEnrolment(body.token, body.totp, `web ${req.ip}`);
    if (!result.ok) throw refusal(result);
    return startSession(result.user, req, reply);
  });

  route(app, {
    method: 'PUT', url: '/api/auth/me/locale', access: 'signed-in', tags: ['auth'], summary: 'Remember the console language of the signed-in user',
    body: z.object({ locale: z.enum(['en', 'zh-CN']) }), response: meSchema,
  }, async ({ body, principal }) => {
    const session = browserSession(principal);
    await store.updateUser(principal.user.name, { locale: body.locale });
    return {
      user: { ...userView(principal.user), locale: body.locale }, csrfToken: session.csrf, idleTimeoutSeconds: config.web.session_idle_timeout / 1000,
      expiresAt: new Date(session.expiresAt).toISOString(),
    };
  });

  route(app, {
    method: 'POST', url: '/api/auth/logout', access: 'signed-in', tags: ['auth'],
    summary: "Sign out: the session cookie stops working at once. A session made by single sign-on also gets the IdP's end-session URL (RP-initiated logout), where the IdP has one",
    response: z.object({ signedOut: z.boolean(), endSessionUrl: z.string().nullable() }),
  }, async ({ principal, reply }) => {
    const session = browserSession(principal);
    await store.deleteWebSession(session.id);
    sockets.ended(session.id, 'signed_out');
    const bySso = session.via === 'sso';
    await rt.audit.record('logout', { actor: principal.user.name, outcome: 'info', data: { via: bySso ? 'sso' : 'web' } });
    reply.header('set-cookie', `${SESSION_COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0`);
    return { signedOut: true, endSessionUrl: bySso && sso ? await sso.endSessionUrl() : null };
  });

  route(app, {
    method: 'GET', url: '/api/auth/me', access: 'signed-in', tags: ['auth'], summary: 'Who is signed in, and the CSRF token of this session',
    response: meSchema,
  }, async ({ principal }) => ({
    user: userView(principal.user), csrfToken: browserSession(principal).csrf, idleTimeoutSeconds: config.web.session_idle_timeout / 1000,
    expiresAt: new Date(browserSession(principal).expiresAt).toISOString(),
  }));
}
