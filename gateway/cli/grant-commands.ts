import { randomUUID } from 'node:crypto';
import { decideDirectGrant } from '../../policy/approval-rules.js';
import { checkGrantWindow } from '../../policy/grant-check.js';
import { can } from '../../policy/roles.js';
import { PROTOCOLS, type Protocol } from '../../policy/types.js';
import { parseTimeSpec } from '../config/duration.js';
import { pendingRoleChangeOf } from '../identity/role-changes.js';
import { InputError } from '../identity/users.js';
import type { GrantRecord } from '../store/store.js';
import { revokeGrant } from '../access/requests.js';
import { formatDuration } from '../config/duration.js';
import { deviceLevel } from '../inventory/devices.js';
import { checkActor, personActor } from './actor.js';
import { warnLoosenedRules } from './loosened-rule-warning.js';
import { parse, required, UsageError } from './cli-io.js';
import type { CliContext } from './main.js';

const view = (g: GrantRecord): Record<string, unknown> => ({
  id: g.id, user: g.user, device: g.device, protocol: g.protocol, from: new Date(g.notBefore).toISOString(), until: new Date(g.notAfter).toISOString(),
  createdBy: g.createdBy, revokedAt: g.revokedAt ? new Date(g.revokedAt).toISOString() : null, allowUpload: g.allowUpload, allowDownload: g.allowDownload,
  profile: g.profile, request: g.requestId,
});

