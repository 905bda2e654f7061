import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { ERROR_CATALOGUE, type ErrorCode } from '../../policy/error-codes.js';
import { can, type Action } from '../../policy/roles.js';
import { tokenMay } from '../../gateway/identity/api-tokens.js';
import type { ApiTokenRecord, UserRecord, WebSessionRecord } from '../../gateway/store/store.js';

/**
 * One declaration per route (Fastify's "one schema, many uses"): the zod schemas validate the
 * request, shape the response (a field a schema does not name never leaves the server: no secret
 * can leak through a forgotten property), type the handler, and become the OpenAPI document.
 */

export class ApiError extends Error {
  constructor(readonly code: ErrorCode, readonly detail: string | null = null, readonly status: number = ERROR_CATALOGUE[code].status) {
    super(detail ?? ERROR_CATALOGUE[code].message);
  }
}

export const errorSchema = z.object({
  error: z.object({ code: z.string(), message: z.string(), detail: z.string().nullable().optional() }),
}).meta({ id: 'Error' });

export interface Principal {
  user: UserRecord;
  /** The browser session; null for a request authenticated by an API token. */
  session: WebSessionRecord | null;
  /** The API token of a bearer request (Authorization: Bearer pcx_…); null for a browser session. */
  token: ApiTokenRecord | null;
}

/** The browser session of a principal, for what only a signed-in browser has (its CSRF token, signing out). */
export function browserSession(p: Principal): WebSessionRecord {
  if (!p.session) throw new ApiError('TOKEN_NOT_ACCEPTED');
  return p.session;
}

/**
 * May this principal do this action? Its roles, and for a bearer request also its token's scope
 * (and a service account never takes a person's decision). Handlers that widen what they show
 * by role (everyone's requests, the full inventory record) ask this, not the roles alone.
 */
export function permits(p: Principal, action: Action): boolean {
  if (!can(p.user.roles, action).allow) return false;
  return p.token === null || tokenMay({ user: p.user, token: p.token }, action).allow;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyContextConfig {
    /** The permission a route needs (policy/roles.ts), or 'public' / 'signed-in'. */
    access?: Access;
  }
}

export type Access = Action | 'public' | 'signed-in';

type Schema = z.ZodType;
type Out<S> = S extends Schema ? z.output<S> : undefined;

export interface RouteDef<B extends Schema | undefined, Q extends Schema | undefined, P extends Schema | undefined, R extends Schema> {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: string;
  access: Access;
  summary: string;
  tags: string[];
  body?: B;
  query?: Q;
  params?: P;
  response: R;
  /** Status of a successful answer (200 unless said). */
  status?: number;
  /** A media type other than JSON (a CSV download, a recording): the handler's string or stream is sent as is. */
  produces?: 'text/csv' | 'application/x-asciicast' | 'application/octet-stream';
}

export interface RouteContext<B, Q, P> {
  body: B;
  query: Q;
  params: P;
  principal: Principal;
  req: FastifyRequest;
  reply: FastifyReply;
}

/** Every route of the API, as declared: the OpenAPI document and the authorization matrix test read this. */
export const DECLARED_ROUTES: Array<{ method: string; url: string; access: Access; summary: string; tags: string[]; schemas: Record<string, Schema | undefined>; status: number; produces?: string }> = [];

function parseOr400<S extends Schema>(schema: S | undefined, value: unknown, where: string): Out<S> {
  if (!schema) return undefined as Out<S>;
  const r = schema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    const path = issue?.path.length ? `${where}.${issue.path.map(String).join('.')}` : where;
    throw new ApiError('INVALID_INPUT', `${path}: ${issue?.message ?? 'invalid'}`);
  }
  return r.data as Out<S>;
}

/** The principal a route may act as, or the refusal (401 unsigned, 403 without the role). */
export function authorize(access: Access, principal: Principal | null): Principal | null {
  if (access === 'public') return principal;
  if (!principal) throw new ApiError('UNAUTHENTICATED');
  if (access === 'signed-in') return principal;
  const d = principal.token ? tokenMay({ user: principal.user, token: principal.token }, access) : can(principal.user.roles, access);
  if (!d.allow) throw new ApiError(d.code, d.detail);
  return principal;
}

