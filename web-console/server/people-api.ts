import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ROLES } from '../../policy/types.js';
import { createOrg, createUser, InputError, lockUser, ndaView, resetTotp, setDisabled, setNda, unlockUser, updateUserProfile } from '../../gateway/identity/users.js';
import type { Runtime } from '../../gateway/runtime.js';
import type { UserRecord } from '../../gateway/store/store.js';
import { isoTime, nameParam, route } from './api-route.js';

const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());

export const userSchema = z.object({
  name: z.string(), roles: z.array(z.string()), org: z.string().nullable(),
  nda: z.object({ signedAt: z.string(), expiresAt: z.string(), reference: z.string().nullable() }).nullable(),
  disabled: z.boolean(), lockedUntil: z.string().nullable(), expiresAt: z.string().nullable(), publicKeys: z.number(), locale: z.string().nullable(),
  totpEnrolled: z.boolean(), serviceAccount: z.boolean(), createdAt: z.string(),
}).meta({ id: 'User' });

/** Never the password hash, the TOTP seed or the failure counter: the schema has no room for them. */
export function userView(u: UserRecord, now: number): z.input<typeof userSchema> {
  return {
    name: u.name, roles: u.roles, org: u.org, nda: ndaView(u.nda), disabled: u.disabled,
    lockedUntil: u.lockedUntil !== null && u.lockedUntil > now ? iso(u.lockedUntil) : null, expiresAt: iso(u.expiresAt), publicKeys: u.publicKeys.length,
    locale: u.locale, totpEnrolled: u.totpSealed !== null, serviceAccount: u.serviceAccount === true, createdAt: iso(u.createdAt) as string,
  };
}

const orgSchema = z.object({ name: z.string(), displayName: z.string(), contact: z.string().nullable() }).meta({ id: 'Organisation' });
const ndaBody = z.object({ signedAt: isoTime, expiresAt: isoTime, reference: z.string().max(100).nullable().optional() });