export async function grantCommand(ctx: CliContext, args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'add': {
      const { values } = parse(rest, {
        user: { type: 'string' }, device: { type: 'string' }, protocol: { type: 'string' }, from: { type: 'string' }, until: { type: 'string' },
        profile: { type: 'string' },
        upload: { type: 'boolean', default: false }, download: { type: 'boolean', default: false }, 'file-transfer': { type: 'boolean', default: false },
      });
      const user = required(values.user, 'user');
      const device = required(values.device, 'device');
      const protocol = required(values.protocol, 'protocol');
      if (!(PROTOCOLS as readonly string[]).includes(protocol)) throw new UsageError(`unknown protocol ${JSON.stringify(protocol)}`);
      return ctx.withRuntime(async (rt) => {
        const now = rt.clock();
        let notBefore: number;
        let notAfter: number;
        try {
          notBefore = parseTimeSpec(required(values.from, 'from'), now);
          notAfter = parseTimeSpec(required(values.until, 'until'), now);
        } catch (err) {
          if (err instanceof UsageError) throw err;
          throw new UsageError((err as Error).message);
        }
        const window = checkGrantWindow(notBefore, notAfter, now);
        if (!window.allow) throw new InputError('GRANT_INVALID', window.detail);
        // A proven person must hold a role that may grant, and may not grant to themselves (S-1.3).
        // Data export (R-6.3e) needs a named person in charge: not the host operator.
        const actorUser = values.upload || values.download || values['file-transfer'] ? await personActor(rt, ctx.actor, 'grant.create', 'a grant with file transfer (upload or download)') : ctx.person;
        if (actorUser) {
          const may = can(actorUser.roles, 'grant.create');
          if (!may.allow || actorUser.name === user) {
            const detail = may.allow ? 'nobody grants access to themselves' : may.detail;
            await rt.audit.record('grant.refused', { actor: ctx.actor, outcome: 'denied', code: 'FORBIDDEN', data: { user, device, protocol, detail } });
            throw new InputError('FORBIDDEN', `${ctx.actor} may not create this grant: ${detail}`);
          }
        }
        if (!(await rt.store.getUser(user))) throw new InputError('NOT_FOUND', `no user named ${user}`);
        const d = await rt.store.getDevice(device);
        if (!d) throw new InputError('NOT_FOUND', `no device named ${device}`);
        if (!d.protocols.includes(protocol as Protocol)) throw new InputError('GRANT_INVALID', `device ${device} does not offer ${protocol}`);
        if (d.state !== 'active') throw new InputError(d.state === 'quarantined' ? 'DEVICE_QUARANTINED' : 'DEVICE_DECOMMISSIONED', `device ${device} is ${d.state}; no new grants (R-6.4b, R-6.5)`);
        // A direct grant is its grantor's one approval, held to the level's rule, window and modes.
        const level = deviceLevel(d);
        const rule = rt.config.approvalRules[level];
        warnLoosenedRules(rt.config, [level]);
        const direct = decideDirectGrant(rule, actorUser ? { roles: actorUser.roles, roleChangePending: (await pendingRoleChangeOf(rt, actorUser.name)) !== null } : 'host-operator');
        if (!direct.allow) {
          await rt.audit.record('grant.refused', { actor: ctx.actor, outcome: 'denied', code: direct.code, data: { user, device, protocol, level, detail: direct.detail } });
          throw new InputError(direct.code, direct.detail);
        }
        const refuse = async (code: 'WINDOW_TOO_LONG' | 'PROFILE_UNKNOWN' | 'PROFILE_MODE_NOT_ALLOWED', detail: string): Promise<never> => {
          await rt.audit.record('grant.refused', { actor: ctx.actor, outcome: 'denied', code, data: { user, device, protocol, level, profile: values.profile ?? null, detail } });
          throw new InputError(code, detail);
        };
        if (notAfter - notBefore > rule.longestWindowMs) {
          await refuse('WINDOW_TOO_LONG', `level ${level} devices are granted at most ${formatDuration(rule.longestWindowMs)} at a time`);
        }
        // A grant whose profile cannot be resolved would be refused at every connection: refuse it now.
        const profileName = values.profile ?? rt.config.defaultProfiles[level];
        const configured = [...rt.config.commandProfiles.keys()];
        if (profileName === null) {
          await refuse('PROFILE_UNKNOWN', `name a command profile with --profile: level ${level} has no default profile configured${configured.length ? ` (configured: ${configured.join(', ')})` : ''}`);
        }
        const p = rt.config.commandProfiles.get(profileName as string);
        if (!p) await refuse('PROFILE_UNKNOWN', `no command profile named ${JSON.stringify(profileName)}${configured.length ? `; configured: ${configured.join(', ')}` : ''}`);
        const profile = p as NonNullable<typeof p>;
        if (!rule.modes.includes(profile.mode)) await refuse('PROFILE_MODE_NOT_ALLOWED', `profile ${profile.name} runs in ${profile.mode} mode; level ${level} allows ${rule.modes.join(', ')} (R-6.3c)`);
        const g: GrantRecord = {
          id: `g-${randomUUID().slice(0, 8)}`, user, device, protocol: protocol as Protocol, notBefore, notAfter, createdBy: ctx.actor, createdAt: now,
          revokedAt: null, revokedBy: null, requestId: null, profile: profileName,
          // --file-transfer, the option before the split, allows both directions.
          allowUpload: values.upload || values['file-transfer'], allowDownload: values.download || values['file-transfer'],
        };
        await rt.store.createGrant(g);
        await rt.audit.record('grant.created', { actor: ctx.actor, outcome: 'ok', data: view(g) });
        ctx.out.result(view(g), [`Granted ${user} ${protocol} access to ${device} from ${view(g).from} until ${view(g).until} (grant ${g.id}).`]);
        return 0;
      });
    }
    case 'list': {
      const { values } = parse(rest, { user: { type: 'string' }, device: { type: 'string' } });
      return ctx.withRuntime(async (rt) => {
        await checkActor(rt, ctx.actor, 'grant.read_all');
        const grants = (await rt.store.listGrants({ ...(values.user ? { user: values.user } : {}), ...(values.device ? { device: values.device } : {}) })).map(view);
        ctx.out.result(grants, grants.map((g) => `${String(g.id)}  ${String(g.user)} → ${String(g.device)} (${String(g.protocol)})  ${String(g.from)} – ${String(g.until)}${g.revokedAt ? '  REVOKED' : ''}`));
        return 0;
      });
    }
    case 'revoke': {
      const { values, positionals } = parse(rest, { reason: { type: 'string' } }, 1);
      const id = required(positionals[0], 'ID (positional)');
      return ctx.withRuntime(async (rt) => {
        const actor = await checkActor(rt, ctx.actor, 'grant.revoke');
        await revokeGrant(rt, actor, ctx.actor, id, values.reason ?? 'revoked from the command line');
        ctx.out.result({ id, revoked: true }, [`Revoked grant ${id}; live sessions on it end within a second.`]);
        return 0;
      });
    }
    default:
      throw new UsageError('grant: expected add, list or revoke');
  }
}
