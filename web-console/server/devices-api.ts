import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { CONTACTS, EFFECTS, SEVERITIES, USAGE_FORMS } from '../../policy/device-classification.js';
import { PROTOCOLS } from '../../policy/types.js';
import { InputError } from '../../gateway/identity/users.js';
import {
  correctDevice, DATA_WIPING, decommissionDevice, deviceView, exportDevicesCsv, importDevicesCsv, quarantineDevice, recordSecurityCheck, registerDevice, vendorDeviceView,
} from '../../gateway/inventory/devices.js';
import type { Runtime } from '../../gateway/runtime.js';
import { isoTime, nameParam, permits, route } from './api-route.js';

const classificationSchema = z.object({ usageForm: z.string(), contact: z.string(), severity: z.string().nullable(), effect: z.string().nullable() });

export const deviceSchema = z.object({
  name: z.string(), host: z.string(), protocols: z.array(z.string()), ports: z.record(z.string(), z.number()), udi: z.string().nullable(),
  ip: z.string().nullable(), mac: z.string().nullable(), type: z.string().nullable(), manufacturer: z.string().nullable(), model: z.string().nullable(),
  department: z.string().nullable(), location: z.string().nullable(), classification: classificationSchema.nullable(), level: z.number(), state: z.string(),
  lifecycle: z.array(z.object({ type: z.string(), at: z.string(), by: z.string(), approvedBy: z.string().nullable(), details: z.record(z.string(), z.unknown()) })),
  hostKey: z.object({ type: z.string().nullable(), fingerprint: z.string() }).nullable(),
  rdpCertificate: z.object({ sha256: z.string() }).nullable(),
  credentialStored: z.boolean().optional(),
  createdAt: z.string(),
}).meta({ id: 'Device' });

/** The shorter view a vendor gets: what the device is and its level, not its network address. */
export const vendorDeviceSchema = z.object({
  name: z.string(), type: z.string().nullable(), manufacturer: z.string().nullable(), model: z.string().nullable(), department: z.string().nullable(),
  location: z.string().nullable(), protocols: z.array(z.string()), level: z.number(), state: z.string(),
}).meta({ id: 'DeviceSummary' });

const optionalText = z.string().max(100).nullable().optional();

