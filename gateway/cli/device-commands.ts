import { readFileSync, writeFileSync } from 'node:fs';
import ssh2 from 'ssh2';
import { fetchHostKey, ConnectorError } from '../connectors/ssh-connector.js';
import { fingerprint, hostKeyAlgorithm } from '../connectors/host-key.js';
import { fetchRdpCertificate, normalizeRdpFingerprint } from '../desktop/rdp-certificate.js';
import { parseTimeSpec } from '../config/duration.js';
import { InputError } from '../identity/users.js';
import { portOf } from '../inventory/device-ports.js';
import {
  correctDevice, DATA_WIPING, decommissionDevice, type DeviceCorrection, deviceView, exportDevicesCsv, importDevicesCsv, quarantineDevice, recordSecurityCheck, registerDevice,
} from '../inventory/devices.js';
import { checkActor, personActor } from './actor.js';
import { parse, readStdinSecret, required, UsageError } from './cli-io.js';
import type { CliContext } from './main.js';

// ssh2 is CommonJS: its named exports are reached through the default export.
const { utils } = ssh2;

/** `--port 22` (the only protocol's port) or `--port ssh=22 --port vnc=5900`; unnamed protocols use their usual port. */
function parsePorts(specs: string[], protocols: string[]): Record<string, number> {
  const ports: Record<string, number> = {};
  for (const spec of specs) {
    const m = /^(?:([a-z]+)=)?(\d{1,5})$/.exec(spec);
    if (!m) throw new UsageError(`--port ${JSON.stringify(spec)}: expected PORT or PROTOCOL=PORT`);
    const p = m[1] ?? (protocols.length === 1 ? protocols[0] : undefined);
    if (!p) throw new UsageError('--port: name the protocol (ssh=22) when the device offers several');
    ports[p] = Number(m[2]);
  }
  return ports;
}

const line = (d: ReturnType<typeof deviceView>): string =>
  `${d.name.padEnd(16)} L${d.level}  ${d.state.padEnd(14)} ${d.host}  ${Object.entries(d.ports).map(([p, n]) => `${p}:${n}`).join(',')}  ${d.manufacturer ?? ''} ${d.model ?? ''}${d.hostKey || !d.protocols.includes('ssh') ? '' : '  (host key not pinned)'}`;

