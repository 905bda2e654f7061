import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, type GatewayConfig } from '../../gateway/config/load.js';
import { confirmRoleChange } from '../../gateway/identity/role-changes.js';
import { addUser } from '../../gateway/identity/users.js';
import { initialize } from '../../gateway/init.js';
import { createLogger } from '../../gateway/log/logger.js';
import { startGateway, type RunningGateway } from '../../gateway/server.js';
import type { AuditEntry } from '../../gateway/store/store.js';
import type { Role } from '../../policy/types.js';
import { TotpSource } from './api-client.js';
import { startDeviceSshd, type DeviceSshd } from './device-sshd.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(REPO, 'bin/portcullis.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], opts: { config?: string; stdin?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    // detached: a session of its own, without a controlling terminal, as under a service or in CI; the CLI
    // then cannot ask for an --actor's password on /dev/tty of whoever runs the tests.
    const child = spawn(process.execPath, [CLI, ...args, ...(opts.config ? ['--config', opts.config] : [])], {
      env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'], detached: true,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(opts.stdin ?? '');
  });
}

/** Appendix B inputs that give each level: a lab analyser (1), a patient monitor (2), a CT scanner (3). */
export const CLASS_OF_LEVEL: Record<1 | 2 | 3, string[]> = {
  1: ['--usage-form', 'laboratory', '--contact', 'none', '--effect', 'none'],
  2: ['--usage-form', 'diagnosis-monitoring', '--contact', 'body', '--severity', 'harm'],
  3: ['--usage-form', 'ionising-radiation', '--contact', 'body', '--severity', 'serious'],
};

/**
 * The command profiles and per-level defaults every test gateway has unless a test brings its
 * own: `full` for levels 1-2 (the walking-skeleton tests run any command), a restricted
 * diagnostics profile for level 3.
 */
export const TEST_POLICY_TOML = `
[profiles.full]
mode = "full"
[profiles.diag]
mode = "restricted"
allow_constructs = ["sequence"]
rules = [
  { program = "echo", action = "allow" },
  { program = "uname", action = "allow" },
  { program = "cat", args = ["/etc/hostname"], action = "allow" },
  { program = "ls", action = "allow" },
  { program = "sleep", args = ["/[0-9]{1,3}/"], action = "allow" },
  { program = "reboot", action = "review" },
]
[approval.level_1]
default_profile = "full"
[approval.level_2]
default_profile = "full"
[approval.level_3]
default_profile = "diag"
`;

export interface TestUser {
  name: string;
  password: string;
  totpSecret: string;
}

export interface GatewayFixture {
  /** `init`'s first admin, with what proves them (password, TOTP secret). */
  admin: TestUser;
  dir: string;
  configFile: string;
  config: GatewayConfig;
  gw: RunningGateway;
  sshPort: number;
  logs: string[];
  cli(args: string[], stdin?: string): Promise<CliResult>;
  /**
   * The CLI as a proven person, as an operator would run it: `--actor NAME --actor-credentials-stdin`
   * with the password and the person's next unused TOTP code (from oathtool) on the first two lines
   * of standard input, and `stdin` (a secret for --password-stdin) after them.
   */
  cliAs(who: TestUser, args: string[], stdin?: string): Promise<CliResult>;
  /** The fixture's TOTP codes: each person's move forward, one per time step (the gateway accepts each step once). */
  totp: TotpSource;
  addUser(name: string, roles?: Role[]): Promise<TestUser>;
  /** Registers the sshd as a device (level 2 unless said), stores its key credential and pins its host key, all through the CLI. */
  addDevice(name: string, device: DeviceSshd, level?: 1 | 2 | 3): Promise<void>;
  /**
   * A grant through the CLI (SSH unless said). File transfer (which opens the desktop clipboard)
   * off unless said: `upload`, `download`, or `fileTransfer` for both (R-6.3e). By the host operator;
   * with file transfer (a named person's decision) by a new device manager made for it, so that
   * grants in a row never wait for a TOTP step.
   */
  grant(user: string, device: string, from: string, until: string, opts?: { protocol?: 'ssh' | 'vnc' | 'rdp'; fileTransfer?: boolean; upload?: boolean; download?: boolean }): Promise<string>;
  audit(type?: string): Promise<AuditEntry[]>;
  stop(): Promise<void>;
}

