import { ACTIONS } from '../../policy/api-token-rules.js';
import { can } from '../../policy/roles.js';
import { ROLES, type Role } from '../../policy/types.js';
import { parseTimeSpec } from '../config/duration.js';
import { createApiToken, createServiceAccount, listApiTokens, revokeApiToken, type ApiTokenView } from '../identity/api-tokens.js';
import { InputError } from '../identity/users.js';
import type { Runtime } from '../runtime.js';
import type { UserRecord } from '../store/store.js';
import { checkActor } from './actor.js';
import { parse, required, UsageError } from './cli-io.js';
import type { CliContext } from './main.js';

export const TOKEN_USAGE = `  token create --name N --scope ACTION [--scope ACTION]… --expires T [--user SERVICE_ACCOUNT]   an API token (secret shown once)
  token list [--user NAME | --all] | token revoke ID
  service-account add NAME --role ROLE [--role ROLE]… [--org ORG] | service-account list    automation accounts: tokens only`;

/**
 * Who is acting, for tokens: a named person (their own tokens; with user.manage, service
 * accounts' too) or the host operator (`local:…`), who has no tokens of its own and manages
 * service accounts' as it manages users.
 */
async function tokenActor(rt: Runtime, actor: string): Promise<{ user: UserRecord | null; mayManageUsers: boolean }> {
  const user = await checkActor(rt, actor, 'token.manage');
  return { user, mayManageUsers: user === null || can(user.roles, 'user.manage').allow };
}

const line = (t: ApiTokenView): string =>
  `${t.id}  ${t.owner.padEnd(16)} ${t.state.padEnd(8)} until ${t.expiresAt}  ${t.name}  [${t.scope.join(' ')}]${t.lastUsedAt ? `  last used ${t.lastUsedAt}` : ''}`;

/** `--help` anywhere prints the usage and acts on nothing. */
function helpAsked(args: string[]): boolean {
  if (!args.includes('--help') && !args.includes('-h')) return false;
  process.stdout.write(`Usage:\n${TOKEN_USAGE}\n`);
  return true;
}

export async function tokenCommand(ctx: CliContext, args: string[]): Promise<number> {
  if (helpAsked(args)) return 0;
  const [sub, ...rest] = args;
  switch (sub) {
    case 'create': {
      const { values } = parse(rest, { name: { type: 'string' }, scope: { type: 'string', multiple: true }, expires: { type: 'string' }, user: { type: 'string' } });
      const name = required(values.name, 'name');
      const scope = (values.scope ?? []) as string[];
      if (scope.length === 0) throw new UsageError(`--scope is required, once per action (${ACTIONS.join(', ')})`);
      const bad = scope.find((a) => !(ACTIONS as string[]).includes(a));
      if (bad) throw new UsageError(`unknown action ${JSON.stringify(bad)} (one of ${ACTIONS.join(', ')})`);
      const expires = required(values.expires, 'expires');
      return ctx.withRuntime(async (rt) => {
        let expiresAt: number;
        try {
          expiresAt = parseTimeSpec(expires, rt.clock());
        } catch (err) {
          throw new UsageError(`--expires: ${(err as Error).message}`);
        }
        const who = await tokenActor(rt, ctx.actor);
        const owner = values.user ?? who.user?.name;
        if (!owner) throw new InputError('INVALID_INPUT', 'the host operator has no tokens of its own: name a service account with --user');
        const { token, secret } = await createApiToken(rt, { owner, name, scope, expiresAt }, { actor: ctx.actor, user: who.user, viaToken: null, mayManageUsers: who.mayManageUsers });
        ctx.out.result({ token, secret }, [
          `Created API token ${token.id} for ${token.owner}, valid until ${token.expiresAt}, scope: ${token.scope.join(', ')}.`,
          'Secret (shown once, never again; store it in your secret manager now):',
          `  ${secret}`,
          `Use: curl -H "Authorization: Bearer $TOKEN" https://GATEWAY/api/...`,
        ]);
        return 0;
      });
    }
    case 'list': {
      const { values } = parse(rest, { user: { type: 'string' }, all: { type: 'boolean', default: false } });
      return ctx.withRuntime(async (rt) => {
        const who = await tokenActor(rt, ctx.actor);
        const own = who.user?.name;
        const wantsOthers = values.all || (values.user !== undefined && values.user !== own);
        if (wantsOthers && !who.mayManageUsers) throw new InputError('FORBIDDEN', 'only someone who manages users lists other accounts\' tokens');
        const owner = values.all ? undefined : values.user ?? own;
        if (owner === undefined && !values.all) throw new UsageError('the host operator has no tokens of its own: give --user NAME or --all');
        const tokens = await listApiTokens(rt, owner === undefined ? {} : { owner });
        ctx.out.result(tokens, tokens.length ? tokens.map(line) : ['No API tokens.']);
        return 0;
      });
    }
    case 'revoke': {
      const { positionals } = parse(rest, {}, 1);
      const id = required(positionals[0], 'ID (positional)');
      return ctx.withRuntime(async (rt) => {
        const who = await tokenActor(rt, ctx.actor);
        const t = await revokeApiToken(rt, id, { actor: ctx.actor, ...who });
        ctx.out.result(t, [`Revoked API token ${t.id} of ${t.owner}; it is refused from now on.`]);
        return 0;
      });
    }
    default:
      throw new UsageError('token: expected create, list or revoke');
  }
}

export async function serviceAccountCommand(ctx: CliContext, args: string[]): Promise<number> {
  if (helpAsked(args)) return 0;
  const [sub, ...rest] = args;
  switch (sub) {
    case 'add': {
      const { values, positionals } = parse(rest, { role: { type: 'string', multiple: true }, org: { type: 'string' } }, 1);
      const name = required(positionals[0], 'NAME (positional)');
      const roles = (values.role ?? []) as string[];
      if (roles.length === 0) throw new UsageError(`--role is required (one of ${ROLES.join(', ')})`);
      const bad = roles.find((r) => !(ROLES as readonly string[]).includes(r));
      if (bad) throw new UsageError(`unknown role ${JSON.stringify(bad)} (one of ${ROLES.join(', ')})`);
      return ctx.withRuntime(async (rt) => {
        await checkActor(rt, ctx.actor, 'user.manage');
        const u = await createServiceAccount(rt, { name, roles: roles as Role[], org: values.org ?? null }, ctx.actor);
        ctx.out.result({ name: u.name, roles: u.roles, org: u.org, serviceAccount: true }, [
          `Created service account ${u.name} (${u.roles.join(', ')}): no password or TOTP; it acts through API tokens only.`,
          `Make one: portcullis token create --user ${u.name} --name NAME --scope ACTION --expires +90d`,
        ]);
        return 0;
      });
    }
    case 'list': {
      parse(rest, {});
      return ctx.withRuntime(async (rt) => {
        const accounts = (await rt.store.listUsers()).filter((u) => u.serviceAccount === true)
          .map((u) => ({ name: u.name, roles: u.roles, org: u.org, disabled: u.disabled }));
        ctx.out.result(accounts, accounts.length ? accounts.map((a) => `${a.name.padEnd(20)} ${a.roles.join(',').padEnd(18)} ${a.org ?? ''}${a.disabled ? '  DISABLED' : ''}`) : ['No service accounts.']);
        return 0;
      });
    }
    default:
      throw new UsageError('service-account: expected add or list');
  }
}
