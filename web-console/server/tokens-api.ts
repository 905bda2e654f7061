import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ACTIONS } from '../../policy/api-token-rules.js';
import type { Action } from '../../policy/roles.js';
import { ROLES } from '../../policy/types.js';
import { createApiToken, createServiceAccount, listApiTokens, revokeApiToken } from '../../gateway/identity/api-tokens.js';
import { InputError } from '../../gateway/identity/users.js';
import type { Runtime } from '../../gateway/runtime.js';
import { isoTime, nameParam, permits, route } from './api-route.js';
import { userSchema, userView } from './people-api.js';

export const apiTokenSchema = z.object({
  id: z.string(), owner: z.string(), ownerIsServiceAccount: z.boolean(), name: z.string(), scope: z.array(z.string()), createdAt: z.string(), createdBy: z.string(),
  expiresAt: z.string(), lastUsedAt: z.string().nullable(), revokedAt: z.string().nullable(), revokedBy: z.string().nullable(),
  state: z.enum(['active', 'expired', 'revoked']),
}).meta({ id: 'ApiToken' });

/**
 * API tokens (issue 13, item 5): everyone makes, lists and revokes their own (token.manage);
 * whoever may manage users (admins) lists and revokes anyone's and makes tokens for service
 * accounts. The secret is in the answer of POST /api/tokens only; no other schema has room for it.
 */
export function registerTokens(app: FastifyInstance, rt: Runtime): void {
  route(app, {
    method: 'GET', url: '/api/tokens', access: 'token.manage', tags: ['tokens'],
    summary: 'API tokens: your own; with user.manage, everyone\'s (all=true) or one account\'s (user=NAME). Never the secret',
    query: z.object({ all: z.enum(['true', 'false']).optional().transform((v) => v === 'true'), user: nameParam.optional() }),
    response: z.object({ tokens: z.array(apiTokenSchema), actions: z.array(z.string()) }),
  }, async ({ query, principal }) => {
    const admin = permits(principal, 'user.manage');
    if ((query.all || (query.user !== undefined && query.user !== principal.user.name)) && !admin) throw new InputError('FORBIDDEN', 'only someone who manages users sees other accounts\' tokens');
    const owner = query.all ? undefined : query.user ?? principal.user.name;
    return { tokens: await listApiTokens(rt, owner === undefined ? {} : { owner }), actions: ACTIONS };
  });

  route(app, {
    method: 'POST', url: '/api/tokens', access: 'token.manage', tags: ['tokens'], status: 201,
    summary: 'Make an API token (scope: actions its owner may do; expiry at most a year). The secret is in this answer only: copy it now',
    body: z.object({
      name: z.string().min(1).max(100), scope: z.array(z.enum(ACTIONS as [Action, ...Action[]])).min(1).max(ACTIONS.length), expiresAt: isoTime,
      user: nameParam.optional(),
    }),
    response: z.object({ token: apiTokenSchema, secret: z.string() }),
  }, async ({ body, principal }) => {
    return createApiToken(rt, { owner: body.user ?? principal.user.name, name: body.name, scope: body.scope, expiresAt: body.expiresAt }, {
      actor: principal.user.name, user: principal.user, viaToken: principal.token, mayManageUsers: permits(principal, 'user.manage'),
    });
  });

  route(app, {
    method: 'POST', url: '/api/tokens/:id/revoke', access: 'token.manage', tags: ['tokens'],
    summary: 'Revoke an API token at once (your own; with user.manage, anyone\'s)',
    params: z.object({ id: z.string().min(1).max(64) }), response: apiTokenSchema,
  }, async ({ params, principal }) => revokeApiToken(rt, params.id, { actor: principal.user.name, user: principal.user, mayManageUsers: permits(principal, 'user.manage') }));

  route(app, {
    method: 'POST', url: '/api/service-accounts', access: 'user.manage', tags: ['people'], status: 201,
    summary: 'Create a service account: no password or TOTP, it acts only through API tokens an admin makes for it, and never approves',
    body: z.object({ name: nameParam, roles: z.array(z.enum(ROLES)).min(1), org: nameParam.nullable().optional() }),
    response: userSchema,
  }, async ({ body, principal }) => {
    const u = await createServiceAccount(rt, { name: body.name, roles: body.roles, org: body.org ?? null }, principal.user.name);
    return userView(u, rt.clock());
  });
}
