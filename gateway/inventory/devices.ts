import { isIP } from 'node:net';
import {
  classifyDevice, CONTACTS, EFFECTS, SEVERITIES, USAGE_FORMS, type DeviceLevel,
} from '../../policy/device-classification.js';
import { redecideGrant } from '../../policy/grant-redecision.js';
import { PROTOCOLS, type Protocol } from '../../policy/types.js';
import { revokeGrant } from '../access/requests.js';
import { fingerprint } from '../connectors/host-key.js';
import { InputError, refuse, USER_NAME } from '../identity/users.js';
import type { Runtime } from '../runtime.js';
import type { DeviceClassInputs, DeviceRecord, LifecycleEvent } from '../store/store.js';
import { parseCsv, toCsv } from './csv.js';
import { DEFAULT_PORTS, portOf } from './device-ports.js';

/** What a person registers: the inventory record (R-A.4a) with the inputs of its classification (appendix B). */
export interface DeviceInput {
  name: string;
  host: string;
  protocols: string[];
  ports?: Partial<Record<string, number>>;
  udi: string;
  ip?: string | null;
  mac?: string | null;
  type?: string | null;
  manufacturer?: string | null;
  model?: string | null;
  department?: string | null;
  location?: string | null;
  usageForm: string;
  contact: string;
  severity?: string | null;
  effect?: string | null;
}

const HOST = /^[A-Za-z0-9.:_-]{1,253}$/;
const MAC = /^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/;
/** GS1 / HIBCC UDI-DIs: digits, letters and a little punctuation, parentheses included. */
const UDI = /^[A-Za-z0-9()+./:_-]{1,64}$/;

/** A device registered before classification existed is treated as the highest level. */
export function deviceLevel(d: Pick<DeviceRecord, 'classification'>): DeviceLevel {
  if (!d.classification) return 3;
  const level = classifyDevice(d.classification);
  return level.allow ? level.value : 3;
}

function text(v: string | null | undefined, field: string, max = 100): string | null {
  if (v === null || v === undefined || v.trim() === '') return null;
  if (v.length > max || /\p{Cc}/u.test(v)) throw new InputError('INVALID_INPUT', `${field}: at most ${max} characters on one line`);
  return v.trim();
}

/** Checks one device and builds its record; every problem is an InputError naming the field. */
export function deviceRecordFrom(input: DeviceInput, now: number, actor: string): DeviceRecord {
  if (!USER_NAME.test(input.name)) throw new InputError('INVALID_INPUT', `name: ${JSON.stringify(input.name)} must be 1-64 letters, digits, '.', '_' or '-'`);
  if (!HOST.test(input.host)) throw new InputError('INVALID_INPUT', `host: ${JSON.stringify(input.host)} is not a host name or address`);
  if (input.protocols.length === 0) throw new InputError('INVALID_INPUT', `protocols: name at least one of ${PROTOCOLS.join(', ')}`);
  const bad = input.protocols.find((p) => !(PROTOCOLS as readonly string[]).includes(p));
  if (bad) throw new InputError('INVALID_INPUT', `protocols: unknown protocol ${JSON.stringify(bad)} (${PROTOCOLS.join(', ')})`);
  const protocols = [...new Set(input.protocols)] as Protocol[];
  const ports: Partial<Record<Protocol, number>> = {};
  for (const [p, n] of Object.entries(input.ports ?? {})) {
    if (n === undefined) continue;
    if (!protocols.includes(p as Protocol)) throw new InputError('INVALID_INPUT', `ports: the device does not offer ${p}`);
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InputError('INVALID_INPUT', `ports: ${p} port must be 1-65535`);
    ports[p as Protocol] = n;
  }
  for (const p of protocols) ports[p] ??= DEFAULT_PORTS[p];
  if (!UDI.test(input.udi)) throw new InputError('INVALID_INPUT', `udi: a unique device identifier is required (R-A.4a): 1-64 letters, digits or ( ) + . / : _ -`);
  const ip = text(input.ip, 'ip');
  if (ip !== null && isIP(ip) === 0) throw new InputError('INVALID_INPUT', `ip: ${JSON.stringify(ip)} is not an IPv4 or IPv6 address`);
  const mac = text(input.mac, 'mac');
  if (mac !== null && !MAC.test(mac)) throw new InputError('INVALID_INPUT', `mac: ${JSON.stringify(mac)} is not a MAC address (aa:bb:cc:dd:ee:ff)`);
  const classification: DeviceClassInputs = {
    usageForm: input.usageForm, contact: input.contact as DeviceClassInputs['contact'], severity: text(input.severity, 'severity'), effect: text(input.effect, 'effect'),
  };
  const level = classifyDevice(classification);
  if (!level.allow) refuse(level);
  return {
    name: input.name, host: input.host, ports, protocols, udi: input.udi, ip, mac: mac?.toLowerCase() ?? null,
    type: text(input.type, 'type'), manufacturer: text(input.manufacturer, 'manufacturer'), model: text(input.model, 'model'),
    department: text(input.department, 'department'), location: text(input.location, 'location'),
    classification, state: 'active', lifecycle: [{ type: 'registered', at: now, by: actor, approvedBy: null, details: {} }],
    hostKeyAlgo: null, hostKeyBlob: null, rdpCertSha256: null, createdAt: now,
  };
}

