import { toCsv } from '../inventory/csv.js';
import { deviceLevel } from '../inventory/devices.js';
import type { Runtime } from '../runtime.js';
import type { DeviceRecord, GrantRecord, OrgRecord, RequestRecord, UserRecord } from '../store/store.js';

/**
 * R-6.4c: every session is a maintenance record — who (vendor and organisation), on which device
 * (and its level), when, why (purpose, work order), who approved it, how it ended, how much went
 * each way, and where its recording is. Built from the session, its grant, the request behind the
 * grant, and the people and device as the store holds them.
 */
export interface MaintenanceQuery {
  device?: string;
  /** A vendor's user name. */
  vendor?: string;
  /** A vendor organisation id. */
  org?: string;
  from?: number;
  to?: number;
  limit: number;
}

export interface MaintenanceRecord {
  session: string;
  vendor: string;
  organisation: string | null;
  device: string;
  deviceLevel: number | null;
  protocol: string;
  via: string;
  start: string;
  end: string | null;
  endReason: string | null;
  approvers: string[];
  request: string | null;
  workOrder: string | null;
  purpose: string | null;
  bytesIn: number;
  bytesOut: number;
  recording: string;
  node: string;
  /** What was done (R-6.4c asks for the content of the maintenance): the session's command lines, oldest first… */
  commands: MaintenanceCommand[];
  /** …and its files, as the transfer audit saw them (R-6.3e). */
  files: MaintenanceFile[];
}

export interface MaintenanceCommand {
  at: string;
  line: string;
  decision: string;
  exitStatus: number | null;
}

export interface MaintenanceFile {
  at: string;
  op: string;
  path: string;
  to: string | null;
  bytes: number | null;
  sha256: string | null;
  outcome: string;
}

/** A session's command lines in a record, at most (a record is a summary; the command log keeps them all). */
export const RECORD_COMMANDS_MAX = 2000;

const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());

/** Looks each record up once however many sessions share it. */
function memo<T>(get: (key: string) => Promise<T | null>): (key: string | null) => Promise<T | null> {
  const cache = new Map<string, Promise<T | null>>();
  return (key) => {
    if (key === null) return Promise.resolve(null);
    let p = cache.get(key);
    if (!p) {
      p = get(key);
      cache.set(key, p);
    }
    return p;
  };
}

export async function maintenanceRecords(rt: Runtime, q: MaintenanceQuery): Promise<MaintenanceRecord[]> {
  const { store } = rt;
  const grant = memo<GrantRecord>((id) => store.getGrant(id));
  const request = memo<RequestRecord>((id) => store.getRequest(id));
  const user = memo<UserRecord>((name) => store.getUser(name));
  const org = memo<OrgRecord>((name) => store.getOrg(name));
  const device = memo<DeviceRecord>((name) => store.getDevice(name));
  // An organisation filter is applied after the lookup: fetch generously, then cut to the limit.
  const sessions = await store.listSessions({
    limit: q.org ? Math.max(q.limit * 10, 1000) : q.limit,
    ...(q.vendor ? { user: q.vendor } : {}), ...(q.device ? { device: q.device } : {}),
    ...(q.from !== undefined ? { from: q.from } : {}), ...(q.to !== undefined ? { to: q.to } : {}),
  });
  const files = await filesBySession(rt, sessions);
  const out: MaintenanceRecord[] = [];
  for (const s of sessions) {
    const [g, u, d] = await Promise.all([grant(s.grantId), user(s.user), device(s.device)]);
    if (q.org && u?.org !== q.org) continue;
    const [r, o, commands] = await Promise.all([request(g?.requestId ?? null), org(u?.org ?? null), store.listCommands({ session: s.id, limit: RECORD_COMMANDS_MAX })]);
    out.push({
      session: s.id, vendor: s.user, organisation: o?.displayName ?? u?.org ?? null, device: s.device, deviceLevel: d ? deviceLevel(d) : null,
      protocol: s.protocol, via: s.via, start: iso(s.startedAt) as string, end: iso(s.endedAt), endReason: s.endReason,
      // Without a request the grant's creator approved it directly (an admin's grant).
      approvers: r ? r.approvals.map((a) => a.by) : g ? [g.createdBy] : [],
      request: r?.id ?? null, workOrder: r?.workOrder ?? null, purpose: r?.purpose ?? null,
      bytesIn: s.bytesIn, bytesOut: s.bytesOut, recording: s.recordingId, node: s.node,
      commands: commands.reverse().map((c) => ({ at: iso(c.at) as string, line: c.line, decision: c.decision, exitStatus: c.exitStatus })),
      files: files.get(s.id) ?? [],
    });
    if (out.length >= q.limit) break;
  }
  return out;
}

/**
 * The sessions' file entries, read once for the time the sessions span (not once per session):
 * `file.transferred` audit entries, grouped by session, oldest first.
 */
async function filesBySession(rt: Runtime, sessions: ReadonlyArray<{ id: string; startedAt: number }>): Promise<Map<string, MaintenanceFile[]>> {
  const bySession = new Map<string, MaintenanceFile[]>();
  if (sessions.length === 0) return bySession;
  const wanted = new Set(sessions.map((s) => s.id));
  const since = new Date(Math.min(...sessions.map((s) => s.startedAt))).toISOString();
  let after = 0;
  for (;;) {
    const page = await rt.store.listAudit({ type: 'file.transferred', since, afterSeq: after, limit: 1000 });
    for (const e of page) {
      const d = e.data as { session?: unknown; op?: unknown; path?: unknown; to?: unknown; bytes?: unknown; sha256?: unknown; outcome?: unknown };
      if (typeof d.session !== 'string' || !wanted.has(d.session)) continue;
      const list = bySession.get(d.session) ?? [];
      list.push({
        at: e.ts, op: String(d.op), path: String(d.path), to: typeof d.to === 'string' ? d.to : null,
        bytes: typeof d.bytes === 'number' ? d.bytes : null, sha256: typeof d.sha256 === 'string' ? d.sha256 : null, outcome: String(d.outcome),
      });
      bySession.set(d.session, list);
    }
    if (page.length < 1000) return bySession;
    after = page[page.length - 1]?.seq ?? after;
  }
}

const COLUMNS = [
  'session', 'vendor', 'organisation', 'device', 'device_level', 'protocol', 'via', 'start', 'end', 'end_reason', 'approvers', 'request',
  'work_order', 'purpose', 'bytes_in', 'bytes_out', 'recording', 'node', 'commands', 'files',
];

export function maintenanceRecordsCsv(records: MaintenanceRecord[]): string {
  return toCsv(COLUMNS, records.map((m) => ({
    session: m.session, vendor: m.vendor, organisation: m.organisation, device: m.device, device_level: m.deviceLevel, protocol: m.protocol, via: m.via,
    start: m.start, end: m.end, end_reason: m.endReason, approvers: m.approvers.join(' '), request: m.request, work_order: m.workOrder,
    purpose: m.purpose, bytes_in: m.bytesIn, bytes_out: m.bytesOut, recording: m.recording, node: m.node,
    // One line per command or file inside the cell (CSV quotes it): time, decision, the line.
    commands: m.commands.map((c) => `${c.at} ${c.decision} ${c.line.replace(/[\r\n]+/g, ' ')}`).join('\n'),
    files: m.files.map((f) => [f.at, f.op, f.outcome, f.path, ...(f.to !== null ? [`-> ${f.to}`] : []), ...(f.bytes !== null ? [`${f.bytes} bytes`] : []), ...(f.sha256 ? [`sha256:${f.sha256}`] : [])].join(' ')).join('\n'),
  })));
}
