import { writeFileSync } from 'node:fs';
import { REQUEST_STATUSES } from '../../policy/approval-rules.js';
import { can } from '../../policy/roles.js';
import { maintenanceRecords, maintenanceRecordsCsv } from '../access/maintenance-records.js';
import {
  approveRequest, cancelRequest, createRequest, denyRequest, requestView, revokeRequest, type NarrowingInput, type RequestView,
} from '../access/requests.js';
import { parseDuration, parseTimeSpec } from '../config/duration.js';
import { InputError } from '../identity/users.js';
import type { RequestRecord } from '../store/store.js';
import { checkActor, personActor } from './actor.js';
import { parse, required, UsageError } from './cli-io.js';
import { warnLoosenedRules } from './loosened-rule-warning.js';
import type { CliContext } from './main.js';

function time(text: string | undefined, now: number, flag: string): number | undefined {
  if (text === undefined) return undefined;
  try {
    return parseTimeSpec(text, now);
  } catch (err) {
    throw new UsageError(`--${flag}: ${(err as Error).message}`);
  }
}

const lines = (v: RequestView): string[] => [
  `${v.id}  ${v.status.toUpperCase()}  level ${v.level ?? '?'}  ${v.requester} → ${v.devices.join(', ')} (${v.protocols.join(', ')})`,
  `  ${v.effective.from} – ${v.effective.until}  profile ${v.effective.profile}${v.effective.upload ? '  upload' : ''}${v.effective.download ? '  download' : ''}`,
  `  work order ${JSON.stringify(v.workOrder)}: ${JSON.stringify(v.purpose)}`,
  ...v.changes.map((c) => `  changed by ${c.by} at ${c.at}: profile ${c.from} → ${c.to}, not a narrowing (${c.reason})${c.lapsed.length ? `; the approvals of ${c.lapsed.map((a) => a.by).join(', ')} lapsed` : ''}`),
  ...v.approvals.map((a) => `  approved by ${a.by} (${a.roles.join(', ')}) at ${a.at}${a.narrowing ? ` narrowing ${JSON.stringify(a.narrowing)}` : ''}`),
  ...(v.status === 'pending' && v.stillNeeded.length ? [`  still needed: ${v.stillNeeded.map((s) => s.join(' or ')).join('; and ')}`] : []),
  ...(v.reason ? [`  reason: ${v.reason}`] : []),
  ...(v.grantIds.length ? [`  grants: ${v.grantIds.join(', ')}`] : []),
];