const iso = (t: number): string => new Date(t).toISOString();

/** The whole inventory record, for staff; never a credential, only whether one is stored. */
export function deviceView(d: DeviceRecord, hasCredential?: boolean) {
  const blob = d.hostKeyBlob ? Buffer.from(d.hostKeyBlob, 'base64') : null;
  return {
    name: d.name, host: d.host, protocols: d.protocols, ports: Object.fromEntries(d.protocols.map((p) => [p, portOf(d, p)])), udi: d.udi, ip: d.ip, mac: d.mac,
    type: d.type, manufacturer: d.manufacturer, model: d.model, department: d.department, location: d.location,
    classification: d.classification, level: deviceLevel(d), state: d.state,
    lifecycle: d.lifecycle.map((e) => ({ ...e, at: iso(e.at) })),
    hostKey: blob ? { type: d.hostKeyAlgo, fingerprint: fingerprint(blob) } : null,
    rdpCertificate: d.rdpCertSha256 ? { sha256: d.rdpCertSha256 } : null,
    ...(hasCredential !== undefined ? { credentialStored: hasCredential } : {}),
    createdAt: iso(d.createdAt),
  };
}

/** What a vendor sees when choosing a device to request: what it is and its level, not where it is on the network. */
export function vendorDeviceView(d: DeviceRecord) {
  return {
    name: d.name, type: d.type, manufacturer: d.manufacturer, model: d.model, department: d.department, location: d.location,
    protocols: d.protocols, level: deviceLevel(d), state: d.state,
  };
}

async function existing(rt: Runtime, name: string): Promise<DeviceRecord> {
  const d = await rt.store.getDevice(name);
  if (!d) throw new InputError('DEVICE_UNKNOWN', `no device named ${name}`);
  return d;
}

export async function registerDevice(rt: Runtime, input: DeviceInput, actor: string): Promise<DeviceRecord> {
  const d = deviceRecordFrom(input, rt.clock(), actor);
  try {
    await rt.store.createDevice(d);
  } catch (err) {
    if ((err as { code?: string }).code === 'ALREADY_EXISTS') throw new InputError('ALREADY_EXISTS', `device ${d.name} or UDI ${d.udi ?? ''} is already registered`);
    throw err;
  }
  await rt.audit.record('device.created', { actor, outcome: 'ok', data: auditView(d) });
  return d;
}

const auditView = (d: DeviceRecord): Record<string, unknown> => {
  const { lifecycle: _l, hostKey: _h, ...rest } = deviceView(d);
  return rest;
};