/** A gateway on loopback ports in its own temporary data directory, started in this process. */
export async function startGatewayFixture(extraToml = ''): Promise<GatewayFixture> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-gw-'));
  const configFile = path.join(dir, 'gateway.config.toml');
  const policy = /\[(profiles|approval)[.\]]/.test(extraToml) ? '' : TEST_POLICY_TOML;
  // A test that needs the web port before the gateway starts (an IdP's redirect URL) brings its own [web].
  const web = /^\[web\]/m.test(extraToml) ? '' : '[web]\nlisten = "127.0.0.1:0"\n';
  writeFileSync(configFile, `data_dir = "./data"\n[ssh]\nlisten = "127.0.0.1:0"\n${extraToml}\n${web}${policy}`);
  const config = loadConfig(configFile);
  const logs: string[] = [];
  const log = createLogger('debug', (line) => logs.push(line));
  const init = await initialize(config, { adminPassword: 'initial-admin-password', log });
  const admin: TestUser = { name: 'admin', password: 'initial-admin-password', totpSecret: new URL(init.admin?.otpauthUri ?? 'otpauth://totp/x').searchParams.get('secret') ?? '' };
  const gw = await startGateway(config, { log });
  await gw.runtime.store.createOrg({ name: 'test-vendor', displayName: 'Test Vendor GmbH', contact: null, createdAt: Date.now() });
  const cli = (args: string[], stdin?: string): Promise<CliResult> => runCli(args, { config: configFile, ...(stdin !== undefined ? { stdin } : {}) });
  /**
   * People are added the way a hospital adds them (S-1.3): `init`'s admin asks; a privileged role
   * waits for a second admin, who confirms it. That second admin (`admin2`) is made once, the way
   * the README's quick start makes it: asked by the first admin, confirmed by the host operator,
   * which only a single-admin install allows.
   */
  let secondAdmin: Promise<string> | null = null;
  const confirmer = (): Promise<string> => (secondAdmin ??= (async () => {
    const { pendingChange } = await addUser(gw.runtime, { name: 'admin2', roles: ['admin'], org: null, password: 'second-admin-password', expiresAt: null }, 'admin');
    await confirmRoleChange(gw.runtime, (pendingChange as { id: string }).id, 'local:fixture');
    return 'admin2';
  })());
  const totp = new TotpSource();
  const cliAs = async (who: TestUser, args: string[], stdin?: string): Promise<CliResult> =>
    cli(['--actor', who.name, '--actor-credentials-stdin', ...args], `${who.password}\n${await totp.code(who.totpSecret)}\n${stdin ?? ''}`);
  let grantors = 0;
  const fx: GatewayFixture = {
    admin, dir, configFile, config, gw, sshPort: gw.ssh.port, logs, cli, cliAs, totp,
    async addUser(name, roles = ['vendor']) {
      const password = `pw-${name}-correct-horse`;
      // Vendors work for an organisation under a confidentiality agreement (R-5.3a); staff do not.
      const vendor = roles.includes('vendor');
      const nda = vendor ? { signedAt: Date.now() - 86_400_000, expiresAt: Date.now() + 365 * 86_400_000, reference: 'NDA-TEST' } : null;
      const { otpauthUri, pendingChange } = await addUser(gw.runtime, { name, roles, org: vendor ? 'test-vendor' : null, password, expiresAt: null, nda }, 'admin');
      if (pendingChange) await confirmRoleChange(gw.runtime, pendingChange.id, await confirmer());
      const totpSecret = new URL(otpauthUri as string).searchParams.get('secret') as string;
      return { name, password, totpSecret };
    },
    async addDevice(name, device, level = 2) {
      const steps: Array<[string[], string?]> = [
        [['device', 'add', name, '--host', '127.0.0.1', '--port', String(device.port), '--protocol', 'ssh', '--udi', `UDI-${name}`, ...CLASS_OF_LEVEL[level]]],
        [['device', 'credential', name, '--username', 'root', '--key-file', device.clientKeyFile]],
        [['device', 'trust', name]],
      ];
      for (const [args] of steps) {
        const r = await cli(args);
        if (r.code !== 0) throw new Error(`portcullis ${args.join(' ')} failed: ${r.stderr}`);
      }
    },
    async grant(user, device, from, until, opts = {}) {
      const transfer = [...(opts.fileTransfer ? ['--file-transfer'] : []), ...(opts.upload ? ['--upload'] : []), ...(opts.download ? ['--download'] : [])];
      const args = ['grant', 'add', '--user', user, '--device', device, '--protocol', opts.protocol ?? 'ssh', '--from', from, '--until', until, ...transfer, '--json'];
      const r = transfer.length > 0 ? await cliAs(await fx.addUser(`grantor-${++grantors}`, ['device_manager']), args) : await cli(args);
      if (r.code !== 0) throw new Error(`grant add failed: ${r.stderr}`);
      return (JSON.parse(r.stdout) as { id: string }).id;
    },
    async audit(type) {
      return gw.runtime.store.listAudit({ limit: 100000, ...(type ? { type } : {}) });
    },
    async stop() {
      await gw.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return fx;
}

/**
 * The usual arrangement: a device sshd, a gateway, and the device registered, credentialed and
 * pinned on it. Whatever started is stopped again if a later step fails.
 */
export async function startGatewayWithDevice(deviceName: string, extraToml = ''): Promise<{ fx: GatewayFixture; device: DeviceSshd }> {
  const device = await startDeviceSshd();
  let fx: GatewayFixture | null = null;
  try {
    fx = await startGatewayFixture(extraToml);
    await fx.addDevice(deviceName, device);
    return { fx, device };
  } catch (err) {
    await fx?.stop();
    await device.stop();
    throw err;
  }
}
