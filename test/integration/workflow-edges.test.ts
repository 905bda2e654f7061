import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../gateway/store/store.js';
import { ApiClient, signedIn, TotpSource } from '../support/api-client.js';
import { startDeviceSshd, type DeviceSshd } from '../support/device-sshd.js';
import { CLASS_OF_LEVEL, REPO, runCli, startGatewayFixture, startGatewayWithDevice, type CliResult, type GatewayFixture, type TestUser } from '../support/gateway-fixture.js';
import { spawnGateway, type GatewayProcess } from '../support/gateway-process.js';
import { runSsh } from '../support/ssh-client.js';

/**
 * Issue 4's edges, from the side of the person at the keyboard: a vendor whose confidentiality
 * agreement lapsed or whose account expired is refused everywhere and the refusal is audited
 * (R-5.3a, R-5.3d); approval rules set in gateway.config.toml are the ones enforced, and a rule
 * looser than REQUIREMENTS.md is accepted but warned about at start-up (5.2d, R-5.3c, S-1.3);
 * and the README's "From nothing to a recorded session" runs command by command on the shipped
 * gateway.config.toml (with loopback ports, a real device, real passwords for the README's '…',
 * dates relative to today, and --json where the test reads the answer).
 */

interface ApiError { error: { code: string; message: string; detail?: string } }
interface RequestBody { id: string; level: number; status: string; stillNeeded: string[][]; grantIds: string[]; effective: { profile: string; until: string } }
interface ApprovalBody { approved: boolean; request: RequestBody; grants: Array<{ device: string; profile: string; request: string; user: string }> }

