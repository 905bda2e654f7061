import { can, type Action } from '../../policy/roles.js';
import { InputError } from '../identity/users.js';
import type { Runtime } from '../runtime.js';
import type { UserRecord } from '../store/store.js';

/**
 * Who a CLI change is attributed to. The host operator (`local:<os user>`, no --actor) acts with
 * the machine's authority, as `init` does; a named --actor must be a known user whose roles allow
 * the change (the same matrix the API checks), so runbooks that name a person are held to it.
 */
export async function checkActor(rt: Runtime, actor: string, action: Action): Promise<UserRecord | null> {
  if (actor.startsWith('local:')) return null;
  const user = await rt.store.getUser(actor);
  if (!user) throw new InputError('FORBIDDEN', `--actor ${actor} is not a known user; name one, or leave it out to act as the host operator`);
  const may = can(user.roles, action);
  if (!may.allow) {
    await rt.audit.record('cli.refused', { actor, outcome: 'denied', code: 'FORBIDDEN', data: { action, detail: may.detail } });
    throw new InputError('FORBIDDEN', `${actor} may not do this: ${may.detail}`);
  }
  return user;
}

/**
 * Decisions a clause gives to a named person (S-1.3): requests and their approvals, a quarantined
 * device's security check (R-6.4b), a decommissioning. The host operator cannot make them.
 */
export async function personActor(rt: Runtime, actor: string, action: Action): Promise<UserRecord> {
  if (actor.startsWith('local:')) {
    await rt.audit.record('cli.refused', { actor, outcome: 'denied', code: 'FORBIDDEN', data: { action, detail: 'a named person must make this decision' } });
    throw new InputError('FORBIDDEN', `${action} is a named person's decision (R-5.3c, R-6.4b, R-6.5, S-1.3), not the host operator's: give --actor NAME (or set PORTCULLIS_ACTOR)`);
  }
  return (await checkActor(rt, actor, action)) as UserRecord;
}