export async function requestCommand(ctx: CliContext, args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'create': {
      const { values } = parse(rest, {
        device: { type: 'string', multiple: true }, protocol: { type: 'string', multiple: true }, purpose: { type: 'string' }, 'work-order': { type: 'string' },
        from: { type: 'string' }, until: { type: 'string' }, duration: { type: 'string' }, profile: { type: 'string' },
        upload: { type: 'boolean', default: false }, download: { type: 'boolean', default: false }, 'file-transfer': { type: 'boolean', default: false },
      });
      if ((values.until === undefined) === (values.duration === undefined)) throw new UsageError('give exactly one of --until or --duration');
      return ctx.withRuntime(async (rt) => {
        const me = await personActor(rt, ctx.actor, 'request.create');
        const now = rt.clock();
        const from = time(required(values.from, 'from'), now, 'from') as number;
        let until: number;
        try {
          until = values.until !== undefined ? (time(values.until, now, 'until') as number) : from + parseDuration(values.duration as string);
        } catch (err) {
          throw new UsageError(`--duration: ${(err as Error).message}`);
        }
        const r = await createRequest(rt, me, {
          devices: (values.device ?? []) as string[], protocols: (values.protocol ?? []) as string[], purpose: values.purpose ?? '', workOrder: values['work-order'] ?? '',
          notBefore: from, notAfter: until, profile: values.profile ?? null,
          // --file-transfer, the option before the split, asks for both directions.
          upload: values.upload || values['file-transfer'], download: values.download || values['file-transfer'],
        });
        const v = await requestView(rt, r);
        warnLoosenedRules(rt.config, [v.level]);
        ctx.out.result(v, [`Requested access ${v.id}; it waits for: ${v.stillNeeded.map((s) => s.join(' or ')).join('; and ')}.`]);
        return 0;
      });
    }
    case 'list': {
      const { values } = parse(rest, { status: { type: 'string' }, mine: { type: 'boolean', default: false } });
      if (values.status && !(REQUEST_STATUSES as readonly string[]).includes(values.status)) throw new UsageError(`--status: one of ${REQUEST_STATUSES.join(', ')}`);
      return ctx.withRuntime(async (rt) => {
        const local = ctx.actor.startsWith('local:');
        const me = local ? null : await rt.store.getUser(ctx.actor);
        if (!local && !me) throw new InputError('FORBIDDEN', `--actor ${ctx.actor} is not a known user`);
        const all = local || (me !== null && can(me.roles, 'request.read_all').allow && !values.mine);
        const records = await rt.store.listRequests({ ...(all ? {} : { requester: ctx.actor }), limit: 1000 });
        const views = (await Promise.all(records.map((r) => requestView(rt, r)))).filter((v) => !values.status || v.status === values.status);
        ctx.out.result(views, views.flatMap(lines));
        return 0;
      });
    }
    case 'show': {
      const { positionals } = parse(rest, {}, 1);
      const id = required(positionals[0], 'ID (positional)');
      return ctx.withRuntime(async (rt) => {
        const r = await rt.store.getRequest(id);
        if (!r) throw new InputError('NOT_FOUND', `no access request ${id}`);
        const v = await requestView(rt, r);
        ctx.out.result(v, lines(v));
        return 0;
      });
    }
    case 'approve': {
      const { values, positionals } = parse(rest, {
        from: { type: 'string' }, until: { type: 'string' }, profile: { type: 'string' }, comment: { type: 'string' },
        'no-upload': { type: 'boolean', default: false }, 'no-download': { type: 'boolean', default: false }, 'no-file-transfer': { type: 'boolean', default: false },
      }, 1);
      const id = required(positionals[0], 'ID (positional)');
      return ctx.withRuntime(async (rt) => {
        const me = await personActor(rt, ctx.actor, 'request.decide');
        const now = rt.clock();
        const from = time(values.from, now, 'from');
        const until = time(values.until, now, 'until');
        const narrowing: NarrowingInput = {
          ...(from !== undefined ? { notBefore: from } : {}), ...(until !== undefined ? { notAfter: until } : {}),
          ...(values.profile ? { profile: values.profile } : {}), 
          ...(values['no-upload'] || values['no-file-transfer'] ? { upload: false } : {}),
          ...(values['no-download'] || values['no-file-transfer'] ? { download: false } : {}),
        };
        const r = await approveRequest(rt, me, id, Object.keys(narrowing).length ? narrowing : null, values.comment ?? null);
        const v = await requestView(rt, (await rt.store.getRequest(id)) as RequestRecord);
        warnLoosenedRules(rt.config, [v.level]);
        ctx.out.result({ ...v, grants: r.grants.map((g) => g.id) }, [
          ...(r.change ? [`Profile ${r.change.from} → ${r.change.to} is a change, not a narrowing (${r.change.reason}): ${r.change.lapsed.length ? `the approvals of ${r.change.lapsed.map((a) => a.by).join(', ')} lapsed` : 'no earlier approval lapsed'}; the requester is told.`] : []),
          r.approved ? `Approved ${id}: grants ${r.grants.map((g) => g.id).join(', ')}.` : `Recorded your approval of ${id}; still needed: ${v.stillNeeded.map((s) => s.join(' or ')).join('; and ')}.`,
        ]);
        return 0;
      });
    }
    case 'deny':
    case 'revoke': {
      const { values, positionals } = parse(rest, { reason: { type: 'string' } }, 1);
      const id = required(positionals[0], 'ID (positional)');
      const reason = required(values.reason, 'reason');
      return ctx.withRuntime(async (rt) => {
        if (sub === 'deny') {
          const me = await personActor(rt, ctx.actor, 'request.decide');
          await denyRequest(rt, me, id, reason);
          ctx.out.result({ id, status: 'denied' }, [`Denied ${id}.`]);
        } else {
          const me = await personActor(rt, ctx.actor, 'grant.revoke');
          const revoked = await revokeRequest(rt, me, id, reason);
          ctx.out.result({ id, status: 'revoked', grantsRevoked: revoked }, [`Revoked ${id}: ${revoked.length} grant(s) ended; live sessions on them end within a second.`]);
        }
        return 0;
      });
    }
    case 'cancel': {
      const { positionals } = parse(rest, {}, 1);
      const id = required(positionals[0], 'ID (positional)');
      return ctx.withRuntime(async (rt) => {
        const me = await personActor(rt, ctx.actor, 'request.create');
        await cancelRequest(rt, me, id);
        ctx.out.result({ id, status: 'cancelled' }, [`Cancelled ${id}.`]);
        return 0;
      });
    }
    default:
      throw new UsageError('request: expected create, list, show, approve, deny, cancel or revoke');
  }
}

