import { readFileSync } from 'node:fs';
import ssh2 from 'ssh2';
import { PROTOCOLS, type Protocol } from '../../policy/types.js';
import { fetchHostKey, ConnectorError } from '../connectors/ssh-connector.js';
import { fingerprint, hostKeyAlgorithm } from '../connectors/host-key.js';
import { InputError, USER_NAME } from '../identity/users.js';
import { DEFAULT_PORTS, portOf } from '../inventory/device-ports.js';
import type { DeviceRecord } from '../store/store.js';
import { parse, readStdinSecret, required, UsageError } from './cli-io.js';
import type { CliContext } from './main.js';

// ssh2 is CommonJS: its named exports are reached through the default export.
const { utils } = ssh2;

const HOST = /^[A-Za-z0-9.:_-]{1,253}$/;
const MAC = /^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/;

function publicView(d: DeviceRecord): Record<string, unknown> {
  const blob = d.hostKeyBlob ? Buffer.from(d.hostKeyBlob, 'base64') : null;
  return {
    name: d.name, host: d.host, ports: d.ports, protocols: d.protocols, udi: d.udi, ip: d.ip, mac: d.mac, state: d.state,
    hostKey: blob ? { type: d.hostKeyAlgo, fingerprint: fingerprint(blob) } : null,
  };
}

/** `--port 22` (the only protocol's port) or `--port ssh=22 --port vnc=5900`; unnamed protocols use their usual port. */
function parsePorts(specs: string[], protocols: Protocol[]): Partial<Record<Protocol, number>> {
  const ports: Partial<Record<Protocol, number>> = {};
  for (const spec of specs) {
    const m = /^(?:([a-z]+)=)?(\d{1,5})$/.exec(spec);
    const n = Number(m?.[2]);
    if (!m || n < 1 || n > 65535) throw new UsageError(`--port ${JSON.stringify(spec)}: expected PORT or PROTOCOL=PORT with a port 1-65535`);
    const p = (m[1] ?? (protocols.length === 1 ? protocols[0] : undefined)) as Protocol | undefined;
    if (!p) throw new UsageError('--port: name the protocol (ssh=22) when the device offers several');
    if (!protocols.includes(p)) throw new UsageError(`--port ${spec}: the device does not offer ${p}`);
    ports[p] = n;
  }
  for (const p of protocols) ports[p] ??= DEFAULT_PORTS[p];
  return ports;
}