async function transition(rt: Runtime, d: DeviceRecord, state: DeviceRecord['state'], event: LifecycleEvent, auditType: string): Promise<DeviceRecord> {
  const lifecycle = [...d.lifecycle, event];
  await rt.store.updateDevice(d.name, { state, lifecycle });
  await rt.audit.record(auditType, {
    actor: event.by, outcome: 'ok',
    data: { device: d.name, from: d.state, to: state, ...(event.approvedBy ? { approvedBy: event.approvedBy } : {}), ...event.details },
  });
  // Live sessions on the device are re-decided on every node now (a device that is not active ends them).
  await rt.bus.publish({ type: 'access.changed', from: rt.node, device: d.name });
  return { ...d, state, lifecycle };
}

/** R-6.4b: a device back from external repair stays off limits until security has checked it. */
export async function quarantineDevice(rt: Runtime, name: string, reason: string, actor: string): Promise<DeviceRecord> {
  const d = await existing(rt, name);
  if (d.state !== 'active') throw new InputError('INVALID_INPUT', `device ${name} is ${d.state}; only an active device is put in quarantine`);
  const why = text(reason, 'reason', 500);
  if (!why) throw new InputError('INVALID_INPUT', 'reason: say why the device is quarantined (e.g. back from repair at the manufacturer)');
  return transition(rt, d, 'quarantined', { type: 'quarantined', at: rt.clock(), by: actor, approvedBy: null, details: { reason: why } }, 'device.quarantined');
}

/** R-6.4b: the security check; only a pass returns the device to service. */
export async function recordSecurityCheck(rt: Runtime, name: string, check: { passed: boolean; notes: string }, actor: string): Promise<DeviceRecord> {
  const d = await existing(rt, name);
  if (d.state !== 'quarantined') throw new InputError('INVALID_INPUT', `device ${name} is ${d.state}; a security check is recorded for a quarantined device`);
  const notes = text(check.notes, 'notes', 2000);
  if (!notes) throw new InputError('INVALID_INPUT', 'notes: record what was checked (firmware version, malware scan, configuration)');
  const event: LifecycleEvent = { type: 'security_checked', at: rt.clock(), by: actor, approvedBy: null, details: { result: check.passed ? 'passed' : 'failed', notes } };
  return transition(rt, d, check.passed ? 'active' : 'quarantined', event, 'device.security_checked');
}

export const DATA_WIPING = ['completed', 'not-required', 'pending'] as const;

/**
 * disposal is registered (time, method, data wiping) and approved by an admin, and network
 * access is cut at once: grants revoked, live sessions ended on every node, the stored credential
 * destroyed, and the device is never reachable through the gateway again.
 */
export async function decommissionDevice(
  rt: Runtime, name: string, disposal: { method: string; dataWiping: string; disposedAt: number; notes: string | null }, actor: string,
): Promise<{ device: DeviceRecord; grantsRevoked: string[] }> {
  const d = await existing(rt, name);
  if (d.state === 'decommissioned') throw new InputError('INVALID_INPUT', `device ${name} is already decommissioned`);
  const method = text(disposal.method, 'method', 200);
  if (!method) throw new InputError('INVALID_INPUT', 'method: how the device is disposed of (returned to the manufacturer, destroyed, sold…)');
  if (!(DATA_WIPING as readonly string[]).includes(disposal.dataWiping)) throw new InputError('INVALID_INPUT', `data wiping: one of ${DATA_WIPING.join(', ')}`);
  const now = rt.clock();
  const grantsRevoked: string[] = [];
  for (const g of await rt.store.listGrants({ device: name })) {
    if (g.revokedAt !== null || g.notAfter <= now) continue;
    await rt.store.revokeGrant(g.id, now, actor);
    grantsRevoked.push(g.id);
    await rt.audit.record('grant.revoked', { actor, outcome: 'ok', data: { grant: g.id, user: g.user, device: name, reason: 'device decommissioned' } });
  }
  await rt.store.deleteCredential(name);
  const event: LifecycleEvent = {
    type: 'decommissioned', at: now, by: actor, approvedBy: actor,
    details: { method, dataWiping: disposal.dataWiping, disposedAt: iso(disposal.disposedAt), notes: text(disposal.notes, 'notes', 2000), credentialDestroyed: true },
  };
  const device = await transition(rt, d, 'decommissioned', event, 'device.decommissioned');
  return { device, grantsRevoked };
}