export function registerDevices(app: FastifyInstance, rt: Runtime): void {
  const { store } = rt;
  const byName = async (name: string) => {
    const d = await store.getDevice(name);
    if (!d) throw new InputError('DEVICE_UNKNOWN', `no device named ${name}`);
    return d;
  };

  route(app, {
    method: 'GET', url: '/api/devices', access: 'device.search', tags: ['devices'],
    summary: 'The device inventory; staff see whole records, vendors the summary they choose from (with each device\'s level)',
    query: z.object({ q: z.string().max(100).optional(), level: z.coerce.number().int().min(1).max(3).optional(), state: z.enum(['active', 'quarantined', 'decommissioned']).optional() }),
    response: z.object({ devices: z.array(z.union([deviceSchema, vendorDeviceSchema])) }),
  }, async ({ query, principal }) => {
    const staff = permits(principal, 'device.read');
    const q = query.q?.toLowerCase();
    const devices = (await store.listDevices())
      // A vendor chooses among devices in service only.
      .filter((d) => staff || d.state === 'active')
      .filter((d) => !q || [d.name, d.type, d.manufacturer, d.model, d.department, d.location].some((f) => f?.toLowerCase().includes(q)))
      .map((d) => (staff ? deviceView(d) : vendorDeviceView(d)))
      .filter((d) => (query.level === undefined || d.level === query.level) && (query.state === undefined || d.state === query.state));
    return { devices };
  });

  route(app, {
    method: 'GET', url: '/api/devices/:name', access: 'device.search', tags: ['devices'], summary: 'One device (staff: the whole record with its lifecycle)',
    params: z.object({ name: nameParam }),
    response: z.union([deviceSchema, vendorDeviceSchema]),
  }, async ({ params, principal }) => {
    const d = await byName(params.name);
    if (permits(principal, 'device.read')) return deviceView(d, (await store.getCredential(d.name)) !== null);
    if (d.state !== 'active') throw new InputError('DEVICE_UNKNOWN', `no device named ${params.name}`);
    return vendorDeviceView(d);
  });

  route(app, {
    method: 'POST', url: '/api/devices', access: 'device.manage', tags: ['devices'], status: 201,
    summary: 'Register a device (R-A.4a); its level is computed from the appendix B inputs',
    body: z.object({
      name: nameParam, host: z.string().min(1).max(253), protocols: z.array(z.enum(PROTOCOLS)).min(1),
      ports: z.object({ ssh: z.number().int().optional(), vnc: z.number().int().optional(), rdp: z.number().int().optional() }).optional(),
      udi: z.string().min(1).max(64), ip: optionalText, mac: optionalText, type: optionalText, manufacturer: optionalText, model: optionalText,
      department: optionalText, location: optionalText,
      usageForm: z.enum(USAGE_FORMS), contact: z.enum(CONTACTS), severity: z.enum(SEVERITIES).nullable().optional(), effect: z.enum(EFFECTS).nullable().optional(),
    }),
    response: deviceSchema,
  }, async ({ body, principal }) => deviceView(await registerDevice(rt, body, principal.user.name)));

  route(app, {
    method: 'PATCH', url: '/api/devices/:name', access: 'device.manage', tags: ['devices'],
    summary: 'Correct a device\'s identity or classification; a new level is audited and every live grant on the device is decided again (one the new level would not give is revoked, its sessions end)',
    params: z.object({ name: nameParam }),
    body: z.object({
      host: z.string().min(1).max(253).optional(), udi: z.string().min(1).max(64).optional(), ip: optionalText, mac: optionalText, type: optionalText,
      manufacturer: optionalText, model: optionalText, department: optionalText, location: optionalText,
      usageForm: z.enum(USAGE_FORMS).optional(), contact: z.enum(CONTACTS).optional(), severity: z.enum(SEVERITIES).nullable().optional(), effect: z.enum(EFFECTS).nullable().optional(),
    }).refine((b) => Object.keys(b).length > 0, { message: 'name at least one field to correct' }),
    response: deviceSchema.extend({
      levelFrom: z.number(),
      changed: z.record(z.string(), z.object({ from: z.unknown(), to: z.unknown() })),
      grantsRevoked: z.array(z.object({ grant: z.string(), user: z.string(), code: z.string(), reason: z.string() })),
    }),
  }, async ({ params, body, principal }) => {
    const r = await correctDevice(rt, params.name, body, principal.user.name);
    return { ...deviceView(r.device), levelFrom: r.level.from, changed: r.changed, grantsRevoked: r.grantsRevoked };
  });

  route(app, {
    method: 'POST', url: '/api/devices/import', access: 'device.manage', tags: ['devices'],
    summary: 'Import devices from CSV: every row is checked first; one bad row (reported with its line) imports nothing',
    body: z.object({ csv: z.string().min(1).max(5_000_000) }),
    response: z.object({ imported: z.array(z.string()), problems: z.array(z.object({ line: z.number(), message: z.string() })) }),
  }, async ({ body, principal, reply }) => {
    const r = await importDevicesCsv(rt, body.csv, principal.user.name);
    if (!r.ok) reply.code(400);
    return r.ok ? { imported: r.imported, problems: [] } : { imported: [], problems: r.problems };
  });

  route(app, {
    method: 'GET', url: '/api/devices/export.csv', access: 'device.read', tags: ['devices'], produces: 'text/csv',
    summary: 'The inventory as CSV (the columns import takes, plus level and state)',
    response: z.string(),
  }, async () => exportDevicesCsv(await store.listDevices()));

  route(app, {
    method: 'PUT', url: '/api/devices/:name/credential', access: 'device.manage', tags: ['devices'],
    summary: 'Store the device\'s login (encrypted at rest; never shown again, to anyone)',
    params: z.object({ name: nameParam }),
    body: z.object({ username: z.string().min(1).max(64), password: z.string().min(1).max(1024).optional(), privateKey: z.string().min(1).max(16_384).optional() })
      .refine((b) => !b.password !== !b.privateKey, { message: 'give exactly one of password or privateKey' }),
    response: z.object({ device: z.string(), username: z.string(), kind: z.enum(['password', 'key']) }),
  }, async ({ params, body, principal }) => {
    const d = await byName(params.name);
    if (d.state === 'decommissioned') throw new InputError('DEVICE_DECOMMISSIONED', `device ${d.name} is decommissioned; it gets no credential (R-6.5)`);
    const kind = body.password ? 'password' as const : 'key' as const;
    await store.putCredential({ device: d.name, username: body.username, kind, sealed: rt.vault.sealCredential(d.name, (body.password ?? body.privateKey) as string), updatedAt: rt.clock() });
    await rt.audit.record('device.credential_set', { actor: principal.user.name, outcome: 'ok', data: { device: d.name, username: body.username, kind, via: 'api' } });
    return { device: d.name, username: body.username, kind };
  });

  route(app, {
    method: 'POST', url: '/api/devices/:name/quarantine', access: 'device.quarantine', tags: ['devices'],
    summary: 'Put a device back from external repair in quarantine (R-6.4b): no sessions or new grants until security checks it',
    params: z.object({ name: nameParam }), body: z.object({ reason: z.string().min(1).max(500) }), response: deviceSchema,
  }, async ({ params, body, principal }) => deviceView(await quarantineDevice(rt, params.name, body.reason, principal.user.name)));

  route(app, {
    method: 'POST', url: '/api/devices/:name/security-check', access: 'device.security_check', tags: ['devices'],
    summary: 'Record the security check of a quarantined device (R-6.4b); a pass returns it to service',
    params: z.object({ name: nameParam }), body: z.object({ passed: z.boolean(), notes: z.string().min(1).max(2000) }), response: deviceSchema,
  }, async ({ params, body, principal }) => deviceView(await recordSecurityCheck(rt, params.name, body, principal.user.name)));

  route(app, {
    method: 'POST', url: '/api/devices/:name/decommission', access: 'device.decommission', tags: ['devices'],
    summary: 'Decommission a device (R-6.5): disposal record, grants revoked, sessions ended, credential destroyed',
    params: z.object({ name: nameParam }),
    body: z.object({ method: z.string().min(1).max(200), dataWiping: z.enum(DATA_WIPING), disposedAt: isoTime.optional(), notes: z.string().max(2000).nullable().optional() }),
    response: deviceSchema.extend({ grantsRevoked: z.array(z.string()) }),
  }, async ({ params, body, principal }) => {
    const r = await decommissionDevice(rt, params.name, { method: body.method, dataWiping: body.dataWiping, disposedAt: body.disposedAt ?? rt.clock(), notes: body.notes ?? null }, principal.user.name);
    return { ...deviceView(r.device), grantsRevoked: r.grantsRevoked };
  });
}
