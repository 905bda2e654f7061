import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { exportAsciicast } from '../../recordings/asciicast-export.js';
import { AUDIT_CHANNELS } from '../audit/audit-context.js';
import { parseTimeSpec } from '../config/duration.js';
import { toCsv } from '../inventory/csv.js';
import type { CommandQuery, CommandRecord } from '../store/store.js';
import { InputError } from '../identity/users.js';
import { parseAnchor, verifyAll } from '../verify.js';
import { checkActor } from './actor.js';
import { parse, required, UsageError } from './cli-io.js';
import type { CliContext } from './main.js';

const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());

export async function sessionsCommand(ctx: CliContext, args: string[]): Promise<number> {
  const { values } = parse(args, { limit: { type: 'string', default: '50' } });
  const limit = Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 10000) throw new UsageError('--limit must be 1-10000');
  return ctx.withRuntime(async (rt) => {
    await checkActor(rt, ctx.actor, 'session.list');
    const sessions = (await rt.store.listSessions({ limit })).map((s) => ({
      id: s.id, user: s.user, device: s.device, protocol: s.protocol, via: s.via, kind: s.kind, command: s.command, client: s.clientAddress,
      startedAt: iso(s.startedAt), endedAt: iso(s.endedAt), endReason: s.endReason, exitStatus: s.exitStatus, bytesIn: s.bytesIn, bytesOut: s.bytesOut,
      recordingId: s.recordingId, grant: s.grantId,
    }));
    // Commands are what the client sent: quoted, so control characters cannot drive the operator's terminal.
    ctx.out.result(sessions, sessions.map((s) => `${s.id}  ${s.startedAt}  ${s.user} → ${s.device} (${s.via}, ${s.kind}${s.command ? `: ${JSON.stringify(s.command)}` : ''})  ${s.endedAt ? `ended ${s.endReason}` : 'LIVE'}  recording ${s.recordingId}`));
    return 0;
  });
}

export async function recordingCommand(ctx: CliContext, args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'export') throw new UsageError('recording: expected export');
  const { values, positionals } = parse(rest, { format: { type: 'string', default: 'asciicast' }, output: { type: 'string', short: 'o' }, 'no-input': { type: 'boolean', default: false } }, 1);
  const id = required(positionals[0], 'ID (positional)');
  if (values.format !== 'asciicast') throw new UsageError(`unknown format ${JSON.stringify(values.format)} (asciicast)`);
  const out = path.resolve(required(values.output, 'output (-o FILE)'));
  return ctx.withRuntime(async (rt) => {
    await checkActor(rt, ctx.actor, 'recording.read');
    const rec = await rt.store.getRecording(id);
    if (!rec) throw new InputError('NOT_FOUND', `no recording ${id}`);
    const { events } = await exportAsciicast(path.join(rt.config.paths.recordings, rec.path), out, { includeInput: !values['no-input'] });
    await rt.audit.record('recording.exported', { actor: ctx.actor, outcome: 'ok', data: { recording: id, format: 'asciicast', file: out } });
    ctx.out.result({ recording: id, format: 'asciicast', file: out, events, sealed: rec.sealedAt !== null }, [`Wrote ${out} (${events} events); play it with: asciinema play ${out}`]);
    return 0;
  });
}

export async function auditCommand(ctx: CliContext, args: string[]): Promise<number> {
  const { values } = parse(args, { after: { type: 'string', default: '0' }, limit: { type: 'string', default: '1000' }, type: { type: 'string' }, channel: { type: 'string' } });
  if (values.channel !== undefined && !(AUDIT_CHANNELS as readonly string[]).includes(values.channel)) throw new UsageError(`--channel: one of ${AUDIT_CHANNELS.join(', ')}`);
  return ctx.withRuntime(async (rt) => {
    await checkActor(rt, ctx.actor, 'audit.read');
    const entries = await rt.store.listAudit({
      afterSeq: Number(values.after), limit: Number(values.limit), ...(values.type ? { type: values.type } : {}), ...(values.channel ? { channel: values.channel } : {}),
    });
    ctx.out.result(entries, entries.map((e) => `${String(e.seq).padStart(6)} ${e.ts} ${e.type.padEnd(18)} ${e.actor.padEnd(14)} ${(e.channel ?? '-').padEnd(6)} ${e.outcome}${e.code ? ` ${e.code}` : ''} ${JSON.stringify(e.data)}`));
    return 0;
  });
}

