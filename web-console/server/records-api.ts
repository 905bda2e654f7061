import { AUDIT_CHANNELS } from '../../gateway/audit/audit-context.js';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { describeProfile } from '../../policy/command-policy.js';
import { DEVICE_LEVELS } from '../../policy/device-classification.js';
import { maintenanceRecords, maintenanceRecordsCsv, type MaintenanceQuery } from '../../gateway/access/maintenance-records.js';
import type { Runtime } from '../../gateway/runtime.js';
import { verifyAll } from '../../gateway/verify.js';
import { isoTime, route } from './api-route.js';

const recordSchema = z.object({
  session: z.string(), vendor: z.string(), organisation: z.string().nullable(), device: z.string(), deviceLevel: z.number().nullable(), protocol: z.string(),
  via: z.string(), start: z.string(), end: z.string().nullable(), endReason: z.string().nullable(), approvers: z.array(z.string()), request: z.string().nullable(),
  workOrder: z.string().nullable(), purpose: z.string().nullable(), bytesIn: z.number(), bytesOut: z.number(), recording: z.string(), node: z.string(),
  commands: z.array(z.object({ at: z.string(), line: z.string(), decision: z.string(), exitStatus: z.number().nullable() })),
  files: z.array(z.object({
    at: z.string(), op: z.string(), path: z.string(), to: z.string().nullable(), bytes: z.number().nullable(), sha256: z.string().nullable(), outcome: z.string(),
  })),
}).meta({ id: 'MaintenanceRecord' });

const recordQuery = z.object({
  device: z.string().max(64).optional(), vendor: z.string().max(64).optional(), org: z.string().max(64).optional(),
  from: isoTime.optional(), to: isoTime.optional(), limit: z.coerce.number().int().min(1).max(100_000).default(1000),
});

const toQuery = (q: z.output<typeof recordQuery>): MaintenanceQuery => ({
  limit: q.limit, ...(q.device ? { device: q.device } : {}), ...(q.vendor ? { vendor: q.vendor } : {}), ...(q.org ? { org: q.org } : {}),
  ...(q.from !== undefined ? { from: q.from } : {}), ...(q.to !== undefined ? { to: q.to } : {}),
});

const auditSchema = z.object({
  seq: z.number(), ts: z.string(), type: z.string(), actor: z.string(), outcome: z.string(), code: z.string().nullable(), data: z.record(z.string(), z.unknown()),
  channel: z.string().nullable().describe('web, ssh, cli, token, sso or system; null on entries from before channels were recorded'),
  source: z.string().nullable().describe('the client address, or the OS user of a CLI run'),
  prevHash: z.string(), hash: z.string(),
}).meta({ id: 'AuditEntry' });

export function registerRecords(app: FastifyInstance, rt: Runtime): void {
  route(app, {
    method: 'GET', url: '/api/records', access: 'record.read', tags: ['records'],
    summary: 'Maintenance records (R-6.4c): one per session, with vendor, organisation, device level, approvers, work order; newest first',
    query: recordQuery, response: z.object({ records: z.array(recordSchema) }),
  }, async ({ query }) => ({ records: await maintenanceRecords(rt, toQuery(query)) }));

  route(app, {
    method: 'GET', url: '/api/records/export.csv', access: 'record.read', tags: ['records'], produces: 'text/csv',
    summary: 'The same maintenance records as CSV', query: recordQuery, response: z.string(),
  }, async ({ query, principal }) => {
    const records = await maintenanceRecords(rt, toQuery(query));
    await rt.audit.record('records.exported', { actor: principal.user.name, outcome: 'info', data: { format: 'csv', count: records.length, query } });
    return maintenanceRecordsCsv(records);
  });

  route(app, {
    method: 'GET', url: '/api/audit', access: 'audit.read', tags: ['audit'],
    summary: 'Audit entries in chain order after a sequence number, or newest first (order=desc) before one; filtered by type, actor, outcome, channel, time (from/to, inclusive) and a literal text in the data',
    query: z.object({
      after: z.coerce.number().int().min(0).default(0), before: z.coerce.number().int().min(1).optional(), order: z.enum(['asc', 'desc']).default('asc'),
      limit: z.coerce.number().int().min(1).max(5000).default(500), type: z.string().max(64).optional(),
      actor: z.string().min(1).max(128).optional(), outcome: z.enum(['ok', 'denied', 'info']).optional(), channel: z.enum(AUDIT_CHANNELS).optional(),
      from: isoTime.optional(), to: isoTime.optional(), text: z.string().min(1).max(200).optional(),
    }),
    response: z.object({ entries: z.array(auditSchema) }),
  }, async ({ query: q }) => ({
    entries: await rt.store.listAudit({
      afterSeq: q.after, ...(q.before !== undefined ? { beforeSeq: q.before } : {}), order: q.order, limit: q.limit, ...(q.type ? { type: q.type } : {}), ...(q.actor ? { actor: q.actor } : {}), ...(q.outcome ? { outcome: q.outcome } : {}),
      ...(q.channel ? { channel: q.channel } : {}),
      // Stored times are ISO UTC strings, which order as the instants do.
      ...(q.from !== undefined ? { since: new Date(q.from).toISOString() } : {}), ...(q.to !== undefined ? { until: new Date(q.to).toISOString() } : {}),
      ...(q.text ? { text: q.text } : {}),
    }),
  }));

  route(app, {
    method: 'POST', url: '/api/audit/verify', access: 'audit.read', tags: ['audit'],
    summary: 'Check the audit hash chain and every sealed recording (S-3.5); optional anchors catch a cut-off or rewritten chain',
    body: z.object({ anchors: z.array(z.object({ seq: z.number().int().min(1), hash: z.string().regex(/^[0-9a-f]{64}$/) })).max(100).default([]) }),
    response: z.object({ ok: z.boolean(), auditEntries: z.number(), recordingsVerified: z.number(), recordingsUnsealed: z.array(z.string()), problems: z.array(z.string()) }),
  }, async ({ body, principal }) => {
    const report = await verifyAll(rt.config, rt.store, body.anchors);
    await rt.audit.record('audit.verified', { actor: principal.user.name, outcome: report.ok ? 'ok' : 'denied', data: { ok: report.ok, entries: report.auditEntries, recordings: report.recordingsVerified, problems: report.problems.slice(0, 20) } });
    return report;
  });

  route(app, {
    method: 'GET', url: '/api/policy', access: 'signed-in', tags: ['policy'],
    summary: 'The approval rule of each device level and the command profiles, as configured (read-only)',
    response: z.object({
      levels: z.array(z.object({
        level: z.number(), approvals: z.array(z.array(z.string())), longestWindowMinutes: z.number(), modes: z.array(z.string()), alertSecurityOnStart: z.boolean(),
        defaultProfile: z.string().nullable(),
      })),
      profiles: z.array(z.object({ name: z.string(), mode: z.string(), description: z.array(z.string()) })),
    }),
  }, async () => ({
    levels: DEVICE_LEVELS.map((level) => {
      const r = rt.config.approvalRules[level];
      return {
        level, approvals: r.approvals.map((s) => [...s]), longestWindowMinutes: r.longestWindowMs / 60_000, modes: [...r.modes], alertSecurityOnStart: r.alertSecurityOnStart,
        defaultProfile: rt.config.defaultProfiles[level],
      };
    }),
    profiles: [...rt.config.commandProfiles.values()].map((p) => ({ name: p.name, mode: p.mode, description: describeProfile(p) })),
  }));
}
