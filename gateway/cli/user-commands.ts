import { readFileSync } from 'node:fs';
import { ROLES, type Role } from '../../policy/types.js';
import { parseTimeSpec } from '../config/duration.js';
import { checkPasswordStrength, hashPassword } from '../identity/password.js';
import { confirmRoleChange, isHostOperator, rejectRoleChange, roleChangeView, type RoleChangeView } from '../identity/role-changes.js';
import { addPublicKey, addUser, createOrg, InputError, ndaView, resetTotp, setDisabled, setNda, unlockUser, updateUserProfile } from '../identity/users.js';
import { setSsoLink } from '../identity/sso-link.js';
import type { NdaRecord, RoleChangeRecord, RoleChangeStatus } from '../store/store.js';
import { checkActor, personActor, touchesPrivilegedRoles } from './actor.js';
import { parse, readStdinSecret, required, UsageError } from './cli-io.js';
import type { CliContext } from './main.js';

export async function userCommand(ctx: CliContext, args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'add': {
      const { values, positionals } = parse(rest, {
        role: { type: 'string', multiple: true }, org: { type: 'string' }, expires: { type: 'string' }, 'password-stdin': { type: 'boolean', default: false },
        'nda-signed': { type: 'string' }, 'nda-expires': { type: 'string' }, 'nda-ref': { type: 'string' },
      }, 1);
      const name = required(positionals[0], 'NAME (positional)');
      const roles = (values.role ?? []) as string[];
      if (roles.length === 0) throw new UsageError(`--role is required (one of ${ROLES.join(', ')})`);
      const bad = roles.find((r) => !(ROLES as readonly string[]).includes(r));
      if (bad) throw new UsageError(`unknown role ${JSON.stringify(bad)} (one of ${ROLES.join(', ')})`);
      if (!values['password-stdin']) throw new UsageError('--password-stdin is required: the password is read from standard input');
      const password = readStdinSecret('password');
      return ctx.withRuntime(async (rt) => {
        // Anyone may be given the vendor role by the host operator; a privileged role only by a proven admin.
        if (touchesPrivilegedRoles([], roles as Role[])) await personActor(rt, ctx.actor, 'user.manage', 'giving a privileged role (admin, security, device_manager, approver)');
        else await checkActor(rt, ctx.actor, 'user.manage');
        const expiresAt = values.expires ? time(values.expires, rt.clock(), 'expires') : null;
        const nda = ndaFrom(values, rt.clock());
        const { user, otpauthUri, pendingChange } = await addUser(rt, { name, roles: roles as Role[], org: values.org ?? null, password, expiresAt, nda }, ctx.actor);
        const pending = pendingChange ? roleChangeView(pendingChange, rt.clock()) : null;
        ctx.out.result(
          { name: user.name, roles: user.roles, org: user.org, expiresAt: user.expiresAt ? new Date(user.expiresAt).toISOString() : null, nda: ndaView(user.nda), otpauthUri, pendingChange: pending },
          [`Created user ${user.name} (${user.roles.length ? user.roles.join(', ') : 'no role yet'}).`, ...pendingLines(pending), 'TOTP enrolment (shown once):', `  ${otpauthUri}`],
        );
        return 0;
      });
    }
    case 'key': {
      const { values, positionals } = parse(rest, { 'key-file': { type: 'string' } }, 1);
      const name = required(positionals[0], 'NAME (positional)');
      const text = readFileSync(required(values['key-file'], 'key-file'), 'utf8');
      return ctx.withRuntime(async (rt) => {
        await checkActor(rt, ctx.actor, 'user.manage');
        const fp = await addPublicKey(rt, name, text, ctx.actor);
        ctx.out.result({ name, fingerprint: fp }, [`Added key ${fp} to ${name}.`]);
        return 0;
      });
    }
    case 'list': {
      parse(rest, {});
      return ctx.withRuntime(async (rt) => {
        const now = rt.clock();
        const users = (await rt.store.listUsers()).map((u) => ({
          name: u.name, roles: u.roles, org: u.org, nda: ndaView(u.nda), disabled: u.disabled, locked: u.lockedUntil !== null && u.lockedUntil > now,
          lockedUntil: u.lockedUntil && u.lockedUntil > now ? new Date(u.lockedUntil).toISOString() : null,
          expiresAt: u.expiresAt ? new Date(u.expiresAt).toISOString() : null, publicKeys: u.publicKeys.length,
        }));
        ctx.out.result(users, users.map((u) => `${u.name.padEnd(20)} ${u.roles.join(',').padEnd(18)} ${u.org ?? ''}${u.locked ? `  LOCKED until ${u.lockedUntil}` : ''}${u.disabled ? '  DISABLED' : ''}`));
        return 0;
      });
    }
    case 'password': {
      const { values, positionals } = parse(rest, { 'password-stdin': { type: 'boolean', default: false } }, 1);
      const name = required(positionals[0], 'NAME (positional)');
      if (!values['password-stdin']) throw new UsageError('--password-stdin is required: the new password is read from standard input');
      const password = readStdinSecret('password');
      const weak = checkPasswordStrength(password);
      if (weak) throw new UsageError(weak);
      return ctx.withRuntime(async (rt) => {
        await checkActor(rt, ctx.actor, 'user.manage');
        if (!(await rt.store.getUser(name))) throw new InputError('NOT_FOUND', `no user named ${name}`);
        await rt.store.updateUser(name, { passwordHash: await hashPassword(password) });
        await rt.audit.record('user.password_set', { actor: ctx.actor, outcome: 'ok', data: { user: name } });
        ctx.out.result({ name, passwordSet: true }, [`Set a new password for ${name}.`]);
        return 0;
      });
    }
    case 'disable':
    case 'enable': {
      const { positionals } = parse(rest, {}, 1);
      const name = required(positionals[0], 'NAME (positional)');
      const disabled = sub === 'disable';
      return ctx.withRuntime(async (rt) => {
        await checkActor(rt, ctx.actor, 'user.manage');
        const { grantsRevoked } = await setDisabled(rt, name, disabled, ctx.actor);
        ctx.out.result({ name, disabled, grantsRevoked }, [disabled
          ? `Disabled ${name}: ${grantsRevoked.length} grant(s) revoked; their live sessions end within a second.`
          : `Enabled ${name}.`]);
        return 0;
      });
    }
    case 'nda': {
      const { values, positionals } = parse(rest, { 'nda-signed': { type: 'string' }, 'nda-expires': { type: 'string' }, 'nda-ref': { type: 'string' } }, 1);
      const name = required(positionals[0], 'NAME (positional)');
      required(values['nda-signed'], 'nda-signed');
      required(values['nda-expires'], 'nda-expires');
      return ctx.withRuntime(async (rt) => {
        await checkActor(rt, ctx.actor, 'user.manage');
        const nda = ndaFrom(values, rt.clock()) as NdaRecord;
        await setNda(rt, name, nda, ctx.actor);
        ctx.out.result({ name, nda: ndaView(nda) }, [`Recorded the confidentiality agreement of ${name}, valid until ${new Date(nda.expiresAt).toISOString()}.`]);
        return 0;
      });
    }
    case 'reset-totp': {
      const { positionals } = parse(rest, {}, 1);
      const name = required(positionals[0], 'NAME (positional)');
      return ctx.withRuntime(async (rt) => {
        await checkActor(rt, ctx.actor, 'user.manage');
        await resetTotp(rt, name, ctx.actor);
        ctx.out.result({ name, totpEnrolled: false }, [`Forgot the TOTP of ${name}: they enrol again at their next sign-in in the web console.`]);
        return 0;
      });
    }
    case 'set': {
      const { values, positionals } = parse(rest, { role: { type: 'string', multiple: true }, org: { type: 'string' }, expires: { type: 'string' } }, 1);
      const name = required(positionals[0], 'NAME (positional)');
      const roles = values.role as string[] | undefined;
      const bad = roles?.find((r) => !(ROLES as readonly string[]).includes(r));
      if (bad) throw new UsageError(`unknown role ${JSON.stringify(bad)} (one of ${ROLES.join(', ')})`);
      return ctx.withRuntime(async (rt) => {
        const before = await rt.store.getUser(name);
        if (roles && before && touchesPrivilegedRoles(before.roles, roles as Role[])) {
          await personActor(rt, ctx.actor, 'user.manage', 'changing a privileged role (admin, security, device_manager, approver)');
        } else await checkActor(rt, ctx.actor, 'user.manage');
        const expiresAt = values.expires === undefined ? undefined : values.expires === 'never' ? null : time(values.expires, rt.clock(), 'expires');
        const u = await updateUserProfile(rt, name, {
          ...(roles ? { roles: roles as Role[] } : {}), ...(values.org !== undefined ? { org: values.org === '' ? null : values.org } : {}),
          ...(expiresAt !== undefined ? { expiresAt } : {}),
        }, ctx.actor);
        const pending = u.pendingChange ? roleChangeView(u.pendingChange, rt.clock()) : null;
        ctx.out.result(
          { name, roles: u.roles, org: u.org, expiresAt: u.expiresAt ? new Date(u.expiresAt).toISOString() : null, pendingChange: pending },
          [`Updated ${name}: ${u.roles.length ? u.roles.join(', ') : 'no role yet'}${u.org ? `, ${u.org}` : ''}.`, ...pendingLines(pending)],
        );
        return 0;
      });
    }
    case 'role-changes': {
      const { values } = parse(rest, { status: { type: 'string' }, user: { type: 'string' } });
      const status = values.status as RoleChangeStatus | undefined;
      if (status !== undefined && !['pending', 'confirmed', 'rejected', 'expired'].includes(status)) throw new UsageError('--status: one of pending, confirmed, rejected, expired');
      return ctx.withRuntime(async (rt) => {
        await checkActor(rt, ctx.actor, 'user.read');
        const now = rt.clock();
        const views = (await rt.store.listRoleChanges({ ...(values.user ? { user: values.user } : {}), limit: 1000 })).map((c: RoleChangeRecord) => roleChangeView(c, now))
          .filter((v) => status === undefined || v.status === status);
        ctx.out.result(views, views.length ? views.map((v) => `${v.id}  ${v.status.padEnd(9)} ${v.user}: +${v.added.join(',+')}  asked by ${v.requestedBy} at ${v.requestedAt}${v.status === 'pending' ? `, expires ${v.expiresAt}` : `, ${v.status} by ${v.decidedBy ?? ''}`}`) : ['No role changes.']);
        return 0;
      });
    }
    case 'confirm-role-change':
    case 'reject-role-change': {
      const { values, positionals } = parse(rest, sub === 'reject-role-change' ? { reason: { type: 'string' } } : {}, 1);
      const id = required(positionals[0], 'ID (positional)');
      return ctx.withRuntime(async (rt) => {
        // A named person must be an admin; the host operator's word is weighed by policy (it confirms only a single-admin install's second admin).
        if (!isHostOperator(ctx.actor)) await checkActor(rt, ctx.actor, 'user.manage');
        if (sub === 'confirm-role-change') {
          const { change, user } = await confirmRoleChange(rt, id, ctx.actor);
          const v = roleChangeView(change, rt.clock());
          ctx.out.result({ ...v, roles: user.roles }, [`Confirmed ${id}: ${user.name} now holds ${user.roles.join(', ')}.`]);
        } else {
          const v = roleChangeView(await rejectRoleChange(rt, id, ctx.actor, (values as { reason?: string }).reason ?? null), rt.clock());
          ctx.out.result(v, [`Rejected ${id}: ${v.user} does not get ${v.added.join(', ')}.`]);
        }
        return 0;
      });
    }
    case 'sso-link':
    case 'sso-unlink': {
      const link = sub === 'sso-link';
      const { values, positionals } = parse(rest, link ? { subject: { type: 'string' }, issuer: { type: 'string' } } : {}, 1);
      const name = required(positionals[0], 'NAME (positional)');
      return ctx.withRuntime(async (rt) => {
        await checkActor(rt, ctx.actor, 'user.manage');
        if (!link) {
          await setSsoLink(rt, name, null, ctx.actor);
          ctx.out.result({ name, sso: null }, [`Unlinked ${name} from single sign-on.`]);
          return 0;
        }
        const subject = required(values.subject as string | undefined, 'subject');
        const issuer = (values.issuer as string | undefined) ?? rt.config.sso.oidc?.issuer;
        if (!issuer) throw new UsageError('--issuer is required when [sso.oidc] is not configured');
        await setSsoLink(rt, name, { issuer, subject }, ctx.actor);
        ctx.out.result({ name, sso: { issuer, subject } }, [`Linked ${name} to ${subject} at ${issuer}: it signs in through single sign-on, its roles then follow the IdP's groups.`]);
        return 0;
      });
    }
    case 'unlock': {
      const { positionals } = parse(rest, {}, 1);
      const name = required(positionals[0], 'NAME (positional)');
      return ctx.withRuntime(async (rt) => {
        await checkActor(rt, ctx.actor, 'user.manage');
        await unlockUser(rt, name, ctx.actor);
        ctx.out.result({ name, unlocked: true }, [`Unlocked ${name}.`]);
        return 0;
      });
    }
    default:
      throw new UsageError('user: expected add, key, password, list, nda, set, reset-totp, disable, enable, unlock, sso-link, sso-unlink, role-changes, confirm-role-change or reject-role-change');
  }
}

