import { readFileSync } from 'node:fs';
import { ROLES, type Role } from '../../policy/types.js';
import { parseTimeSpec } from '../config/duration.js';
import { checkPasswordStrength, hashPassword } from '../identity/password.js';
import { addPublicKey, createUser, InputError } from '../identity/users.js';
import { parse, readStdinSecret, required, UsageError } from './cli-io.js';
import type { CliContext } from './main.js';

export async function userCommand(ctx: CliContext, args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'add': {
      const { values, positionals } = parse(rest, {
        role: { type: 'string', multiple: true }, org: { type: 'string' }, expires: { type: 'string' }, 'password-stdin': { type: 'boolean', default: false },
      }, 1);
      const name = required(positionals[0], 'NAME (positional)');
      const roles = (values.role ?? []) as string[];
      if (roles.length === 0) throw new UsageError(`--role is required (one of ${ROLES.join(', ')})`);
      const bad = roles.find((r) => !(ROLES as readonly string[]).includes(r));
      if (bad) throw new UsageError(`unknown role ${JSON.stringify(bad)} (one of ${ROLES.join(', ')})`);
      if (!values['password-stdin']) throw new UsageError('--password-stdin is required: the password is read from standard input');
      const password = readStdinSecret('password');
      return ctx.withRuntime(async (rt) => {
        const expiresAt = values.expires ? parseTimeSpec(values.expires, rt.clock()) : null;
        const { user, otpauthUri } = await createUser(rt, { name, roles: roles as Role[], org: values.org ?? null, password, expiresAt }, ctx.actor);
        ctx.out.result(
          { name: user.name, roles: user.roles, org: user.org, expiresAt: user.expiresAt ? new Date(user.expiresAt).toISOString() : null, otpauthUri },
          [`Created user ${user.name} (${user.roles.join(', ')}).`, 'TOTP enrolment (shown once):', `  ${otpauthUri}`],
        );
        return 0;
      });
    }
    case 'key': {
      const { values, positionals } = parse(rest, { 'key-file': { type: 'string' } }, 1);
      const name = required(positionals[0], 'NAME (positional)');
      const text = readFileSync(required(values['key-file'], 'key-file'), 'utf8');
      return ctx.withRuntime(async (rt) => {
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
          name: u.name, roles: u.roles, org: u.org, disabled: u.disabled, locked: u.lockedUntil !== null && u.lockedUntil > now,
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
        const u = await rt.store.getUser(name);
        if (!u) throw new InputError('NOT_FOUND', `no user named ${name}`);
        await rt.store.updateUser(name, { disabled });
        if (disabled) await rt.store.deleteWebSessionsOf(name);
        await rt.audit.record(disabled ? 'user.disabled' : 'user.enabled', { actor: ctx.actor, outcome: 'ok', data: { user: name } });
        // Every node re-decides its live sessions now (R-5.3d: rights end promptly).
        await rt.bus.publish({ type: 'access.changed', from: rt.node, user: name });
        ctx.out.result({ name, disabled }, [disabled ? `Disabled ${name}; their live sessions end within a second.` : `Enabled ${name}.`]);
        return 0;
      });
    }
    case 'unlock': {
      const { positionals } = parse(rest, {}, 1);
      const name = required(positionals[0], 'NAME (positional)');
      return ctx.withRuntime(async (rt) => {
        if (!(await rt.store.getUser(name))) throw new InputError('NOT_FOUND', `no user named ${name}`);
        await rt.store.updateUser(name, { lockedUntil: null, failedLogins: 0 });
        await rt.audit.record('account.unlocked', { actor: ctx.actor, outcome: 'ok', data: { user: name } });
        ctx.out.result({ name, unlocked: true }, [`Unlocked ${name}.`]);
        return 0;
      });
    }
    default:
      throw new UsageError('user: expected add, key, password, list, disable, enable or unlock');
  }
}