export async function recordsCommand(ctx: CliContext, args: string[]): Promise<number> {
  const { values } = parse(args, {
    device: { type: 'string' }, vendor: { type: 'string' }, org: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' },
    limit: { type: 'string', default: '10000' }, format: { type: 'string', default: 'text' }, output: { type: 'string', short: 'o' },
  });
  if (!['text', 'csv', 'json'].includes(values.format)) throw new UsageError('--format: text, csv or json');
  const limit = Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1) throw new UsageError('--limit must be a positive number');
  return ctx.withRuntime(async (rt) => {
    await checkActor(rt, ctx.actor, 'record.read');
    const now = rt.clock();
    const from = time(values.from, now, 'from');
    const to = time(values.to, now, 'to');
    const records = await maintenanceRecords(rt, {
      limit, ...(values.device ? { device: values.device } : {}), ...(values.vendor ? { vendor: values.vendor } : {}), ...(values.org ? { org: values.org } : {}),
      ...(from !== undefined ? { from } : {}), ...(to !== undefined ? { to } : {}),
    });
    const text = values.format === 'csv' ? maintenanceRecordsCsv(records) : values.format === 'json' || ctx.out.json ? `${JSON.stringify(records, null, 2)}\n`
      : records.map((m) => [
        `${m.start}  ${m.vendor} (${m.organisation ?? '-'}) → ${m.device} L${m.deviceLevel ?? '?'}  ${m.endReason ?? 'LIVE'}  WO ${m.workOrder ?? '-'}  approved by ${m.approvers.join(', ') || '-'}  recording ${m.recording}`,
        // What was done: quoted as typed, so control characters cannot drive the operator's terminal.
        ...m.commands.map((c) => `    $ ${c.at} ${c.decision}${c.exitStatus !== null ? ` exit ${c.exitStatus}` : ''}  ${JSON.stringify(c.line)}`),
        ...m.files.map((f) => `    file ${f.at} ${f.op} ${f.outcome} ${JSON.stringify(f.path)}${f.to !== null ? ` -> ${JSON.stringify(f.to)}` : ''}${f.bytes !== null ? ` ${f.bytes} bytes` : ''}${f.sha256 ? ` sha256:${f.sha256}` : ''}`),
      ].join('\n')).map((l) => `${l}\n`).join('');
    if (values.output) {
      writeFileSync(values.output, text);
      await rt.audit.record('records.exported', { actor: ctx.actor, outcome: 'info', data: { format: values.format, count: records.length, file: values.output } });
    } else {
      process.stdout.write(text);
    }
    return 0;
  });
}