const now = (): string => new Date().toISOString();
/** Parses a `--json` CLI answer, saying what the command printed when it is not JSON. */
const json = <T>(r: CliResult): T => {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${r.code}): ${r.stdout} ${r.stderr}`);
  }
};
const ok = (r: CliResult, what: string): CliResult => {
  expect(r.code, `${what}: ${r.stderr}`).toBe(0);
  return r;
};
const day = (offsetDays: number): string => new Date(Date.now() + offsetDays * 86_400_000).toISOString().slice(0, 10);
const byActor = (entries: AuditEntry[], actor: string, type: string): AuditEntry[] => entries.filter((e) => e.actor === actor && e.type === type);
const secretOf = (out: string): string => new URL(/otpauth:\/\/\S+/.exec(out)?.[0] ?? 'otpauth://totp/x').searchParams.get('secret') as string;
/** `--actor NAME --actor-credentials-stdin` and what goes on standard input: the password, the next TOTP code, then `rest` (e.g. a --password-stdin secret). */
const proven = async (totp: TotpSource, who: { name: string; password: string; totpSecret: string }, args: string[], rest = ''): Promise<[string[], string]> =>
  [['--actor', who.name, '--actor-credentials-stdin', ...args], `${who.password}\n${await totp.code(who.totpSecret)}\n${rest}`];

describe('a vendor whose confidentiality agreement lapsed, or whose account expired (R-5.3a, R-5.3d)', () => {
  let fx: GatewayFixture;
  let device: DeviceSshd;
  const users: Record<string, TestUser> = {};
  const totp = new TotpSource();
  const signIn = (name: string): Promise<ApiClient> => signedIn(fx.gw.web.port, users[name] as TestUser, totp);
  /** The CLI as that person, proven as an operator would: password and next TOTP code on standard input. */
  const cliAs = async (name: string, args: string[]): Promise<CliResult> => {
    const u = users[name] as TestUser;
    return fx.cli(['--actor', name, '--actor-credentials-stdin', ...args], `${u.password}\n${await totp.code(u.totpSecret)}\n`);
  };
  const ask = (c: ApiClient, workOrder: string, durationMinutes = 60) =>
    c.post<RequestBody & ApiError>('/api/requests', { devices: ['mon-2'], protocols: ['ssh'], purpose: 'Read the alarm log', workOrder, from: now(), durationMinutes });

  beforeAll(async () => {
    ({ fx, device } = await startGatewayWithDevice('mon-2'));
    // Two admins: each proves two CLI commands with the next two TOTP steps, and none waits for a third.
    users.adm = await fx.addUser('adm', ['admin']);
    users.adm2 = await fx.addUser('adm2', ['admin']);
    await Promise.all(['nina', 'exa'].map(async (name) => {
      users[name] = await fx.addUser(name);
      // A grant from before the change: what refuses the session below is the NDA or the expiry, not a missing grant.
      await fx.grant(name, 'mon-2', 'now', '+2h');
    }));
  });
  afterAll(async () => {
    await fx?.stop();
    await device?.stop();
  });

  it('refuses a request and a session once an admin records a lapsed agreement, and accepts requests again once it is renewed', async () => {
    const nina = users.nina as TestUser;
    const api = await signIn('nina');
    // As an admin types it: the dates on the paper, which ended yesterday.
    const lapse = ok(await cliAs('adm', ['user', 'nda', 'nina', '--nda-signed', day(-366), '--nda-expires', day(-1), '--nda-ref', 'NDA-2025-007', '--json']), 'user nda');
    const recorded = json<{ name: string; nda: { expiresAt: string; reference: string } }>(lapse);
    expect(recorded).toMatchObject({ name: 'nina', nda: { reference: 'NDA-2025-007' } });
    expect(Date.parse(recorded.nda.expiresAt)).toBeLessThan(Date.now());

    const refused = await ask(api, 'WO-NDA-1');
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('NDA_EXPIRED');
    expect(refused.body.error.message).toContain('confidentiality agreement');
    expect(refused.body.error.detail).toMatch(/^the confidentiality agreement of nina expired at \d{4}-\d\d-\d\dT[\d:.]+Z \(R-5\.3a\); ask the hospital to record the renewed one$/);

    const s = await runSsh({ port: fx.sshPort, login: 'nina#mon-2', password: nina.password, totpCode: await totp.code(nina.totpSecret), command: 'echo reached-device' });
    expect(s.stdout).toBe('');
    expect(s.code, s.stderr).toBe(1);
    expect(s.stderr).toMatch(/Your confidentiality agreement with the hospital has expired; no sessions until it is renewed \(R-5\.3a\)\. \(the confidentiality agreement of nina ended at [\d\-T:.]+Z\) \[NDA_EXPIRED\]/);

    const audit = await fx.audit();
    expect(byActor(audit, 'adm', 'user.nda_recorded').map((e) => e.data)).toEqual([expect.objectContaining({ user: 'nina', nda: expect.objectContaining({ reference: 'NDA-2025-007' }) })]);
    expect(byActor(audit, 'nina', 'request.refused')).toEqual([expect.objectContaining({ outcome: 'denied', code: 'NDA_EXPIRED', data: expect.objectContaining({ workOrder: 'WO-NDA-1' }) })]);
    expect(byActor(audit, 'nina', 'session.refused')).toEqual([expect.objectContaining({ outcome: 'denied', code: 'NDA_EXPIRED', data: expect.objectContaining({ device: 'mon-2' }) })]);
    expect(byActor(audit, 'nina', 'session.start')).toEqual([]);

    // The same browser session, once the agreement is renewed: the refusal was the agreement's.
    ok(await cliAs('adm', ['user', 'nda', 'nina', '--nda-signed', 'now', '--nda-expires', '+365d', '--nda-ref', 'NDA-2026-112']), 'user nda (renewal)');
    const renewed = await ask(api, 'WO-NDA-2');
    expect(renewed.status, JSON.stringify(renewed.body)).toBe(201);
    expect(renewed.body.status).toBe('pending');
  });

  it('refuses a request that outlasts the account, then everything once an admin lets the account expire', async () => {
    const exa = users.exa as TestUser;
    const api = await signIn('exa');
    ok(await cliAs('adm2', ['user', 'set', 'exa', '--expires', '+30m']), 'user set --expires +30m');
    const tooLong = await ask(api, 'WO-EXP-1', 60);
    expect(tooLong.status).toBe(403);
    expect(tooLong.body.error.code).toBe('ACCOUNT_EXPIRES_TOO_SOON');
    expect(tooLong.body.error.message).toContain('Your account expires before the requested window ends');
    expect(tooLong.body.error.detail).toMatch(/^the account exa expires at .*, before the window ends at .*\(R-5\.3d\)/);

    const expire = ok(await cliAs('adm2', ['user', 'set', 'exa', '--expires', 'now', '--json']), 'user set --expires now');
    expect(Date.parse(json<{ expiresAt: string }>(expire).expiresAt)).toBeLessThan(Date.now());

    // The browser session signed in before is gone, and signing in again says why.
    expect((await api.get('/api/requests')).status).toBe(401);
    const again = await new ApiClient(fx.gw.web.port).login('exa', exa.password, { secret: exa.totpSecret });
    expect(again.status).toBe(403);
    expect(again.body.error).toMatchObject({ code: 'ACCOUNT_EXPIRED', message: 'The account has expired.', detail: expect.stringMatching(/\(account exa expired at [\d\-T:.]+Z\)$/) });

    // Through the CLI runbook too: proving --actor exa is a sign-in, and it refuses the expired account.
    const cli = await cliAs('exa', ['request', 'create', '--device', 'mon-2', '--protocol', 'ssh', '--purpose', 'Read the alarm log', '--work-order', 'WO-EXP-2', '--from', 'now', '--duration', '30m', '--json']);
    expect(cli.code).toBe(1);
    expect(json<ApiError>(cli).error.code).toBe('ACCOUNT_EXPIRED');
    expect(cli.stderr).toMatch(/--actor exa was not proven: The account has expired\. \(account exa expired at [\d\-T:.]+Z\)/);

    const s = await runSsh({ port: fx.sshPort, login: 'exa#mon-2', password: exa.password, totpSecret: exa.totpSecret, command: 'echo reached-device' });
    expect(s.stdout).toBe('');
    expect(s.code, s.stderr).toBe(255);
    expect(s.stderr).toContain('Permission denied');
    expect(s.stderr).toMatch(/The account has expired\. \(account exa expired at [\d\-T:.]+Z\) \[ACCOUNT_EXPIRED\]/);

    const audit = await fx.audit();
    expect(byActor(audit, 'adm2', 'user.updated').map((e) => [e.data.user, e.channel])).toEqual([['exa', 'cli'], ['exa', 'cli']]);
    expect(byActor(audit, 'exa', 'request.refused').map((e) => [e.code, e.data.workOrder])).toEqual([['ACCOUNT_EXPIRES_TOO_SOON', 'WO-EXP-1']]);
    // One refused sign-in from the browser, one from the CLI, one from OpenSSH: each says its door.
    expect(byActor(audit, 'exa', 'login.refused').map((e) => [e.code, e.channel])).toEqual([['ACCOUNT_EXPIRED', 'web'], ['ACCOUNT_EXPIRED', 'cli'], ['ACCOUNT_EXPIRED', 'ssh']]);
    expect(byActor(audit, 'exa', 'login.ok')).toHaveLength(1);
    expect(byActor(audit, 'exa', 'session.start')).toEqual([]);
  });

  it('keeps those refusals in an audit chain that verifies', async () => {
    const v = ok(await fx.cli(['verify', '--json']), 'verify');
    expect(json<{ ok: boolean; problems: string[] }>(v)).toMatchObject({ ok: true, problems: [] });
  });
});

describe('approval rules set in gateway.config.toml', () => {
  /** Level 1 tightened: two approvals by distinct people, one from approver or device management, one from security. */
  const TIGHTENED = `
