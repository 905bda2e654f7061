import { type ErrorCode } from '../../policy/error-codes.js';
import { can, type Action } from '../../policy/roles.js';
import { PRIVILEGED_ROLES } from '../../policy/role-changes.js';
import type { Role } from '../../policy/types.js';
import { recordTokenRefusal, tokenMay, verifyApiToken } from '../identity/api-tokens.js';
import { InputError } from '../identity/users.js';
import type { Runtime } from '../runtime.js';
import type { ApiTokenRecord, UserRecord } from '../store/store.js';
import { askTerminalHidden, readActorCredentials } from './cli-io.js';

/** What a CLI run says about who it acts for, before any of it is believed. */
export interface ActorClaim {
  /** `--actor NAME`, else `$PORTCULLIS_ACTOR`: a name that must be proven; null for the host operator. */
  name: string | null;
  /** `--actor-credentials-stdin`: the proof is the first two lines of standard input. */
  credentialsOnStdin: boolean;
  /** `$PORTCULLIS_TOKEN`: an API token, the other proof. */
  token: string | null;
  /** The operating-system user running the CLI. */
  osUser: string;
}

/** Who a CLI run acts as, once proven. */
export interface CliActor {
  /** A user's name, or `local:<os user>` for the host operator. */
  name: string;
  /** The proven person; null for the host operator. */
  user: UserRecord | null;
  proof: 'host-operator' | 'password+totp' | 'token';
}

export const hostOperator = (osUser: string): string => `local:${osUser}`;

/**
 * The one place a CLI run's actor is decided (issue 13). A name on the command line or in the
 * environment is only a claim: it becomes the actor after the same sign-in the console and SSH
 * use (password + current TOTP code through the Authenticator: lockout counting, the TOTP step
 * consumed so a code works once, disabled and expired accounts refused, every outcome audited),
 * or through an API token. Without a claim the run is the host operator's, who acts with the
 * machine's authority (as `init` does) but makes no decision that needs a named person.
 */
export async function resolveActor(rt: Runtime, claim: ActorClaim): Promise<CliActor> {
  const operator = hostOperator(claim.osUser);
  const source = `cli ${claim.osUser}`;
  if (claim.token !== null) {
    // An API token is the other proof (issue 13): its owner is the actor, held to the token's scope
    // (checkActor), and a --actor naming someone else is refused. Every use is audited.
    const where = { source, channel: 'cli', request: 'cli' };
    const v = await verifyApiToken(rt, claim.token, rt.clock());
    if (!v.ok) {
      await recordTokenRefusal(rt, v, where);
      throw new InputError(v.code, `PORTCULLIS_TOKEN was not accepted: ${v.detail}`);
    }
    if (claim.name !== null && claim.name !== v.user.name) {
      return refuse(rt, operator, claim, 'ACTOR_UNPROVEN', `PORTCULLIS_TOKEN is ${v.user.name}'s: it proves no one else (--actor ${claim.name})`);
    }
    tokenRuns.set(rt, v);
    await rt.audit.record('token.used', { actor: v.user.name, outcome: 'ok', data: { token: v.token.id, name: v.token.name, ...where } });
    await rt.store.touchApiToken(v.token.id, rt.clock());
    return { name: v.user.name, user: v.user, proof: 'token' };
  }
  if (claim.name === null || claim.name === operator) return { name: operator, user: null, proof: 'host-operator' };
  if (claim.name.startsWith('local:')) {
    return refuse(rt, operator, claim, 'ACTOR_UNPROVEN', `this CLI runs as ${operator}; it cannot act as another host user (${claim.name})`);
  }
  // A locked account is told so before anyone types a code for nothing (audited by precheck).
  const early = await rt.authenticator.precheck(claim.name, source);
  if (early && !early.ok) throw new InputError(early.code, `--actor ${claim.name} was not proven: ${early.message}`);
  let credentials: { password: string; totp: string } | null;
  if (claim.credentialsOnStdin) credentials = readActorCredentials();
  else {
    const password = await askTerminalHidden(`Password of ${claim.name}: `);
    const totp = password === null ? null : await askTerminalHidden(`TOTP code of ${claim.name}: `);
    credentials = password !== null && totp !== null ? { password, totp } : null;
  }
  if (!credentials) {
    return refuse(rt, operator, claim, 'ACTOR_UNPROVEN',
      `--actor ${claim.name} must be proven: type the password and current TOTP code at the terminal, or give them as the first two lines of standard input with --actor-credentials-stdin (or leave --actor out to act as the host operator, ${operator})`);
  }
  const r = await rt.authenticator.signIn({ username: claim.name, password: credentials.password, totp: credentials.totp, source, method: 'cli password+totp' });
  if (!r.ok) throw new InputError(r.code, `--actor ${claim.name} was not proven: ${r.message}`);
  return { name: r.user.name, user: r.user, proof: 'password+totp' };
}