export function route<B extends Schema | undefined, Q extends Schema | undefined, P extends Schema | undefined, R extends Schema>(
  app: FastifyInstance,
  def: RouteDef<B, Q, P, R>,
  handler: (ctx: RouteContext<Out<B>, Out<Q>, Out<P>>) => Promise<z.input<R>>,
): void {
  const status = def.status ?? 200;
  // Every gateway started in one process (tests) declares the same routes: keep one of each.
  if (!DECLARED_ROUTES.some((r) => r.method === def.method && r.url === def.url)) DECLARED_ROUTES.push({
    method: def.method, url: def.url, access: def.access, summary: def.summary, tags: def.tags, status, ...(def.produces ? { produces: def.produces } : {}),
    schemas: { body: def.body, query: def.query, params: def.params, response: def.response },
  });
  app.route({
    method: def.method,
    url: def.url,
    config: { access: def.access },
    handler: async (req, reply) => {
      const principal = authorize(def.access, req.principal);
      const body = parseOr400(def.body, req.body, 'body') as Out<B>;
      const query = parseOr400(def.query, req.query, 'query') as Out<Q>;
      const params = parseOr400(def.params, req.params, 'params') as Out<P>;
      const result = await handler({ body, query, params, principal: principal as Principal, req, reply });
      // A handler may set another status for an answer of the same shape (an import that found problems).
      const code = reply.statusCode === 200 ? status : reply.statusCode;
      if (def.produces) return reply.code(code).type(`${def.produces}; charset=utf-8`).send(result);
      // Shaped by the schema on the way out: undeclared fields are dropped, a wrong shape is our bug.
      const shaped = def.response.safeParse(result);
      if (!shaped.success) {
        req.log.error({ issues: shaped.error.issues }, 'response does not match its schema');
        throw new ApiError('INVALID_INPUT', 'the server produced an answer that does not match its schema', 500);
      }
      return reply.code(code).send(shaped.data);
    },
  });
}

/** The OpenAPI 3.1 document of every declared route. */
export function openApiDocument(version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const json = (s: Schema) => z.toJSONSchema(s, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' });
  for (const r of DECLARED_ROUTES) {
    const url = r.url.replace(/:([A-Za-z]+)/g, '{$1}');
    const params: unknown[] = [];
    for (const [where, s] of [['path', r.schemas.params], ['query', r.schemas.query]] as const) {
      if (!s) continue;
      const js = json(s) as { properties?: Record<string, unknown>; required?: string[] };
      for (const [name, schema] of Object.entries(js.properties ?? {})) {
        params.push({ name, in: where, required: where === 'path' || (js.required ?? []).includes(name), schema });
      }
    }
    const out = z.toJSONSchema(r.schemas.response as Schema, { target: 'draft-2020-12', io: 'output', unrepresentable: 'any' });
    const media = r.produces ?? 'application/json';
    (paths[url] ??= {})[r.method.toLowerCase()] = {
      summary: r.summary,
      tags: r.tags,
      'x-portcullis-access': r.access,
      ...(params.length ? { parameters: params } : {}),
      ...(r.schemas.body ? { requestBody: { required: true, content: { 'application/json': { schema: json(r.schemas.body) } } } } : {}),
      responses: {
        [String(r.status)]: { description: 'OK', content: { [media]: { schema: out } } },
        default: { description: 'An error from the catalogue (policy/error-codes.ts)', content: { 'application/json': { schema: json(errorSchema) } } },
      },
      ...(r.access !== 'public' ? { security: r.produces === 'websocket' || r.produces === 'text/event-stream' || r.url.startsWith('/api/auth/') ? [{ session: [] }] : [{ session: [] }, { token: [] }] } : {}),
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Portcullis API', version,
      description: 'Sign in with POST /api/auth/login; send the csrfToken it returns as X-CSRF-Token on every state-changing request. '
        + 'Or send an API token as Authorization: Bearer pcx_… (no CSRF token then): it reaches the routes its scope holds, never the WebSocket, event-stream or /api/auth routes.',
    },
    components: { securitySchemes: { session: { type: 'apiKey', in: 'cookie', name: 'pc_session' }, token: { type: 'http', scheme: 'bearer', bearerFormat: 'pcx_<id>_<secret>' } } },
    paths,
  };
}

/** An ISO 8601 time with its offset (`2026-11-23T14:00:00Z`), as epoch milliseconds. */
export const isoTime = z.iso.datetime({ offset: true }).transform((s) => Date.parse(s));
/** A record name as the CLI accepts it (users, devices, organisations). */
export const nameParam = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, { message: 'expected 1-64 letters, digits, ".", "_" or "-"' });

/**
 * Declares a route that is not JSON in, JSON out (a WebSocket, an event stream), so the OpenAPI
 * document and the authorization-matrix test know it too. Its handler calls `authorize` itself.
 */
export function declareRoute(def: { method: 'GET'; url: string; access: Access; summary: string; tags: string[]; produces: string; query?: Schema; params?: Schema }): void {
  if (!DECLARED_ROUTES.some((r) => r.method === def.method && r.url === def.url)) {
    DECLARED_ROUTES.push({
      method: def.method, url: def.url, access: def.access, summary: def.summary, tags: def.tags, status: def.produces === 'websocket' ? 101 : 200,
      produces: def.produces, schemas: { query: def.query, params: def.params, response: z.string() },
    });
  }
}