[profiles.full]
mode = "full"
[profiles.diag]
mode = "restricted"
rules = [{ program = "echo", action = "allow" }]
[approval.level_1]
approvals = [["approver", "device_manager"], ["security"]]
longest_window = "4h"
default_profile = "full"
[approval.level_2]
default_profile = "full"
[approval.level_3]
default_profile = "diag"
`;
  let fx: GatewayFixture;
  let device: DeviceSshd;
  const users: Record<string, TestUser> = {};
  const api: Record<string, ApiClient> = {};
  const totp = new TotpSource();
  const approve = (who: string, id: string) => (api[who] as ApiClient).post<ApprovalBody & ApiError>(`/api/requests/${id}/approve`, {});
  /** The CLI as that person, proven as an operator would: password and next TOTP code on standard input. */
  const cliAs = async (name: string, args: string[]): Promise<CliResult> => {
    const u = users[name] as TestUser;
    return fx.cli(['--actor', name, '--actor-credentials-stdin', ...args], `${u.password}\n${await totp.code(u.totpSecret)}\n`);
  };
  /**
   * A vendor's application through the CLI runbook. Proving --actor takes one of the vendor's TOTP
   * steps, so vela (who also signs in with OpenSSH) applies once and other vendors apply otherwise.
   */
  const askAs = async (vendor: string, workOrder: string): Promise<RequestBody> =>
    json<RequestBody>(ok(await cliAs(vendor, ['request', 'create', '--device', 'lab-1', '--protocol', 'ssh', '--purpose', 'Recalibrate the analyser', '--work-order', workOrder, '--from', 'now', '--duration', '1h', '--json']), 'request create'));
  const ssh = async (command: string) => {
    const u = users.vela as TestUser;
    return runSsh({ port: fx.sshPort, login: 'vela#lab-1', password: u.password, totpCode: await totp.code(u.totpSecret), command });
  };

  beforeAll(async () => {
    device = await startDeviceSshd();
    fx = await startGatewayFixture(TIGHTENED);
    await fx.addDevice('lab-1', device, 1);
    for (const [name, roles] of [['vela', ['vendor']], ['velb', ['vendor']], ['velc', ['vendor']], ['appr', ['approver']], ['dm', ['device_manager']], ['sec', ['security']], ['both', ['security', 'device_manager']]] as const) {
      users[name] = await fx.addUser(name, [...roles]);
    }
    for (const name of ['appr', 'dm', 'sec', 'both']) {
      const u = users[name] as TestUser;
      const c = new ApiClient(fx.gw.web.port);
      expect((await c.login(name, u.password, { code: await totp.code(u.totpSecret) })).status).toBe(200);
      api[name] = c;
    }
  }, 120_000);
  afterAll(async () => {
    await fx?.stop();
    await device?.stop();
  });

  it('is what the gateway reports and enforces, and a tightening is not warned about', async () => {
    const policy = await (api.sec as ApiClient).get<{ levels: Array<{ level: number; approvals: string[][]; longestWindowMinutes: number }> }>('/api/policy');
    expect(policy.body.levels[0]).toMatchObject({ level: 1, approvals: [['approver', 'device_manager'], ['security']], longestWindowMinutes: 240 });
    expect(fx.logs.filter((l) => l.includes('approval rule looser than the default'))).toEqual([]);
    const long = await cliAs('velb', ['request', 'create', '--device', 'lab-1', '--protocol', 'ssh', '--purpose', 'x', '--work-order', 'WO-L', '--from', 'now', '--duration', '5h', '--json']);
    expect(json<ApiError>(long).error.code).toBe('WINDOW_TOO_LONG');
  });

  it('needs both configured approvals on a level-1 device: one leaves it pending, the second from a named role grants it', async () => {
    const r = await askAs('vela', 'WO-L1-1');
    expect(r).toMatchObject({ level: 1, status: 'pending', stillNeeded: [['approver', 'device_manager'], ['security']], effective: { profile: 'full' } });

    const first = await approve('appr', r.id);
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.body).toMatchObject({ approved: false, grants: [], request: { status: 'pending', stillNeeded: [['security']] } });
    // Under the default level-1 rule that one approval would have been enough; here the vendor is still out.
    const early = await ssh('echo reached-device');
    expect(early.stderr).toContain('[NO_GRANT]');
    expect(early.stdout).toBe('');

    const twice = await approve('appr', r.id);
    expect(twice.body.error.code).toBe('DUPLICATE_APPROVAL');
    const wrongRole = await approve('dm', r.id);
    expect(wrongRole.body.error.code).toBe('APPROVER_ROLE_NOT_NEEDED');
    expect(wrongRole.body.error.detail).toContain('still needed: an approver with the role security');

    const second = await approve('sec', r.id);
    expect(second.status, JSON.stringify(second.body)).toBe(200);
    expect(second.body.approved).toBe(true);
    expect(second.body.grants).toEqual([expect.objectContaining({ user: 'vela', device: 'lab-1', profile: 'full', request: r.id })]);
    const inside = await ssh('echo reached-device');
    expect(inside.stdout, inside.stderr).toBe('reached-device\n');

    const audit = await fx.audit();
    expect(audit.filter((e) => e.type === 'request.approval_refused').map((e) => [e.actor, e.code])).toEqual([['appr', 'DUPLICATE_APPROVAL'], ['dm', 'APPROVER_ROLE_NOT_NEEDED']]);
    expect(audit.filter((e) => e.type === 'request.approval' && e.data.request === r.id).map((e) => e.actor)).toEqual(['appr', 'sec']);
    expect(audit.filter((e) => e.type === 'request.approved' && e.data.request === r.id)).toHaveLength(1);
  });

  it('counts one person holding both roles once, refuses their second approval, and matches a later approver around them', async () => {
    const r = await askAs('velc', 'WO-L1-2');
    const first = await approve('both', r.id);
    expect(first.body).toMatchObject({ approved: false, grants: [] });
    expect(first.body.request.stillNeeded).toHaveLength(1);
    const again = await approve('both', r.id);
    expect(again.body.error.code).toBe('DUPLICATE_APPROVAL');
    expect((await (api.sec as ApiClient).get<RequestBody>(`/api/requests/${r.id}`)).body.status).toBe('pending');
    // A plain approver can only fill the first approval: the matching moves `both` to security.
    const last = json<{ status: string; grants: string[]; approvals: Array<{ by: string }> }>(ok(await cliAs('appr', ['request', 'approve', r.id, '--json']), 'request approve'));
    expect(last).toMatchObject({ status: 'approved', approvals: [{ by: 'both' }, { by: 'appr' }] });
    expect(last.grants).toHaveLength(1);
    expect((await fx.gw.runtime.store.getGrant(last.grants[0] as string))).toMatchObject({ user: 'velc', device: 'lab-1', requestId: r.id });
  });

  it('refuses the requester approving their own request, through the API and the CLI (S-1.3)', async () => {
    const own = await (api.both as ApiClient).post<RequestBody>('/api/requests', { devices: ['lab-1'], protocols: ['ssh'], purpose: 'Check the analyser myself', workOrder: 'WO-L1-3', from: now(), durationMinutes: 30 });
    expect(own.status, JSON.stringify(own.body)).toBe(201);
    const viaApi = await approve('both', own.body.id);
    expect(viaApi.status).toBe(403);
    expect(viaApi.body.error.code).toBe('SELF_APPROVAL');
    const viaCli = await cliAs('both', ['request', 'approve', own.body.id, '--json']);
    expect(viaCli.code).toBe(1);
    expect(json<ApiError>(viaCli).error.code).toBe('SELF_APPROVAL');
    expect(viaCli.stderr).toContain('both made request');
    expect((await fx.audit('request.approval_refused')).filter((e) => e.data.request === own.body.id).map((e) => [e.actor, e.code]))
      .toEqual([['both', 'SELF_APPROVAL'], ['both', 'SELF_APPROVAL']]);
    expect((await fx.gw.runtime.store.getRequest(own.body.id))?.status).toBe('pending');
  });

  it('gives no direct grant on a level-1 device once its rule needs two people', async () => {
    for (const actor of [null, 'dm']) {
      const args = ['grant', 'add', '--user', 'vela', '--device', 'lab-1', '--protocol', 'ssh', '--from', 'now', '--until', '+1h', '--json'];
      const r = actor ? await cliAs(actor, args) : await fx.cli(args);
      expect(r.code, r.stderr).toBe(1);
      expect(json<ApiError>(r).error.code).toBe('DIRECT_GRANT_NOT_ALLOWED');
      expect(r.stderr).toContain('level 1 devices need 2 approvals from distinct people');
    }
  });
});

/** A data directory made by `portcullis init` and served by `portcullis serve`, as an operator runs it. */
/**
 * People with privileged roles, as the README's quick start adds them (S-1.3): init's admin asks,
 * a second admin confirms. The second admin (`erin`) is asked by the first and confirmed by the
 * host operator, which only a single-admin install allows.
 */
type Person = { name: string; password: string; totpSecret: string };

/**
 * Staff the README's way (S-1.3): a second admin (erin) first, asked by the proven admin and
 * confirmed by the host operator (a single-admin install's one exception); then each person asked
 * by the admin and confirmed by erin, every named actor proven. Returns everyone added, erin too.
 */
async function addStaff(cli: (args: string[], stdin?: string) => Promise<CliResult>, totp: TotpSource, admin: Person, people: Array<[string, string]>): Promise<Record<string, Person>> {
  const added: Record<string, Person> = {};
  const ask = async (name: string, role: string): Promise<string> => {
    const r = await cli(...await proven(totp, admin, ['user', 'add', name, '--role', role, '--password-stdin', '--json'], `${name} long passphrase\n`));
    expect(r.code, `user add ${name}: ${r.stderr}`).toBe(0);
    const body = JSON.parse(r.stdout) as { otpauthUri: string; pendingChange: { id: string } | null };
    expect(body.pendingChange, `user add ${name} --role ${role} waits for a second admin`).not.toBeNull();
    added[name] = { name, password: `${name} long passphrase`, totpSecret: secretOf(body.otpauthUri) };
    return (body.pendingChange as { id: string }).id;
  };
  const erin = await cli(['user', 'confirm-role-change', await ask('erin', 'admin')]);
  expect(erin.code, `host operator confirms the second admin: ${erin.stderr}`).toBe(0);
  for (const [name, role] of people) {
    const confirmed = await cli(...await proven(totp, added.erin as Person, ['user', 'confirm-role-change', await ask(name, role)]));
    expect(confirmed.code, `erin confirms ${name}: ${confirmed.stderr}`).toBe(0);
  }
  return added;
}

async function servedGateway(configText: string): Promise<{ dir: string; configFile: string; cli: (args: string[], stdin?: string) => Promise<CliResult>; gw: GatewayProcess; init: CliResult }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-edges-'));
  const configFile = path.join(dir, 'gateway.config.toml');
  writeFileSync(configFile, configText);
  const cli = (args: string[], stdin?: string): Promise<CliResult> => runCli(args, { config: configFile, ...(stdin !== undefined ? { stdin } : {}) });
  try {
    const init = await cli(['init', '--password-stdin'], 'a long admin passphrase\n');
    if (init.code !== 0) throw new Error(`portcullis init failed: ${init.stderr}`);
    const gw = await spawnGateway(configFile);
    return { dir, configFile, cli, gw, init };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

describe('a configuration that loosens the default approval rules', () => {
  const LOOSENED = `data_dir = "./data"