/** The fields `device set` may correct: identity and classification (protocols, ports and state have their own commands). */
export type DeviceCorrection = Partial<Pick<DeviceInput, 'host' | 'udi' | 'ip' | 'mac' | 'type' | 'manufacturer' | 'model' | 'department' | 'location' | 'usageForm' | 'contact' | 'severity' | 'effect'>>;

export interface DeviceCorrected {
  device: DeviceRecord;
  changed: Record<string, { from: unknown; to: unknown }>;
  level: { from: DeviceLevel; to: DeviceLevel };
  grantsRevoked: Array<{ grant: string; user: string; code: string; reason: string }>;
}

/**
 * Corrects a device registered with a wrong identity or classification (issue 13). Every field is
 * checked as at registration; the change is audited with each field's old and new value, a new
 * level gets its own entry, and every live grant on the device is decided again under the new
 * level's rule: one it would not give is revoked with the reason, and its sessions end.
 */
export async function correctDevice(
  rt: Runtime, name: string, patch: DeviceCorrection, actor: string,
): Promise<DeviceCorrected> {
  const d = await existing(rt, name);
  if (d.state === 'decommissioned') throw new InputError('DEVICE_DECOMMISSIONED', `device ${name} is decommissioned; its record stays as it was disposed of (R-6.5)`);
  const c = d.classification;
  // A switch between severity (body contact) and effect (none) clears the other one.
  const severity = patch.severity !== undefined ? patch.severity : patch.effect !== undefined ? null : c?.severity ?? null;
  const effect = patch.effect !== undefined ? patch.effect : patch.severity !== undefined ? null : c?.effect ?? null;
  const next = deviceRecordFrom({
    name: d.name, host: patch.host ?? d.host, protocols: d.protocols, ports: d.ports, udi: patch.udi ?? d.udi ?? '',
    ip: patch.ip !== undefined ? patch.ip : d.ip, mac: patch.mac !== undefined ? patch.mac : d.mac,
    type: patch.type !== undefined ? patch.type : d.type, manufacturer: patch.manufacturer !== undefined ? patch.manufacturer : d.manufacturer,
    model: patch.model !== undefined ? patch.model : d.model, department: patch.department !== undefined ? patch.department : d.department,
    location: patch.location !== undefined ? patch.location : d.location,
    usageForm: patch.usageForm ?? c?.usageForm ?? '', contact: patch.contact ?? c?.contact ?? '', severity, effect,
  }, rt.clock(), actor);
  const fields = ['host', 'udi', 'ip', 'mac', 'type', 'manufacturer', 'model', 'department', 'location', 'classification'] as const;
  const changed: DeviceCorrected['changed'] = {};
  for (const f of fields) {
    if (JSON.stringify(d[f]) !== JSON.stringify(next[f])) changed[f] = { from: d[f], to: next[f] };
  }
  const level = { from: deviceLevel(d), to: deviceLevel(next) };
  if (Object.keys(changed).length === 0) return { device: d, changed, level, grantsRevoked: [] };
  if (changed.udi && (await rt.store.listDevices()).some((o) => o.name !== d.name && o.udi === next.udi)) {
    throw new InputError('ALREADY_EXISTS', `UDI ${next.udi ?? ''} is already registered to another device`);
  }
  const updated: DeviceRecord = { ...d, ...Object.fromEntries(fields.map((f) => [f, next[f]])) };
  await rt.store.updateDevice(d.name, Object.fromEntries(fields.map((f) => [f, next[f]])));
  await rt.audit.record('device.updated', { actor, outcome: 'ok', data: { device: d.name, changed, level } });
  const grantsRevoked: DeviceCorrected['grantsRevoked'] = [];
  if (level.from !== level.to) {
    await rt.audit.record('device.level_changed', { actor, outcome: 'info', data: { device: d.name, from: level.from, to: level.to, classification: next.classification } });
    const rule = rt.config.approvalRules[level.to];
    const now = rt.clock();
    for (const g of await rt.store.listGrants({ device: d.name })) {
      if (g.revokedAt !== null || g.notAfter <= now) continue;
      // As the broker resolves it at connection time: the grant's profile, else the level's default.
      const profileName = g.profile ?? rt.config.defaultProfiles[level.to];
      const profile = { name: profileName, mode: (profileName ? rt.config.commandProfiles.get(profileName)?.mode : null) ?? null };
      const request = g.requestId ? await rt.store.getRequest(g.requestId) : null;
      const grantor = g.requestId ? null : g.createdBy.startsWith('local:') ? 'host-operator' as const : await rt.store.getUser(g.createdBy);
      const verdict = redecideGrant(rule, {
        notBefore: g.notBefore, notAfter: g.notAfter, profileMode: profile.mode, profileName: profile.name,
        approvals: g.requestId ? (request?.approvals ?? []).map((a) => ({ approver: a.by, roles: a.roles })) : null,
        grantor: grantor === 'host-operator' ? grantor : grantor ? { roles: grantor.roles } : null,
      });
      if (verdict.allow) continue;
      const reason = `device ${d.name} is now level ${level.to}: ${verdict.detail}`;
      await revokeGrant(rt, null, actor, g.id, reason);
      grantsRevoked.push({ grant: g.id, user: g.user, code: verdict.code, reason });
    }
  }
  // Live sessions are re-decided on every node now (a revoked grant ends its sessions).
  await rt.bus.publish({ type: 'access.changed', from: rt.node, device: d.name });
  return { device: updated, changed, level, grantsRevoked };
}

