import type { FastifyRequest } from 'fastify';
import type { ErrorCode } from '../../policy/error-codes.js';
import { recordTokenRefusal, tokenMay, TokenUseLog, verifyApiToken } from '../../gateway/identity/api-tokens.js';
import { RateLimit } from '../../gateway/limits/rate-limit.js';
import type { Runtime } from '../../gateway/runtime.js';
import { ApiError, DECLARED_ROUTES, type Principal } from './api-route.js';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The token of `Authorization: Bearer …`, or null when the request carries none. */
export function bearerToken(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  // A malformed Authorization header is a bearer attempt all the same: refused, never ignored in favour of a cookie.
  return m ? (m[1] as string) : h;
}

/**
 * Routes a token never reaches: the WebSockets (terminal, desktop, watch) and the event stream,
 * which outlive the per-request check and belong to a person at a screen, and /api/auth/*, which
 * is the browser's sign-in session (its CSRF token, signing out).
 */
function browserOnly(method: string, url: string): boolean {
  if (url.startsWith('/api/auth/')) return true;
  const d = DECLARED_ROUTES.find((r) => r.method === method && r.url === url);
  return d?.produces === 'websocket' || d?.produces === 'text/event-stream';
}

/**
 * Bearer authentication of the JSON API (issue 13, item 5). Each request: the token is verified
 * (TOKEN_INVALID, TOKEN_EXPIRED, TOKEN_REVOKED, or its owner's ACCOUNT_DISABLED/EXPIRED/LOCKED),
 * the route must take tokens (TOKEN_NOT_ACCEPTED), the token's rate must hold
 * (TOKEN_RATE_LIMITED), and the route's action must be in the token's scope and allowed to its
 * owner's roles today (TOKEN_SCOPE, FORBIDDEN, SERVICE_ACCOUNT_NOT_A_PERSON). Every refusal is
 * audited with its code; every use that passes is audited by TokenUseLog (each write, reads once
 * a minute). Refused attempts count against the address's sign-in rate, so guessing is as slow
 * as guessing passwords.
 */
export function createBearerAuth(rt: Runtime): (req: FastifyRequest, text: string) => Promise<Principal | null> {
  // Built at the first bearer request, from the configuration as it then stands.
  let perToken: RateLimit | null = null;
  const badPerAddress = new RateLimit(rt.config.web.login_rate_per_minute, 60_000);
  /** A token over its rate is audited once a minute, not once per refused request. */
  const rateAudited = new RateLimit(1, 60_000);
  const uses = new TokenUseLog(rt);

  return async (req, text) => {
    const access = req.routeOptions.config.access;
    // Not an API route (health, static files): the token is not looked at.
    if (access === undefined) return null;
    const method = req.method;
    const url = req.routeOptions.url ?? req.url;
    const request = `${method} ${url}`;
    const where = { source: `web ${req.ip}`, channel: 'token', request };
    const now = rt.clock();
    const refuse = async (r: { code: ErrorCode; detail: string; tokenId: string | null; owner: string | null }): Promise<never> => {
      await recordTokenRefusal(rt, r, where);
      throw new ApiError(r.code, r.detail);
    };

    const v = await verifyApiToken(rt, text, now);
    if (!v.ok) {
      if (!badPerAddress.take(req.ip, now)) {
        await recordTokenRefusal(rt, { code: 'RATE_LIMITED', detail: 'too many refused tokens from this address', tokenId: v.tokenId, owner: v.owner }, where);
        throw new ApiError('RATE_LIMITED');
      }
      return refuse(v);
    }
    const who = { tokenId: v.token.id, owner: v.user.name };
    if (browserOnly(method, url)) return refuse({ code: 'TOKEN_NOT_ACCEPTED', detail: `${request} takes a console sign-in, not an API token`, ...who });
    perToken ??= new RateLimit(rt.config.web.token_requests_per_minute, 60_000);
    if (!perToken.take(v.token.id, now)) {
      if (rateAudited.take(v.token.id, now)) await recordTokenRefusal(rt, { code: 'TOKEN_RATE_LIMITED', detail: `over ${rt.config.web.token_requests_per_minute} requests a minute`, ...who }, where);
      throw new ApiError('TOKEN_RATE_LIMITED');
    }
    const write = !SAFE_METHODS.has(method);
    if (access === 'signed-in') {
      // Routes open to anyone signed in show only the caller's own records unless the scope
      // widens them (permits()); those that change something (cancel) are a person's, at the console.
      if (write) return refuse({ code: 'TOKEN_NOT_ACCEPTED', detail: `${request} changes something with no action of its own to scope a token to; use the console`, ...who });
    } else if (access !== 'public') {
      const d = tokenMay(v, access);
      if (!d.allow) return refuse({ code: d.code, detail: d.detail, ...who });
    }
    await uses.used(v, { write, request, source: where.source, channel: 'token' });
    return { user: v.user, session: null, token: v.token };
  };
}