export async function deviceCommand(ctx: CliContext, args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'add': {
      const { values, positionals } = parse(rest, {
        host: { type: 'string' }, port: { type: 'string', multiple: true }, protocol: { type: 'string', multiple: true },
        udi: { type: 'string' }, ip: { type: 'string' }, mac: { type: 'string' },
      }, 1);
      const name = required(positionals[0], 'NAME (positional)');
      if (!USER_NAME.test(name)) throw new UsageError(`device name ${JSON.stringify(name)} must be 1-64 letters, digits, '.', '_' or '-'`);
      const host = required(values.host, 'host');
      if (!HOST.test(host)) throw new UsageError(`--host ${JSON.stringify(host)} is not a host name or address`);
      const protocols = (values.protocol ?? []) as string[];
      if (protocols.length === 0) throw new UsageError(`--protocol is required (${PROTOCOLS.join(', ')})`);
      const badP = protocols.find((p) => !(PROTOCOLS as readonly string[]).includes(p));
      if (badP) throw new UsageError(`unknown protocol ${JSON.stringify(badP)} (${PROTOCOLS.join(', ')})`);
      const ports = parsePorts((values.port ?? []) as string[], protocols as Protocol[]);
      if (values.mac && !MAC.test(values.mac)) throw new UsageError(`--mac ${JSON.stringify(values.mac)} is not a MAC address (aa:bb:cc:dd:ee:ff)`);
      return ctx.withRuntime(async (rt) => {
        const d: DeviceRecord = {
          name, host, ports, protocols: protocols as Protocol[], udi: values.udi ?? null, ip: values.ip ?? null, mac: values.mac?.toLowerCase() ?? null,
          type: null, manufacturer: null, model: null, department: null, location: null, classification: null, lifecycle: [],
          state: 'active', hostKeyAlgo: null, hostKeyBlob: null, createdAt: rt.clock(),
        };
        try {
          await rt.store.createDevice(d);
        } catch (err) {
          if ((err as { code?: string }).code === 'ALREADY_EXISTS') throw new InputError('ALREADY_EXISTS', `device ${name} or UDI ${values.udi ?? ''} is already registered`);
          throw err;
        }
        await rt.audit.record('device.created', { actor: ctx.actor, outcome: 'ok', data: publicView(d) });
        ctx.out.result(publicView(d), [`Registered device ${name} (${host}, ${protocols.map((p) => `${p}:${portOf(d, p as Protocol)}`).join(', ')}). Next: device credential, device trust.`]);
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
        if (!(await rt.store.getDevice(name))) throw new InputError('NOT_FOUND', `no device named ${name}`);
        await rt.store.putCredential({ device: name, username, kind, sealed: rt.vault.sealCredential(name, secret), updatedAt: rt.clock() });
        // The audit entry says that a credential was set, never what it is.
        await rt.audit.record('device.credential_set', { actor: ctx.actor, outcome: 'ok', data: { device: name, username, kind } });
        ctx.out.result({ device: name, username, kind }, [`Stored a ${kind} credential for ${username}@${name} (encrypted at rest).`]);
        return 0;
      });
    }
    case 'trust': {
      const { values, positionals } = parse(rest, { expect: { type: 'string' } }, 1);
      const name = required(positionals[0], 'NAME (positional)');
      return ctx.withRuntime(async (rt) => {
        const d = await rt.store.getDevice(name);
        if (!d) throw new InputError('NOT_FOUND', `no device named ${name}`);
        let blob: Buffer;
        try {
          blob = await fetchHostKey(d.host, portOf(d, 'ssh'), rt.config.ssh.upstream_timeout);
        } catch (err) {
          throw new InputError('NOT_FOUND', `could not fetch the host key of ${name} at ${d.host}:${portOf(d, 'ssh')}: ${err instanceof ConnectorError ? err.detail : (err as Error).message}`);
        }
        const fp = fingerprint(blob);
        const type = hostKeyAlgorithm(blob);
        if (values.expect && values.expect !== fp) {
          await rt.audit.record('device.trust_refused', { actor: ctx.actor, outcome: 'denied', code: 'HOST_KEY_MISMATCH', data: { device: name, presented: fp, expected: values.expect } });
          throw new InputError('INVALID_INPUT', `the device presented ${fp}, not the expected ${values.expect}; nothing was pinned`);
        }
        const previous = d.hostKeyBlob ? fingerprint(Buffer.from(d.hostKeyBlob, 'base64')) : null;
        await rt.store.updateDevice(name, { hostKeyAlgo: type, hostKeyBlob: blob.toString('base64') });
        await rt.audit.record('device.trusted', { actor: ctx.actor, outcome: 'ok', data: { device: name, type, fingerprint: fp, previous } });
        ctx.out.result({ device: name, type, fingerprint: fp, previous }, [
          `Pinned ${type} host key of ${name}: ${fp}`,
          ...(previous && previous !== fp ? [`  (replaces ${previous})`] : []),
          'Compare it with the fingerprint on the device (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub).',
        ]);
        return 0;
      });
    }
    case 'list': {
      parse(rest, {});
      return ctx.withRuntime(async (rt) => {
        const devices = (await rt.store.listDevices()).map(publicView);
        ctx.out.result(devices, devices.map((d) => `${String(d.name).padEnd(20)} ${String(d.host)}  ${Object.entries(d.ports as Record<string, number>).map(([p, n]) => `${p}:${n}`).join(',')}  ${String(d.state)}${d.hostKey ? '' : '  (host key not pinned)'}`));
        return 0;
      });
    }
    default:
      throw new UsageError('device: expected add, credential, trust or list');
  }
}