/** What a privileged role given by this command waits for (S-1.3). */
function pendingLines(v: RoleChangeView | null): string[] {
  if (!v) return [];
  return [
    `The role ${v.added.join(', ')} waits for a second admin's confirmation until ${v.expiresAt} (S-1.3): role change ${v.id}.`,
    `  Another admin confirms with: portcullis user confirm-role-change ${v.id} --actor NAME   (or rejects: user reject-role-change ${v.id})`,
  ];
}

function time(text: string, now: number, flag: string): number {
  try {
    return parseTimeSpec(text, now);
  } catch (err) {
    throw new UsageError(`--${flag}: ${(err as Error).message}`);
  }
}

function ndaFrom(values: { 'nda-signed'?: string; 'nda-expires'?: string; 'nda-ref'?: string }, now: number): NdaRecord | null {
  const signed = values['nda-signed'];
  const expires = values['nda-expires'];
  if (signed === undefined && expires === undefined) return null;
  if (signed === undefined || expires === undefined) throw new UsageError('--nda-signed and --nda-expires go together');
  return { signedAt: time(signed, now, 'nda-signed'), expiresAt: time(expires, now, 'nda-expires'), reference: values['nda-ref'] ?? null };
}

export async function orgCommand(ctx: CliContext, args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'add': {
      const { values, positionals } = parse(rest, { 'display-name': { type: 'string' }, contact: { type: 'string' } }, 1);
      const name = required(positionals[0], 'ID (positional)');
      return ctx.withRuntime(async (rt) => {
        await checkActor(rt, ctx.actor, 'org.manage');
        await createOrg(rt, { name, displayName: values['display-name'] ?? name, contact: values.contact ?? null }, ctx.actor);
        ctx.out.result({ name, displayName: values['display-name'] ?? name, contact: values.contact ?? null }, [`Added organisation ${name}.`]);
        return 0;
      });
    }
    case 'list': {
      parse(rest, {});
      return ctx.withRuntime(async (rt) => {
        const orgs = await rt.store.listOrgs();
        ctx.out.result(orgs.map((o) => ({ name: o.name, displayName: o.displayName, contact: o.contact })), orgs.map((o) => `${o.name.padEnd(20)} ${o.displayName}${o.contact ? `  (${o.contact})` : ''}`));
        return 0;
      });
    }
    default:
      throw new UsageError('org: expected add or list');
  }
}
