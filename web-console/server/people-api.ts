import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ROLES } from '../../policy/types.js';
import { confirmRoleChange, rejectRoleChange, roleChangeView } from '../../gateway/identity/role-changes.js';
import { addUser, createOrg, InputError, lockUser, ndaView, resetTotp, setDisabled, setNda, unlockUser, updateUserProfile } from '../../gateway/identity/users.js';
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

export const roleChangeSchema = z.object({
  id: z.string(), user: z.string(), requestedBy: z.string(), requestedAt: z.string(), expiresAt: z.string(),
  rolesBefore: z.array(z.string()), added: z.array(z.string()), status: z.enum(['pending', 'confirmed', 'rejected', 'expired']),
  decidedBy: z.string().nullable(), decidedAt: z.string().nullable(), reason: z.string().nullable(),
}).meta({ id: 'RoleChange' });

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
    response: z.object({ user: userSchema, otpauthUri: z.string().nullable(), pendingChange: roleChangeSchema.nullable() }),
  }, async ({ body, principal }) => {
    const { user, otpauthUri, pendingChange } = await addUser(rt, {
      name: body.name, roles: body.roles, org: body.org ?? null, password: body.password, expiresAt: body.expiresAt ?? null,
      nda: body.nda ? { signedAt: body.nda.signedAt, expiresAt: body.nda.expiresAt, reference: body.nda.reference ?? null } : null,
      enrolOnFirstSignIn: body.enrolOnFirstSignIn,
    }, principal.user.name);
    return { user: userView(user, rt.clock()), otpauthUri, pendingChange: pendingChange ? roleChangeView(pendingChange, rt.clock()) : null };
  });

  route(app, {
    method: 'PATCH', url: '/api/users/:name', access: 'user.manage', tags: ['people'],
    summary: 'Change roles, organisation or account expiry; nobody changes their own roles (SELF_ROLE_CHANGE), and a privileged role added waits for a second admin (pendingChange)',
    params: z.object({ name: nameParam }),
    body: z.object({ roles: z.array(z.enum(ROLES)).min(1).optional(), org: nameParam.nullable().optional(), expiresAt: isoTime.nullable().optional() }),
    response: userSchema.extend({ pendingChange: roleChangeSchema.nullable() }),
  }, async ({ params, body, principal }) => {
    const u = await updateUserProfile(rt, params.name, {
      ...(body.roles ? { roles: body.roles } : {}), ...(body.org !== undefined ? { org: body.org } : {}), ...(body.expiresAt !== undefined ? { expiresAt: body.expiresAt } : {}),
    }, principal.user.name);
    return { ...userView(u, rt.clock()), pendingChange: u.pendingChange ? roleChangeView(u.pendingChange, rt.clock()) : null };
  });

  route(app, {
    method: 'GET', url: '/api/role-changes', access: 'user.read', tags: ['people'],
    summary: 'Privileged role changes (S-1.3): status=pending lists those waiting for a second admin, with who asked, when, and when they expire',
    query: z.object({ status: z.enum(['pending', 'confirmed', 'rejected', 'expired']).optional(), user: nameParam.optional(), limit: z.coerce.number().int().min(1).max(1000).default(200) }),
    response: z.object({ changes: z.array(roleChangeSchema) }),
  }, async ({ query }) => {
    const now = rt.clock();
    // Status is computed (a pending change past its expiry reads as expired), so filter after the view.
    const views = (await store.listRoleChanges({ ...(query.user ? { user: query.user } : {}), limit: query.limit })).map((c) => roleChangeView(c, now));
    return { changes: views.filter((v) => !query.status || v.status === query.status) };
  });

  route(app, {
    method: 'POST', url: '/api/role-changes/:id/confirm', access: 'user.manage', tags: ['people'],
    summary: 'Confirm a privileged role change as a second admin: neither the admin who asked nor the person it concerns (ROLE_CHANGE_SELF_CONFIRM)',
    params: z.object({ id: z.string().min(1).max(64) }), response: z.object({ change: roleChangeSchema, user: userSchema }),
  }, async ({ params, principal }) => {
    const { change, user } = await confirmRoleChange(rt, params.id, principal.user.name);
    return { change: roleChangeView(change, rt.clock()), user: userView(user, rt.clock()) };
  });

  route(app, {
    method: 'POST', url: '/api/role-changes/:id/reject', access: 'user.manage', tags: ['people'],
    summary: 'Reject a privileged role change (any admin; the one who asked withdraws it this way)',
    params: z.object({ id: z.string().min(1).max(64) }), body: z.object({ reason: z.string().max(500).nullable().optional() }),
    response: roleChangeSchema,
  }, async ({ params, body, principal }) => roleChangeView(await rejectRoleChange(rt, params.id, principal.user.name, body.reason ?? null), rt.clock()));

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