// ── CSV import and export ──

const CSV_COLUMNS = [
  'name', 'host', 'protocols', 'ssh_port', 'vnc_port', 'rdp_port', 'udi', 'ip', 'mac', 'type', 'manufacturer', 'model', 'department', 'location',
  'usage_form', 'contact', 'severity', 'effect',
] as const;
/** Written on export for people to read; ignored on import (the gateway computes them). */
const EXPORT_ONLY = ['level', 'state'] as const;
const REQUIRED = ['name', 'host', 'protocols', 'udi', 'usage_form', 'contact'] as const;

export function exportDevicesCsv(devices: DeviceRecord[]): string {
  return toCsv([...CSV_COLUMNS, ...EXPORT_ONLY], devices.map((d) => ({
    name: d.name, host: d.host, protocols: d.protocols.join(' '), ssh_port: d.protocols.includes('ssh') ? portOf(d, 'ssh') : null,
    vnc_port: d.protocols.includes('vnc') ? portOf(d, 'vnc') : null, rdp_port: d.protocols.includes('rdp') ? portOf(d, 'rdp') : null,
    udi: d.udi, ip: d.ip, mac: d.mac, type: d.type, manufacturer: d.manufacturer, model: d.model, department: d.department, location: d.location,
    usage_form: d.classification?.usageForm ?? null, contact: d.classification?.contact ?? null, severity: d.classification?.severity ?? null,
    effect: d.classification?.effect ?? null, level: deviceLevel(d), state: d.state,
  })));
}

export interface CsvProblem {
  line: number;
  message: string;
}

function portCell(v: string | undefined, column: string): number | undefined {
  if (v === undefined || v.trim() === '') return undefined;
  const n = Number(v);
  if (!/^\d{1,5}$/.test(v.trim())) throw new InputError('INVALID_INPUT', `${column}: ${JSON.stringify(v)} is not a port number`);
  return n;
}