[ssh]
listen = "127.0.0.1:0"
[web]
listen = "127.0.0.1:0"
[profiles.diag]
mode = "restricted"
rules = [{ program = "echo", action = "allow" }]
[approval.level_2]
longest_window = "8h"
[approval.level_3]
approvals = [["device_manager"]]
default_profile = "diag"
`;
  let served: Awaited<ReturnType<typeof servedGateway>>;
  beforeAll(async () => {
    served = await servedGateway(LOOSENED);
  });
  afterAll(async () => {
    await served?.gw.stop();
    if (served) rmSync(served.dir, { recursive: true, force: true });
  });

  it('starts, and logs one warning per loosening naming the level and the clause it weakens', async () => {
    type Line = { level: string; msg: string; deviceLevel: number; detail: string; clause: string };
    const warnings = (): Line[] => served.gw.log().split('\n')
      .filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line)
      .filter((l) => l.msg === 'approval rule looser than the default');
    await expect.poll(() => warnings().length).toBe(2);
    expect(warnings().map((w) => [w.level, w.deviceLevel, w.clause, w.detail])).toEqual([
      ['warn', 2, 'R-5.2d', 'approval rule for level 2: the longest window 8 h is longer than the default 4 h, which weakens R-5.2d'],
      ['warn', 3, 'R-5.3c', 'approval rule for level 3: 1 approval(s) needed where the default needs 2, which weakens R-5.3c'],
    ]);
  });

  it('then enforces the looser rule: one device manager grants a level-3 request, and the CLI warns whoever applies it', async () => {
    const { cli, init } = served;
    const totp = new TotpSource();
    const admin = { name: 'admin', password: 'a long admin passphrase', totpSecret: secretOf(init.stdout) };
    // Staff may ask too (no organisation or NDA needed): a security officer asks, a device manager decides.
    // Privileged roles: asked by the proven admin, confirmed by a second proven admin (S-1.3).
    const people = await addStaff(cli, totp, admin, [['sue', 'security'], ['dmo', 'device_manager']]);
    ok(await cli(['device', 'add', 'ct-9', '--host', '127.0.0.1', '--protocol', 'ssh', '--udi', 'UDI-ct-9', ...CLASS_OF_LEVEL[3]]), 'device add');
    const created = ok(await cli(...await proven(totp, people.sue as typeof admin, ['request', 'create', '--device', 'ct-9', '--protocol', 'ssh', '--purpose', 'p', '--work-order', 'WO-9', '--from', 'now', '--duration', '90m', '--json'])), 'request create');
    const r = json<RequestBody>(created);
    expect(r).toMatchObject({ level: 3, stillNeeded: [['device_manager']] });
    // The same words serve logs at start-up, on stderr of the command that applies the rule.
    expect(created.stderr).toContain('portcullis: warning: approval rule for level 3: 1 approval(s) needed where the default needs 2, which weakens R-5.3c');
    const approved = ok(await cli(...await proven(totp, people.dmo as typeof admin, ['request', 'approve', r.id, '--json'])), 'request approve');
    const a = json<{ status: string; grants: string[] }>(approved);
    expect(a.status).toBe('approved');
    expect(a.grants).toHaveLength(1);
    expect(approved.stderr).toContain('which weakens R-5.3c');
    expect(approved.stderr).not.toContain('level 2');
  });
});

describe('the README quick-start, "From nothing to a recorded session", command by command', () => {
  let device: DeviceSshd;
  let served: Awaited<ReturnType<typeof servedGateway>>;
  let alice: { name: string; password: string; totpSecret: string };
  const staff: Record<string, { name: string; password: string; totpSecret: string }> = {};
  let requestId = '';
  // The README's prompts for a password and TOTP code on the terminal are answered on standard input here.
  const totp = new TotpSource();

  beforeAll(async () => {
    device = await startDeviceSshd();
    // The shipped gateway.config.toml, on loopback ports with its data in a temporary folder.
    const shipped = readFileSync(path.join(REPO, 'gateway.config.toml'), 'utf8');
    const onLoopback = shipped.replace('listen = "0.0.0.0:2222"', 'listen = "127.0.0.1:0"').replace('listen = "0.0.0.0:8443"', 'listen = "127.0.0.1:0"');
    expect(onLoopback.match(/listen = "127\.0\.0\.1:0"/g)).toHaveLength(2);
    served = await servedGateway(onLoopback);
  });
  afterAll(async () => {
    await served?.gw.stop();
    if (served) rmSync(served.dir, { recursive: true, force: true });
    await device?.stop();
  });

  it('1. init prints the first admin\'s TOTP enrolment', () => {
    expect(served.init.stdout).toMatch(/otpauth:\/\/totp\//);
  });

  it('2. people: a second admin, an organisation, a vendor under an NDA, a device manager and a security officer', async () => {
    const { cli } = served;
    ok(await cli(['org', 'add', 'siemens', '--display-name', 'Siemens Healthineers', '--contact', '+49 9131 84-0']), 'org add');
    // The README's dates (2026-01-15 … 2027-12-31) lapse one day; the same shape, relative to today.
    const a = json<{ name: string; org: string; nda: { reference: string }; otpauthUri: string }>(ok(await cli(['user', 'add', 'alice', '--role', 'vendor', '--org', 'siemens',
      '--nda-signed', day(-30), '--nda-expires', day(300), '--nda-ref', 'NDA-2026-031', '--expires', day(300), '--password-stdin', '--json'], 'their long passphrase\n'), 'user add alice'));
    expect(a).toMatchObject({ name: 'alice', org: 'siemens', nda: { reference: 'NDA-2026-031' } });
    alice = { name: 'alice', password: 'their long passphrase', totpSecret: secretOf(a.otpauthUri) };
    // README: a second admin (erin), then dora and sam, each asked by admin and confirmed by erin (S-1.3),
    // every named actor proven (password and the next TOTP code on standard input).
    const admin = { name: 'admin', password: 'a long admin passphrase', totpSecret: secretOf(served.init.stdout) };
    Object.assign(staff, await addStaff(served.cli, totp, admin, [['dora', 'device_manager'], ['sam', 'security']]));
    const listed = json<Array<{ name: string; roles: string[] }>>(ok(await served.cli(['user', 'list', '--json']), 'user list'));
    expect(listed.filter((u) => u.name !== 'alice').map((u) => [u.name, u.roles])).toEqual([['admin', ['admin']], ['dora', ['device_manager']], ['erin', ['admin']], ['sam', ['security']]]);
  });

  it('3. the device: registered with its classification (level 3), credential vaulted, host key pinned', async () => {
    const { cli } = served;
    const added = json<{ level: number }>(ok(await cli(['device', 'add', 'ct-01', '--host', '127.0.0.1', '--protocol', 'ssh', '--port', String(device.port), '--udi', '(01)04046964502231',
      '--ip', '10.20.0.15', '--mac', '00:1b:44:11:3a:b7', '--type', 'CT', '--manufacturer', 'Siemens', '--model', 'SOMATOM go.Up',
      '--department', 'Radiology', '--location', 'B2-014', '--usage-form', 'ionising-radiation', '--contact', 'body', '--severity', 'serious', '--json']), 'device add'));
    expect(added.level).toBe(3);
    ok(await cli(['device', 'credential', 'ct-01', '--username', 'root', '--key-file', device.clientKeyFile]), 'device credential');
    const trusted = ok(await cli(['device', 'trust', 'ct-01']), 'device trust');
    // "compare it with the device's own":
    const own = execFileSync('ssh-keygen', ['-l', '-f', `${device.hostKeyFile}.pub`]).toString().split(' ')[1] as string;
    expect(own).toMatch(/^SHA256:/);
    expect(trusted.stdout).toContain(own);
    ok(await cli(['device', 'trust', 'ct-01', '--expect', own]), 'device trust --expect');
  });

  it('4. the vendor asks; device management narrows and approves, security approves and the grant is created', async () => {
    const { cli } = served;
    const r = json<RequestBody>(ok(await cli(...await proven(totp, alice, ['request', 'create', '--device', 'ct-01', '--protocol', 'ssh', '--purpose', 'Replace the tube calibration table',
      '--work-order', 'WO-4711', '--from', 'now', '--duration', '90m', '--json'])), 'request create'));
    expect(r.id).toMatch(/^r-[0-9a-f]{8}$/);
    expect(r).toMatchObject({ level: 3, status: 'pending', stillNeeded: [['device_manager'], ['security']], effective: { profile: 'diagnostics' } });
    requestId = r.id;
    const t0 = Date.now();
    const first = json<RequestBody>(ok(await cli(...await proven(totp, staff.dora as typeof alice, ['request', 'approve', r.id, '--until', '+45m', '--comment', 'calibration only', '--json'])), 'approve (dora)'));
    expect(first).toMatchObject({ status: 'pending', stillNeeded: [['security']] });
    const last = json<{ status: string; grants: string[] }>(ok(await cli(...await proven(totp, staff.sam as typeof alice, ['request', 'approve', r.id, '--json'])), 'approve (sam)'));
    expect(last.status).toBe('approved');
    expect(last.grants).toHaveLength(1);
    const grants = json<Array<{ id: string; user: string; device: string; until: string; profile: string }>>(ok(await cli(['grant', 'list', '--json']), 'grant list'));
    expect(grants).toEqual([expect.objectContaining({ id: last.grants[0], user: 'alice', device: 'ct-01', profile: 'diagnostics' })]);
    const until = Date.parse(grants[0]?.until ?? '');
    expect(until).toBeGreaterThanOrEqual(t0 + 45 * 60_000 - 5_000);
    expect(until).toBeLessThanOrEqual(Date.now() + 45 * 60_000);
  });

  it('5. the vendor connects with plain OpenSSH (Password, then TOTP code)', async () => {
    const s = await runSsh({ port: served.gw.sshPort, login: 'alice#ct-01', password: alice.password, totpCode: await totp.code(alice.totpSecret), command: 'uname -a' });
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout).toMatch(/^Linux /);
    expect(s.prompts.map((p) => p.replace(/^\([^)]*\) /, ''))).toEqual(['Password: ', 'TOTP code: ']);
  });

  it('6. security reviews and exports: sessions, maintenance records, the recording, verify', async () => {
    const { cli, dir } = served;
    type Session = { id: string; user: string; device: string; endedAt: string | null; recordingId: string };
    const sessions = async (): Promise<Session[]> => json<Session[]>(ok(await cli(['sessions', '--json']), 'sessions'));
    await expect.poll(async () => (await sessions()).filter((s) => s.user === 'alice' && s.endedAt !== null).length, { timeout: 30_000 }).toBe(1);
    const [session] = await sessions();
    expect(session).toMatchObject({ user: 'alice', device: 'ct-01' });

    const csvFile = path.join(dir, 'ct-01.csv');
    const cast = path.join(dir, 's.cast');
    // Read-only commands, independent of one another: run together.
    const [records, exported, show, request] = await Promise.all([
      cli(['records', '--device', 'ct-01', '--format', 'csv', '-o', csvFile]),
      cli(['recording', 'export', (session as Session).recordingId, '--format', 'asciicast', '-o', cast, '--json']),
      cli(['device', 'show', 'ct-01', '--json']),
      cli(['request', 'show', requestId, '--json']),
    ]);
    ok(records as CliResult, 'records');
    const csv = readFileSync(csvFile, 'utf8').trim().split('\n');
    expect(csv).toHaveLength(2);
    expect(csv[1]).toContain('WO-4711');
    expect(csv[1]).toContain('alice');

    expect(json<{ sealed: boolean }>(ok(exported as CliResult, 'recording export')).sealed).toBe(true);
    const [header, ...events] = readFileSync(cast, 'utf8').trim().split('\n');
    expect(JSON.parse(header as string)).toMatchObject({ version: 2 });
    expect(events.join('\n')).toContain('Linux');

    // The end state: a level-3 device, an approved request by two named people, one grant.
    expect(json<{ level: number; state: string }>(ok(show as CliResult, 'device show'))).toMatchObject({ level: 3, state: 'active' });
    const req = json<{ status: string; approvals: Array<{ by: string }>; grantIds: string[] }>(ok(request as CliResult, 'request show'));
    expect(req.status).toBe('approved');
    expect(req.approvals.map((a) => a.by)).toEqual(['dora', 'sam']);
    expect(req.grantIds).toHaveLength(1);

    const v = ok(await cli(['verify']), 'verify');
    expect(v.stdout).toMatch(/recordings: 1 sealed and verified/);
    expect(v.stdout.trim().split('\n').at(-1)).toBe('OK');
  });
});