export function registerPeople(app: FastifyInstance, rt: Runtime): void {
  const { store } = rt;

  route(app, {
    method: 'GET', url: '/api/users', access: 'user.read', tags: ['people'], summary: 'Accounts, with roles, organisation, NDA, lock and expiry',
    response: z.object({ users: z.array(userSchema) }),
  }, async () => ({ users: (await store.listUsers()).map((u) => userView(u, rt.clock())) }));

  route(app, {
    method: 'POST', url: '/api/users', access: 'user.manage', tags: ['people'], status: 201,
    summary: 'Create an account; with enrolOnFirstSignIn the person enrols TOTP themselves at first sign-in, otherwise the enrolment URI is in this answer only',
    body: z.object({
      name: nameParam, roles: z.array(z.enum(ROLES)).min(1), org: nameParam.nullable().optional(), password: z.string().min(12).max(1024),
      expiresAt: isoTime.nullable().optional(), nda: ndaBody.nullable().optional(), enrolOnFirstSignIn: z.boolean().default(false),
    }),
    response: z.object({ user: userSchema, otpauthUri: z.string().nullable() }),
  }, async ({ body, principal }) => {
    const { user, otpauthUri } = await createUser(rt, {
      name: body.name, roles: body.roles, org: body.org ?? null, password: body.password, expiresAt: body.expiresAt ?? null,
      nda: body.nda ? { signedAt: body.nda.signedAt, expiresAt: body.nda.expiresAt, reference: body.nda.reference ?? null } : null,
      enrolOnFirstSignIn: body.enrolOnFirstSignIn,
    }, principal.user.name);
    return { user: userView(user, rt.clock()), otpauthUri };
  });

  route(app, {
    method: 'PATCH', url: '/api/users/:name', access: 'user.manage', tags: ['people'], summary: 'Change roles, organisation or account expiry',
    params: z.object({ name: nameParam }),
    body: z.object({ roles: z.array(z.enum(ROLES)).min(1).optional(), org: nameParam.nullable().optional(), expiresAt: isoTime.nullable().optional() }),
    response: userSchema,
  }, async ({ params, body, principal }) => {
    if (params.name === principal.user.name && body.roles && !body.roles.includes('admin')) throw new InputError('INVALID_INPUT', 'you cannot take the admin role from yourself');
    const u = await updateUserProfile(rt, params.name, {
      ...(body.roles ? { roles: body.roles } : {}), ...(body.org !== undefined ? { org: body.org } : {}), ...(body.expiresAt !== undefined ? { expiresAt: body.expiresAt } : {}),
    }, principal.user.name);
    return userView(u, rt.clock());
  });

  route(app, {
    method: 'POST', url: '/api/users/:name/reset-totp', access: 'user.manage', tags: ['people'],
    summary: 'Forget a person\'s TOTP (a lost phone): they enrol again at their next sign-in; their browser sessions end',
    params: z.object({ name: nameParam }), response: userSchema,
  }, async ({ params, principal }) => {
    await resetTotp(rt, params.name, principal.user.name);
    return userView((await store.getUser(params.name)) as UserRecord, rt.clock());
  });

  route(app, {
    method: 'PUT', url: '/api/users/:name/nda', access: 'user.manage', tags: ['people'], summary: 'Record a vendor\'s confidentiality agreement (R-5.3a)',
    params: z.object({ name: nameParam }), body: ndaBody, response: userSchema,
  }, async ({ params, body, principal }) => {
    await setNda(rt, params.name, { signedAt: body.signedAt, expiresAt: body.expiresAt, reference: body.reference ?? null }, principal.user.name);
    return userView((await store.getUser(params.name)) as UserRecord, rt.clock());
  });

  for (const [verb, disabled] of [['disable', true], ['enable', false]] as const) {
    route(app, {
      method: 'POST', url: `/api/users/:name/${verb}`, access: 'user.manage', tags: ['people'],
      summary: disabled ? 'Disable an account (R-5.3d): its grants are revoked and its live sessions end within a second' : 'Enable an account again',
      params: z.object({ name: nameParam }), response: z.object({ user: userSchema, grantsRevoked: z.array(z.string()) }),
    }, async ({ params, principal }) => {
      if (disabled && params.name === principal.user.name) throw new InputError('INVALID_INPUT', 'you cannot disable your own account');
      const { grantsRevoked } = await setDisabled(rt, params.name, disabled, principal.user.name);
      return { user: userView((await store.getUser(params.name)) as UserRecord, rt.clock()), grantsRevoked };
    });
  }

  route(app, {
    method: 'POST', url: '/api/users/:name/lock', access: 'user.lock', tags: ['people'],
    summary: 'Lock an account now (R-A.5b): it cannot sign in and its live sessions end within a second',
    params: z.object({ name: nameParam }), body: z.object({ minutes: z.number().int().min(1).max(525_600), reason: z.string().min(1).max(500) }),
    response: userSchema,
  }, async ({ params, body, principal }) => {
    if (params.name === principal.user.name) throw new InputError('INVALID_INPUT', 'you cannot lock your own account');
    await lockUser(rt, params.name, rt.clock() + body.minutes * 60_000, body.reason, principal.user.name);
    return userView((await store.getUser(params.name)) as UserRecord, rt.clock());
  });

  route(app, {
    method: 'POST', url: '/api/users/:name/unlock', access: 'user.lock', tags: ['people'], summary: 'Unlock an account',
    params: z.object({ name: nameParam }), response: userSchema,
  }, async ({ params, principal }) => {
    await unlockUser(rt, params.name, principal.user.name);
    return userView((await store.getUser(params.name)) as UserRecord, rt.clock());
  });

  route(app, {
    method: 'GET', url: '/api/orgs', access: 'user.read', tags: ['people'], summary: 'Vendor organisations',
    response: z.object({ orgs: z.array(orgSchema) }),
  }, async () => ({ orgs: (await store.listOrgs()).map((o) => ({ name: o.name, displayName: o.displayName, contact: o.contact })) }));

  route(app, {
    method: 'POST', url: '/api/orgs', access: 'org.manage', tags: ['people'], status: 201, summary: 'Add a vendor organisation',
    body: z.object({ name: nameParam, displayName: z.string().min(1).max(200), contact: z.string().max(200).nullable().optional() }), response: orgSchema,
  }, async ({ body, principal }) => {
    await createOrg(rt, { name: body.name, displayName: body.displayName, contact: body.contact ?? null }, principal.user.name);
    return { name: body.name, displayName: body.displayName.trim(), contact: body.contact ?? null };
  });
}
