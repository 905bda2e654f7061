import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Role } from '../../policy/types.js';
import { startDeviceSshd, type DeviceSshd } from './device-sshd.js';
import { CLASS_OF_LEVEL, runCli, TEST_POLICY_TOML, type CliResult } from './gateway-fixture.js';
import { spawnGateway, type GatewayProcess } from './gateway-process.js';
import { openTestRedisStore, TEST_REDIS_URL, uniquePrefix } from './redis.js';
import { runSsh, type SshRun } from './ssh-client.js';
import { staffInProcess } from './staff-in-process.js';

export interface NodeUser { name: string; password: string; secret: string }

/**
 * Two `portcullis serve` processes (gw-a, gw-b) on one Redis prefix, sharing keys, certificate,
 * master key and recordings, with one level-2 SSH device `ct-01` (a real sshd) registered,
 * credentialed and trusted. What a cluster test needs around it, stopped and removed by stop().
 */
export interface TwoNodes {
  a: GatewayProcess;
  b: GatewayProcess;
  device: DeviceSshd;
  /** The CLI against node A's configuration; a refusal throws with its stderr. */
  cli(args: string[], stdin?: string): Promise<CliResult>;
  /** A vendor through the CLI; staff in-process (a privileged role is not the host operator's to give). */
  addUser(name: string, role?: string): Promise<NodeUser>;
  /** A one-hour SSH grant on ct-01. */
  grant(user: string): Promise<CliResult>;
  /** An SSH session through a node, `started` once the device has answered (it stays open until ended). */
  openSession(node: GatewayProcess, u: NodeUser): { started: Promise<void>; done: Promise<SshRun> };
  stop(): Promise<void>;
}

export async function startTwoNodes(opts: { tag: string; extraToml?: string[] }): Promise<TwoNodes> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `pc-${opts.tag}-`));
  const prefix = uniquePrefix();
  const nodeConfig = (node: string): string => {
    const file = path.join(dir, `${node}.toml`);
    writeFileSync(file, [
      `data_dir = "./${node}"`,
      '[ssh]', 'listen = "127.0.0.1:0"', 'host_key = "./shared/ssh_host_ed25519_key"',
      '[web]', 'listen = "127.0.0.1:0"', 'tls_cert = "./shared/web-tls.crt"', 'tls_key = "./shared/web-tls.key"',
      '[store]', 'backend = "redis"', `url = "${TEST_REDIS_URL}"`, `prefix = "${prefix}"`,
      '[cluster]', `node_id = "${node}"`,
      ...(opts.extraToml ?? []),
      '[vault]', 'master_key = "./shared/master.key"',
      '[recordings]', 'path = "./shared/recordings"',
      TEST_POLICY_TOML,
    ].join('\n'));
    return file;
  };
  const configA = nodeConfig('gw-a');
  const configB = nodeConfig('gw-b');
  const cli = async (args: string[], stdin?: string): Promise<CliResult> => {
    const r = await runCli(args, { config: configA, ...(stdin !== undefined ? { stdin } : {}) });
    if (r.code !== 0) throw new Error(`portcullis ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  const dropKeys = async (): Promise<void> => {
    const s = await openTestRedisStore(prefix);
    await s.dropAll();
    await s.close();
  };
  mkdirSync(path.join(dir, 'shared'), { recursive: true });
  let device: DeviceSshd | null = null;
  let a: GatewayProcess;
  let b: GatewayProcess;
  try {
    await cli(['init', '--password-stdin'], 'initial-admin-password');
    await cli(['org', 'add', 'test-vendor', '--display-name', 'Test Vendor GmbH']);
    device = await startDeviceSshd();
    await cli(['device', 'add', 'ct-01', '--host', '127.0.0.1', '--port', String(device.port), '--protocol', 'ssh', '--udi', 'UDI-ct-01', ...CLASS_OF_LEVEL[2]]);
    await cli(['device', 'credential', 'ct-01', '--username', 'root', '--key-file', device.clientKeyFile]);
    await cli(['device', 'trust', 'ct-01']);
    const nodes = await Promise.allSettled([spawnGateway(configA), spawnGateway(configB)]);
    const failed = nodes.find((n) => n.status === 'rejected');
    if (failed) {
      for (const n of nodes) if (n.status === 'fulfilled') await n.value.stop();
      throw failed.reason;
    }
    [a, b] = nodes.map((n) => (n as PromiseFulfilledResult<GatewayProcess>).value) as [GatewayProcess, GatewayProcess];
  } catch (err) {
    // Whatever started is stopped: a failed set-up leaves no server behind.
    await device?.stop();
    await dropKeys();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const dev = device;
  return {
    a, b, device: dev, cli,
    async addUser(name, role = 'vendor') {
      const password = `pw-${name}-correct-horse`;
      if (role !== 'vendor') return { name, password, secret: await staffInProcess(configA, name, role as Role, password) };
      const r = await cli(['user', 'add', name, '--role', role, '--org', 'test-vendor', '--nda-signed=-1d', '--nda-expires=+365d', '--password-stdin', '--json'], password);
      return { name, password, secret: new URL((JSON.parse(r.stdout) as { otpauthUri: string }).otpauthUri).searchParams.get('secret') as string };
    },
    grant: (user) => cli(['grant', 'add', '--user', user, '--device', 'ct-01', '--protocol', 'ssh', '--from', 'now', '--until', '+1h', '--json']),
    openSession(node, u) {
      let ready: () => void = () => undefined;
      const started = new Promise<void>((r) => { ready = r; });
      const done = runSsh({
        port: node.sshPort, login: `${u.name}#ct-01`, password: u.password, totpSecret: u.secret, command: 'echo session-up; sleep 60', timeoutMs: 90_000,
        onStdout: (chunk) => { if (chunk.includes('session-up')) ready(); },
      });
      return { started, done };
    },
    async stop() {
      await a.stop();
      await b.stop();
      await dev.stop();
      await dropKeys();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