async function refuse(rt: Runtime, operator: string, claim: ActorClaim, code: ErrorCode, message: string): Promise<never> {
  await rt.audit.record('cli.actor_refused', {
    actor: operator, outcome: 'denied', code,
    data: { claimed: claim.name, proof: claim.token !== null ? 'token' : claim.credentialsOnStdin ? 'stdin' : 'terminal', detail: message },
  });
  throw new InputError(code, message);
}

/**
 * A change the host operator may make, or a proven person whose roles allow it (the same matrix
 * the API checks). Returns the person, or null for the host operator.
 */
export async function checkActor(rt: Runtime, actor: string, action: Action): Promise<UserRecord | null> {
  if (actor.startsWith('local:')) return null;
  const user = await rt.store.getUser(actor);
  if (!user) throw new InputError('FORBIDDEN', `${actor} is not a known user`);
  const may = can(user.roles, action);
  if (!may.allow) {
    await rt.audit.record('cli.refused', { actor, outcome: 'denied', code: 'FORBIDDEN', data: { action, detail: may.detail } });
    throw new InputError('FORBIDDEN', `${actor} may not do this: ${may.detail}`);
  }
  // Proven by a token: no more than the token's scope, whatever the owner's roles allow.
  const token = tokenRuns.get(rt);
  if (token) {
    const d = tokenMay({ user, token: token.token }, action);
    if (!d.allow) {
      await recordTokenRefusal(rt, { code: d.code, detail: d.detail, tokenId: token.token.id, owner: user.name }, { source: 'cli', channel: 'cli', request: 'cli' });
      throw new InputError(d.code, d.detail);
    }
  }
  return user;
}

/** The runs proven by an API token, with the token (its scope bounds every action of the run). */
const tokenRuns = new WeakMap<Runtime, { user: UserRecord; token: ApiTokenRecord }>();

/**
 * Decisions a clause gives to a named person (S-1.3): requests and their approvals, a quarantined
 * device's security check (R-6.4b), a decommissioning, data export by file transfer
 * (R-6.3e), privileged roles. The host operator cannot make them; the refusal is audited.
 */
export async function personActor(rt: Runtime, actor: string, action: Action, what: string = action): Promise<UserRecord> {
  if (actor.startsWith('local:')) {
    await rt.audit.record('cli.refused', { actor, outcome: 'denied', code: 'PERSON_REQUIRED', data: { action, what, detail: 'a named person must make this decision' } });
    throw new InputError('PERSON_REQUIRED',
      `${what} is a named person's decision (R-5.3c, R-6.3e, R-6.4b, R-6.5, S-1.3), not the host operator's (${actor}): give --actor NAME and prove it (password and TOTP code at the prompt, or --actor-credentials-stdin)`);
  }
  return (await checkActor(rt, actor, action)) as UserRecord;
}


/** Whether a role change gives or takes a privileged role. */
export function touchesPrivilegedRoles(before: readonly Role[], after: readonly Role[]): boolean {
  return PRIVILEGED_ROLES.some((r) => before.includes(r) !== after.includes(r));
}