export async function deviceCommand(ctx: CliContext, args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'add': {
      const { values, positionals } = parse(rest, {
        host: { type: 'string' }, port: { type: 'string', multiple: true }, protocol: { type: 'string', multiple: true },
        udi: { type: 'string' }, ip: { type: 'string' }, mac: { type: 'string' }, type: { type: 'string' }, manufacturer: { type: 'string' },
        model: { type: 'string' }, department: { type: 'string' }, location: { type: 'string' },
        'usage-form': { type: 'string' }, contact: { type: 'string' }, severity: { type: 'string' }, effect: { type: 'string' },
      }, 1);
      const name = required(positionals[0], 'NAME (positional)');
      const protocols = (values.protocol ?? []) as string[];
      return ctx.withRuntime(async (rt) => {
        await checkActor(rt, ctx.actor, 'device.manage');
        const d = await registerDevice(rt, {
          name, host: required(values.host, 'host'), protocols, ports: parsePorts((values.port ?? []) as string[], protocols),
          udi: required(values.udi, 'udi'), ip: values.ip ?? null, mac: values.mac ?? null, type: values.type ?? null,
          manufacturer: values.manufacturer ?? null, model: values.model ?? null, department: values.department ?? null, location: values.location ?? null,
          usageForm: required(values['usage-form'], 'usage-form'), contact: required(values.contact, 'contact'),
          severity: values.severity ?? null, effect: values.effect ?? null,
        }, ctx.actor);
        const v = deviceView(d);
        ctx.out.result(v, [`Registered device ${name}, level ${v.level} (${v.host}, ${Object.entries(v.ports).map(([p, n]) => `${p}:${n}`).join(', ')}). Next: device credential, device trust.`]);
        return 0;
      });
    }
    case 'set': {
      const { values, positionals } = parse(rest, {
        host: { type: 'string' }, udi: { type: 'string' }, ip: { type: 'string' }, mac: { type: 'string' }, type: { type: 'string' }, manufacturer: { type: 'string' },
        model: { type: 'string' }, department: { type: 'string' }, location: { type: 'string' },
        'usage-form': { type: 'string' }, contact: { type: 'string' }, severity: { type: 'string' }, effect: { type: 'string' },
      }, 1);
      const name = required(positionals[0], 'NAME (positional)');
      const patch: DeviceCorrection = {
        ...(values.host !== undefined ? { host: values.host } : {}), ...(values.udi !== undefined ? { udi: values.udi } : {}),
        ...(values.ip !== undefined ? { ip: values.ip } : {}), ...(values.mac !== undefined ? { mac: values.mac } : {}),
        ...(values.type !== undefined ? { type: values.type } : {}), ...(values.manufacturer !== undefined ? { manufacturer: values.manufacturer } : {}),
        ...(values.model !== undefined ? { model: values.model } : {}), ...(values.department !== undefined ? { department: values.department } : {}),
        ...(values.location !== undefined ? { location: values.location } : {}), ...(values['usage-form'] !== undefined ? { usageForm: values['usage-form'] } : {}),
        ...(values.contact !== undefined ? { contact: values.contact } : {}), ...(values.severity !== undefined ? { severity: values.severity } : {}),
        ...(values.effect !== undefined ? { effect: values.effect } : {}),
      };
      if (Object.keys(patch).length === 0) throw new UsageError('device set: name at least one field to correct (see portcullis device set --help)');
      return ctx.withRuntime(async (rt) => {
        await checkActor(rt, ctx.actor, 'device.manage');
        const r = await correctDevice(rt, name, patch, ctx.actor);
        const fields = Object.keys(r.changed);
        ctx.out.result({ ...deviceView(r.device), changed: r.changed, levelFrom: r.level.from, grantsRevoked: r.grantsRevoked }, [
          fields.length ? `Corrected ${name}: ${fields.join(', ')}.` : `Nothing to change on ${name}.`,
          ...(r.level.from !== r.level.to ? [`Its level is now ${r.level.to} (was ${r.level.from}); live grants were decided again under the level-${r.level.to} rule.`] : []),
          ...r.grantsRevoked.map((g) => `  revoked grant ${g.grant} of ${g.user}: ${g.reason}`),
        ]);
        return 0;
      });
    }
    case 'import': {
      const { positionals } = parse(rest, {}, 1);
      const file = required(positionals[0], 'FILE (positional)');
      const csv = readFileSync(file, 'utf8');
      return ctx.withRuntime(async (rt) => {
        await checkActor(rt, ctx.actor, 'device.manage');
        const r = await importDevicesCsv(rt, csv, ctx.actor);
        if (!r.ok) {
          ctx.out.result({ imported: 0, problems: r.problems }, [...r.problems.map((p) => `${file}:${p.line}: ${p.message}`), 'Nothing was imported.']);
          return 1;
        }
        ctx.out.result({ imported: r.imported.length, devices: r.imported }, [`Imported ${r.imported.length} device(s): ${r.imported.join(', ')}.`]);
        return 0;
      });
    }
    case 'export': {
      const { values } = parse(rest, { output: { type: 'string', short: 'o' } });
      return ctx.withRuntime(async (rt) => {
        await checkActor(rt, ctx.actor, 'device.read');
        const csv = exportDevicesCsv(await rt.store.listDevices());
        if (values.output) writeFileSync(values.output, csv);
        else process.stdout.write(csv);
        return 0;
      });
    }
    case 'quarantine': {
      const { values, positionals } = parse(rest, { reason: { type: 'string' } }, 1);
      const name = required(positionals[0], 'NAME (positional)');
      return ctx.withRuntime(async (rt) => {
        await checkActor(rt, ctx.actor, 'device.quarantine');
        const d = await quarantineDevice(rt, name, required(values.reason, 'reason'), ctx.actor);
        ctx.out.result(deviceView(d), [`Device ${name} is quarantined (R-6.4b): no sessions and no new grants until security records a passed check.`]);
        return 0;
      });
    }
    case 'check': {
      const { values, positionals } = parse(rest, { passed: { type: 'boolean', default: false }, failed: { type: 'boolean', default: false }, notes: { type: 'string' } }, 1);
      const name = required(positionals[0], 'NAME (positional)');
      if (values.passed === values.failed) throw new UsageError('give exactly one of --passed or --failed');
      return ctx.withRuntime(async (rt) => {
        await personActor(rt, ctx.actor, 'device.security_check');
        const d = await recordSecurityCheck(rt, name, { passed: values.passed, notes: required(values.notes, 'notes') }, ctx.actor);
        ctx.out.result(deviceView(d), [values.passed ? `Security check of ${name} passed; the device is active again.` : `Security check of ${name} failed; it stays quarantined.`]);
        return 0;
      });
    }
    case 'decommission': {
      const { values, positionals } = parse(rest, { method: { type: 'string' }, 'data-wiping': { type: 'string' }, at: { type: 'string' }, notes: { type: 'string' } }, 1);
      const name = required(positionals[0], 'NAME (positional)');
      const wiping = required(values['data-wiping'], 'data-wiping');
      if (!(DATA_WIPING as readonly string[]).includes(wiping)) throw new UsageError(`--data-wiping: one of ${DATA_WIPING.join(', ')}`);
      return ctx.withRuntime(async (rt) => {
        await personActor(rt, ctx.actor, 'device.decommission');
        let at: number;
        try {
          at = values.at ? parseTimeSpec(values.at, rt.clock()) : rt.clock();
        } catch (err) {
          throw new UsageError(`--at: ${(err as Error).message}`);
        }
        const r = await decommissionDevice(rt, name, { method: required(values.method, 'method'), dataWiping: wiping, disposedAt: at, notes: values.notes ?? null }, ctx.actor);
        ctx.out.result({ ...deviceView(r.device), grantsRevoked: r.grantsRevoked }, [
          `Device ${name} is decommissioned (R-6.5): ${r.grantsRevoked.length} grant(s) revoked, its credential destroyed, live sessions end within a second.`,
        ]);
        return 0;
      });
    }
    case 'show': {
      const { positionals } = parse(rest, {}, 1);
      const name = required(positionals[0], 'NAME (positional)');
      return ctx.withRuntime(async (rt) => {
        await checkActor(rt, ctx.actor, 'device.read');
        const d = await rt.store.getDevice(name);
        if (!d) throw new InputError('DEVICE_UNKNOWN', `no device named ${name}`);
        const v = deviceView(d, (await rt.store.getCredential(name)) !== null);
        ctx.out.result(v, [line(v), ...v.lifecycle.map((e) => `  ${e.at} ${e.type} by ${e.by}${Object.keys(e.details).length ? ` ${JSON.stringify(e.details)}` : ''}`)]);
        return 0;
      });
    }
    case 'credential': {
      const { values, positionals } = parse(rest, { username: { type: 'string' }, 'password-stdin': { type: 'boolean', default: false }, 'key-file': { type: 'string' } }, 1);
      const name = required(positionals[0], 'NAME (positional)');
      const username = required(values.username, 'username');
      if (values['password-stdin'] === Boolean(values['key-file'])) throw new UsageError('give exactly one of --password-stdin or --key-file');
      let secret: string;
      let kind: 'password' | 'key';
      if (values['key-file']) {
        secret = readFileSync(values['key-file'], 'utf8');
        const parsed = utils.parseKey(secret);
        if (parsed instanceof Error || !parsed.isPrivateKey()) throw new UsageError('--key-file must hold an unencrypted private key (OpenSSH or PEM format)');
        kind = 'key';
      } else {
        secret = readStdinSecret('device password');
        kind = 'password';
      }
      return ctx.withRuntime(async (rt) => {
        await checkActor(rt, ctx.actor, 'device.manage');
        const d = await rt.store.getDevice(name);
        if (!d) throw new InputError('DEVICE_UNKNOWN', `no device named ${name}`);
        if (d.state === 'decommissioned') throw new InputError('DEVICE_DECOMMISSIONED', `device ${name} is decommissioned; it gets no credential (R-6.5)`);
        await rt.store.putCredential({ device: name, username, kind, sealed: rt.vault.sealCredential(name, secret), updatedAt: rt.clock() });
        // The audit entry says that a credential was set, never what it is.
        await rt.audit.record('device.credential_set', { actor: ctx.actor, outcome: 'ok', data: { device: name, username, kind } });
        ctx.out.result({ device: name, username, kind }, [`Stored a ${kind} credential for ${username}@${name} (encrypted at rest).`]);
        return 0;
      });
    }
    case 'trust': {
      const { values, positionals } = parse(rest, { expect: { type: 'string' }, 'expect-rdp': { type: 'string' } }, 1);
      const name = required(positionals[0], 'NAME (positional)');
      return ctx.withRuntime(async (rt) => {
        await checkActor(rt, ctx.actor, 'device.manage');
        const d = await rt.store.getDevice(name);
        if (!d) throw new InputError('DEVICE_UNKNOWN', `no device named ${name}`);
        if (!d.protocols.includes('ssh') && !d.protocols.includes('rdp')) {
          throw new InputError('INVALID_INPUT', `device ${name} offers ${d.protocols.join(', ')}: VNC has no server identity to pin (its password is the only check)`);
        }
        const result: Record<string, unknown> = { device: name };
        const lines: string[] = [];
        if (d.protocols.includes('ssh')) {
          let blob: Buffer;
          try {
            blob = await fetchHostKey(d.host, portOf(d, 'ssh'), rt.config.ssh.upstream_timeout);
          } catch (err) {
            throw new InputError('DEVICE_UNREACHABLE', `could not fetch the host key of ${name} at ${d.host}:${portOf(d, 'ssh')}: ${err instanceof ConnectorError ? err.detail : (err as Error).message}`);
          }
          const fp = fingerprint(blob);
          const type = hostKeyAlgorithm(blob);
          if (values.expect && values.expect !== fp) {
            await rt.audit.record('device.trust_refused', { actor: ctx.actor, outcome: 'denied', code: 'HOST_KEY_MISMATCH', data: { device: name, presented: fp, expected: values.expect } });
            throw new InputError('HOST_KEY_MISMATCH', `the device presented ${fp}, not the expected ${values.expect}; nothing was pinned`);
          }
          const previous = d.hostKeyBlob ? fingerprint(Buffer.from(d.hostKeyBlob, 'base64')) : null;
          await rt.store.updateDevice(name, { hostKeyAlgo: type, hostKeyBlob: blob.toString('base64') });
          await rt.audit.record('device.trusted', { actor: ctx.actor, outcome: 'ok', data: { device: name, type, fingerprint: fp, previous } });
          Object.assign(result, { type, fingerprint: fp, previous });
          lines.push(`Pinned ${type} host key of ${name}: ${fp}`, ...(previous && previous !== fp ? [`  (replaces ${previous})`] : []),
            'Compare it with the fingerprint on the device (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub).');
        }
        if (d.protocols.includes('rdp')) {
          let cert;
          try {
            cert = await fetchRdpCertificate(d.host, portOf(d, 'rdp'), { timeoutMs: rt.config.ssh.upstream_timeout });
          } catch (err) {
            throw new InputError('DEVICE_UNREACHABLE', `could not fetch the RDP certificate of ${name} at ${d.host}:${portOf(d, 'rdp')}: ${(err as Error).message}`);
          }
          const expected = values['expect-rdp'] ? normalizeRdpFingerprint(values['expect-rdp']) : null;
          if (expected && expected !== cert.fingerprint) {
            await rt.audit.record('device.trust_refused', { actor: ctx.actor, outcome: 'denied', code: 'RDP_CERT_MISMATCH', data: { device: name, presented: cert.fingerprint, expected } });
            throw new InputError('RDP_CERT_MISMATCH', `the device presented RDP certificate ${cert.fingerprint}, not the expected ${expected}; nothing was pinned`);
          }
          const previous = d.rdpCertSha256;
          await rt.store.updateDevice(name, { rdpCertSha256: cert.fingerprint });
          await rt.audit.record('device.trusted', { actor: ctx.actor, outcome: 'ok', data: { device: name, type: 'rdp-certificate', fingerprint: cert.fingerprint, subject: cert.subject, previous } });
          Object.assign(result, { rdpCertificate: { sha256: cert.fingerprint, subject: cert.subject, validTo: cert.validTo }, rdpPrevious: previous });
          lines.push(`Pinned the RDP certificate of ${name} (${cert.subject}): SHA256 ${cert.fingerprint}`, ...(previous && previous !== cert.fingerprint ? [`  (replaces ${previous})`] : []));
        }
        ctx.out.result(result, lines);
        return 0;
      });
    }
    case 'list': {
      parse(rest, {});
      return ctx.withRuntime(async (rt) => {
        await checkActor(rt, ctx.actor, 'device.read');
        const devices = (await rt.store.listDevices()).map((d) => deviceView(d));
        ctx.out.result(devices, devices.map(line));
        return 0;
      });
    }
    default:
      throw new UsageError('device: expected add, set, import, export, list, show, credential, trust, quarantine, check or decommission');
  }
}