export async function verifyCommand(ctx: CliContext, args: string[]): Promise<number> {
  const { values } = parse(args, { anchor: { type: 'string', multiple: true } });
  const anchors = ((values.anchor ?? []) as string[]).map((a) => {
    const parsed = parseAnchor(a);
    if (!parsed) throw new UsageError(`--anchor ${JSON.stringify(a)}: expected SEQ:SHA256HEX, as in the "seq" and "hash" of an audit log line`);
    return parsed;
  });
  return ctx.withRuntime(async (rt) => {
    const r = await verifyAll(rt.config, rt.store, anchors);
    ctx.out.result(r, [
      ...r.problems.map((p) => `FAIL ${p}`),
      `audit chain: ${r.auditEntries} entries verified${r.ok ? '' : ' before the first problem'}`,
      `recordings: ${r.recordingsVerified} sealed and verified, ${r.recordingsUnsealed.length} not sealed (live or interrupted)`,
      r.ok ? 'OK' : 'FAILED',
    ]);
    return r.ok ? 0 : 1;
  });
}

const DECISIONS: ReadonlyArray<CommandRecord['decision']> = ['allow', 'deny', 'review', 'logged'];
const COMMAND_COLUMNS = ['at', 'session', 'user', 'device', 'mode', 'decision', 'rule', 'reviewer', 'exit_status', 'exit_signal', 'line'];

/**
 * The command log across sessions (R-A.3d, R-6.4c): which sessions ran `systemctl restart`, what
 * was denied on ct-01 last week. Newest first; the same filters as GET /api/commands.
 */
export async function commandsCommand(ctx: CliContext, args: string[]): Promise<number> {
  const { values } = parse(args, {
    text: { type: 'string' }, program: { type: 'string' }, device: { type: 'string' }, vendor: { type: 'string' }, session: { type: 'string' },
    decision: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' }, limit: { type: 'string', default: '500' },
    format: { type: 'string', default: 'text' }, output: { type: 'string', short: 'o' },
  });
  if (!['text', 'csv', 'json'].includes(values.format)) throw new UsageError('--format: text, csv or json');
  const limit = Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100_000) throw new UsageError('--limit must be 1-100000');
  const decision = values.decision as CommandRecord['decision'] | undefined;
  if (decision !== undefined && !DECISIONS.includes(decision)) throw new UsageError(`--decision: one of ${DECISIONS.join(', ')}`);
  return ctx.withRuntime(async (rt) => {
    const when = (text: string | undefined, flag: string): number | undefined => {
      if (text === undefined) return undefined;
      try {
        return parseTimeSpec(text, rt.clock());
      } catch (err) {
        throw new UsageError(`--${flag}: ${(err as Error).message}`);
      }
    };
    const since = when(values.from, 'from');
    const until = when(values.to, 'to');
    const query: CommandQuery = {
      limit, ...(values.text ? { text: values.text } : {}), ...(values.program ? { program: values.program } : {}),
      ...(values.device ? { device: values.device } : {}), ...(values.vendor ? { user: values.vendor } : {}),
      ...(values.session ? { session: values.session } : {}), ...(decision ? { decision } : {}),
      ...(since !== undefined ? { since } : {}), ...(until !== undefined ? { until } : {}),
    };
    const rows = (await rt.store.listCommands(query)).map((c) => ({ ...c, at: iso(c.at) as string }));
    const text = values.format === 'csv'
      ? toCsv(COMMAND_COLUMNS, rows.map((c) => ({
        at: c.at, session: c.session, user: c.user, device: c.device, mode: c.mode, decision: c.decision, rule: c.rule, reviewer: c.reviewer,
        exit_status: c.exitStatus, exit_signal: c.exitSignal, line: c.line,
      })))
      : values.format === 'json' || ctx.out.json ? `${JSON.stringify(rows, null, 2)}\n`
        // The line as the vendor typed it, quoted: control characters cannot drive the operator's terminal.
        : rows.map((c) => `${c.at}  ${c.user} → ${c.device}  ${c.session}  ${c.mode} ${c.decision.toUpperCase()}${c.rule ? ` (${c.rule})` : ''}${c.exitStatus !== null ? ` exit ${c.exitStatus}` : c.exitSignal ? ` ${c.exitSignal}` : ''}  ${JSON.stringify(c.line)}\n`).join('');
    if (values.output) {
      writeFileSync(values.output, text);
      await rt.audit.record('commands.exported', { actor: ctx.actor, outcome: 'info', data: { format: values.format, count: rows.length, file: values.output, query: { ...query } } });
    } else {
      process.stdout.write(text);
    }
    return 0;
  });
}