/**
 * Imports a whole inventory file or nothing of it: every row is checked (and reported with its
 * line number) before anything is written, and the write is one atomic batch.
 */
export async function importDevicesCsv(rt: Runtime, csv: string, actor: string): Promise<{ ok: true; imported: string[] } | { ok: false; problems: CsvProblem[] }> {
  const parsed = parseCsv(csv);
  if (!parsed.ok) return { ok: false, problems: [{ line: parsed.line, message: parsed.message }] };
  const known = new Set<string>([...CSV_COLUMNS, ...EXPORT_ONLY]);
  const unknown = parsed.header.filter((h) => !known.has(h));
  if (unknown.length > 0) return { ok: false, problems: [{ line: 1, message: `unknown column(s) ${unknown.join(', ')}; the columns are ${CSV_COLUMNS.join(', ')}` }] };
  const missing = REQUIRED.filter((c) => !parsed.header.includes(c));
  if (missing.length > 0) return { ok: false, problems: [{ line: 1, message: `missing column(s) ${missing.join(', ')}` }] };
  if (parsed.rows.length === 0) return { ok: false, problems: [{ line: 2, message: 'the file has no devices' }] };

  const now = rt.clock();
  const problems: CsvProblem[] = [];
  const records: DeviceRecord[] = [];
  const existingDevices = await rt.store.listDevices();
  const names = new Map(existingDevices.map((d) => [d.name, 'already registered']));
  const udis = new Map(existingDevices.filter((d) => d.udi).map((d) => [d.udi as string, `already registered to ${d.name}`]));
  for (const { line, values: v } of parsed.rows) {
    try {
      const d = deviceRecordFrom({
        name: v.name ?? '', host: v.host ?? '', protocols: (v.protocols ?? '').split(/[\s;,]+/).filter(Boolean),
        ports: { ssh: portCell(v.ssh_port, 'ssh_port'), vnc: portCell(v.vnc_port, 'vnc_port'), rdp: portCell(v.rdp_port, 'rdp_port') },
        udi: v.udi ?? '', ip: v.ip ?? null, mac: v.mac ?? null, type: v.type ?? null, manufacturer: v.manufacturer ?? null, model: v.model ?? null,
        department: v.department ?? null, location: v.location ?? null, usageForm: v.usage_form ?? '', contact: v.contact ?? '',
        severity: v.severity ?? null, effect: v.effect ?? null,
      }, now, actor);
      const nameClash = names.get(d.name);
      if (nameClash) throw new InputError('ALREADY_EXISTS', `name: device ${d.name} is ${nameClash}`);
      const udiClash = udis.get(d.udi as string);
      if (udiClash) throw new InputError('ALREADY_EXISTS', `udi: ${d.udi as string} is ${udiClash}`);
      names.set(d.name, `named twice in this file (line ${line})`);
      udis.set(d.udi as string, `given twice in this file (line ${line})`);
      records.push(d);
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
      problems.push({ line, message: err.message });
    }
  }
  if (problems.length > 0) return { ok: false, problems };
  try {
    await rt.store.createDevices(records);
  } catch (err) {
    // Someone registered one of these names or UDIs since the check: still nothing was written.
    if ((err as { code?: string }).code === 'ALREADY_EXISTS') return { ok: false, problems: [{ line: 0, message: 'a device name or UDI of this file was registered meanwhile; nothing was imported' }] };
    throw err;
  }
  await rt.audit.record('device.imported', { actor, outcome: 'ok', data: { count: records.length, devices: records.map((d) => d.name) } });
  return { ok: true, imported: records.map((d) => d.name) };
}

export const CLASSIFICATION_CHOICES = { usageForms: USAGE_FORMS, contacts: CONTACTS, severities: SEVERITIES, effects: EFFECTS };
