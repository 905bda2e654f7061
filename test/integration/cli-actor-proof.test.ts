import { spawn } from 'node:child_process';
import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyPassword } from '../../gateway/identity/password.js';
import type { AuditEntry } from '../../gateway/store/store.js';
import { ApiClient, oathtoolCode } from '../support/api-client.js';
import { CLASS_OF_LEVEL, CLI, runCli, startGatewayFixture, type CliResult, type GatewayFixture, type TestUser } from '../support/gateway-fixture.js';

/**
 * Issue 13 from the attacker's side: a root shell on the gateway host that names a person with
 * --actor (or $PORTCULLIS_ACTOR) acts as that person only after the same sign-in the console and
 * SSH ask for (password + a TOTP code, used once), and otherwise as the host operator, who makes
 * no decision that belongs to a named person (R-5.3c, R-6.3e, R-6.4b, R-6.5, S-1.3, R-A.4d).
 * Every refusal is audited with its channel, cli, and the OS user that ran it.
 */
interface ApiError { error: { code: string; message: string } }
const json = <T>(r: CliResult): T => {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${r.code}): ${r.stdout} ${r.stderr}`);
  }
};
const OS_USER = os.userInfo().username;
const OPERATOR = `local:${OS_USER}`;

describe('a CLI --actor is a claim until it is proven', () => {
  let fx: GatewayFixture;
  const people: Record<string, TestUser> = {};
  let requestId = '';

  const since = async (seq: number): Promise<AuditEntry[]> => (await fx.audit()).filter((e) => e.seq > seq);
  const lastSeq = async (): Promise<number> => (await fx.audit()).at(-1)?.seq ?? 0;
  /** Standard input as an operator would send it: password, TOTP code, then whatever the command reads. */
  const claimed = (name: string, args: string[], stdin: string, env: NodeJS.ProcessEnv = {}): Promise<CliResult> =>
    runCli(['--actor', name, '--actor-credentials-stdin', ...args], { config: fx.configFile, stdin, env });

  beforeAll(async () => {
    // Three failures lock an account, so the lockout is reached in a few tries.
    fx = await startGatewayFixture('[auth]\nlockout_threshold = 3');
    for (const [name, roles] of [
      ['vic', ['vendor']], ['dora', ['device_manager']], ['dora2', ['device_manager']], ['sam', ['security']], ['ada', ['admin']], ['lou', ['device_manager']],
    ] as const) people[name] = await fx.addUser(name, [...roles]);
    const device = await fx.cli(['device', 'add', 'mon-7', '--host', '127.0.0.1', '--port', '22', '--protocol', 'ssh', '--udi', 'UDI-mon-7', ...CLASS_OF_LEVEL[2]]);
    expect(device.code, device.stderr).toBe(0);
    // A pending request by a proven vendor, for the decisions below.
    const created = await fx.cliAs(people.vic as TestUser, ['request', 'create', '--device', 'mon-7', '--protocol', 'ssh', '--purpose', 'Read the alarm log', '--work-order', 'WO-13',
      '--from', 'now', '--duration', '1h', '--json']);
    expect(created.code, created.stderr).toBe(0);
    requestId = json<{ id: string }>(created).id;
  });
  afterAll(async () => {
    await fx?.stop();
  });

  it('never acts as dora on her name alone: no terminal, no proof, nothing done, the claim audited', async () => {
    const before = await lastSeq();
    for (const r of [
      await fx.cli(['request', 'approve', requestId, '--actor', 'dora', '--json']),
      await runCli(['request', 'approve', requestId, '--json'], { config: fx.configFile, env: { PORTCULLIS_ACTOR: 'dora' } }),
    ]) {
      expect(r.code).toBe(1);
      expect(json<ApiError>(r).error.code).toBe('ACTOR_UNPROVEN');
      expect(r.stderr).toContain('--actor dora must be proven');
    }
    expect((await fx.gw.runtime.store.getRequest(requestId))?.approvals).toEqual([]);
    const entries = await since(before);
    expect(entries.map((e) => [e.type, e.actor, e.code, e.data.claimed, e.channel, e.source])).toEqual([
      ['cli.actor_refused', OPERATOR, 'ACTOR_UNPROVEN', 'dora', 'cli', OS_USER],
      ['cli.actor_refused', OPERATOR, 'ACTOR_UNPROVEN', 'dora', 'cli', OS_USER],
    ]);
    expect(entries.some((e) => e.actor === 'dora')).toBe(false);
  });

  it('refuses a wrong password, a wrong code and a replayed code, each audited as a failed sign-in on the cli channel', async () => {
    const dora = people.dora as TestUser;
    const before = await lastSeq();
    const approve = ['request', 'approve', requestId, '--json'];
    const code = await fx.totp.code(dora.totpSecret);
    const wrongPassword = await claimed('dora', approve, `not her password\n${code}\n`);
    expect(json<ApiError>(wrongPassword).error.code).toBe('AUTH_FAILED');
    const wrongCode = await claimed('dora', approve, `${dora.password}\n${code === '000000' ? '111111' : '000000'}\n`);
    expect(json<ApiError>(wrongCode).error.code).toBe('AUTH_FAILED');
    // The right proof acts once (the TOTP step is consumed) …
    const proven = await claimed('dora', approve, `${dora.password}\n${code}\n`);
    expect(proven.code, proven.stderr).toBe(0);
    // … and the same code again is a replay, whatever it was meant to do.
    const replay = await claimed('dora', ['request', 'deny', requestId, '--reason', 'replayed', '--json'], `${dora.password}\n${code}\n`);
    expect(json<ApiError>(replay).error.code).toBe('TOTP_REPLAYED');
    expect((await fx.gw.runtime.store.getRequest(requestId))?.status).not.toBe('denied');

    const logins = (await since(before)).filter((e) => e.type.startsWith('login.'));
    expect(logins.map((e) => [e.type, e.actor, e.code, e.data.reason ?? null, e.channel, e.source])).toEqual([
      ['login.failed', 'dora', 'AUTH_FAILED', 'wrong password', 'cli', OS_USER],
      ['login.failed', 'dora', 'AUTH_FAILED', 'wrong TOTP code', 'cli', OS_USER],
      ['login.ok', 'dora', null, null, 'cli', OS_USER],
      ['login.failed', 'dora', 'TOTP_REPLAYED', 'TOTP code already used', 'cli', OS_USER],
    ]);
    // The approval is dora's, proven, and says where it came from.
    const approval = (await since(before)).find((e) => e.type === 'request.approval');
    expect(approval).toMatchObject({ actor: 'dora', channel: 'cli', source: OS_USER });
  });

  it('counts failed proofs towards the lockout, and a locked account stays out with the right proof', async () => {
    const lou = people.lou as TestUser;
    for (let i = 0; i < 3; i++) {
      const r = await claimed('lou', ['grant', 'list', '--json'], `wrong password ${i}\n000000\n`);
      expect(r.code).toBe(1);
    }
    const locked = await claimed('lou', ['grant', 'list', '--json'], `${lou.password}\n${oathtoolCode(lou.totpSecret)}\n`);
    expect(json<ApiError>(locked).error.code).toBe('ACCOUNT_LOCKED');
    expect((await fx.audit('account.locked')).map((e) => [e.data.user, e.channel])).toEqual([['lou', 'cli']]);
    // The console refuses too: it is one lock.
    expect((await new ApiClient(fx.gw.web.port).login('lou', lou.password, { secret: lou.totpSecret })).status).toBe(423);
  });

  it('refuses a disabled account whatever proof it brings', async () => {
    const sam = people.sam as TestUser;
    expect((await fx.cli(['user', 'disable', 'sam'])).code).toBe(0);
    const r = await fx.cliAs(sam, ['request', 'approve', requestId, '--json']);
    expect(json<ApiError>(r).error.code).toBe('ACCOUNT_DISABLED');
    expect((await fx.audit('login.refused')).filter((e) => e.actor === 'sam').map((e) => [e.code, e.channel])).toEqual([['ACCOUNT_DISABLED', 'cli']]);
  });

  it('leaves the host operator no decision that needs a named person, and audits each refusal', async () => {
    const before = await lastSeq();
    const tries: Array<[string, string[]]> = [
      ['approve', ['request', 'approve', requestId]],
      ['deny', ['request', 'deny', requestId, '--reason', 'no']],
      ['check', ['device', 'check', 'mon-7', '--passed', '--notes', 'fine']],
      ['decommission', ['device', 'decommission', 'mon-7', '--method', 'shredded', '--data-wiping', 'completed']],
      ['grant with file transfer', ['grant', 'add', '--user', 'vic', '--device', 'mon-7', '--protocol', 'ssh', '--from', 'now', '--until', '+1h', '--file-transfer']],
      ['give a privileged role', ['user', 'add', 'eve', '--role', 'security', '--password-stdin']],
      ['raise a role', ['user', 'set', 'vic', '--role', 'admin']],
    ];
    for (const [what, args] of tries) {
      const r = await fx.cli([...args, '--json'], 'eve long passphrase\n');
      expect(r.code, what).toBe(1);
      expect(json<ApiError>(r).error.code, what).toBe('PERSON_REQUIRED');
    }
    const refusals = (await since(before)).filter((e) => e.type === 'cli.refused');
    expect(refusals).toHaveLength(tries.length);
    expect(refusals.every((e) => e.actor === OPERATOR && e.code === 'PERSON_REQUIRED' && e.channel === 'cli' && e.source === OS_USER)).toBe(true);
    expect(await fx.gw.runtime.store.getUser('eve')).toBeNull();
    expect((await fx.gw.runtime.store.getUser('vic'))?.roles).toEqual(['vendor']);
    expect((await fx.gw.runtime.store.getDevice('mon-7'))?.state).toBe('active');
    expect((await fx.gw.runtime.store.listGrants({ user: 'vic' })).filter((g) => g.createdBy === OPERATOR || g.allowUpload || g.allowDownload)).toEqual([]);
    // What the host operator may do is recorded as the host operator: a vendor account, a plain grant.
    const vendor = await fx.cli(['user', 'add', 'vera', '--role', 'vendor', '--org', 'test-vendor', '--nda-signed', 'now', '--nda-expires', '+30d', '--password-stdin'], 'vera long passphrase\n');
    expect(vendor.code, vendor.stderr).toBe(0);
    expect((await fx.audit('user.created')).at(-1)).toMatchObject({ actor: OPERATOR, channel: 'cli', source: OS_USER, data: { user: 'vera' } });
  });

  it('takes the proof and a --password-stdin secret on one standard input: proof first, secret on the third line', async () => {
    const ada = people.ada as TestUser;
    const r = await fx.cliAs(ada, ['user', 'add', 'sec-new', '--role', 'security', '--password-stdin', '--json'], 'the new officer passphrase\n');
    expect(r.code, r.stderr).toBe(0);
    expect((await fx.audit('user.created')).at(-1)).toMatchObject({ actor: 'ada', channel: 'cli', data: { user: 'sec-new' } });
    // The privileged role waits for a second admin (S-1.3), asked by the proven ada.
    expect((await fx.audit('role_change.requested')).at(-1)).toMatchObject({ actor: 'ada', channel: 'cli', data: { user: 'sec-new', added: ['security'] } });
    // The third line became the new account's password (and neither line 1 nor 2 did).
    const stored = (await fx.gw.runtime.store.getUser('sec-new'))?.passwordHash ?? '';
    expect(await verifyPassword('the new officer passphrase', stored)).toBe(true);
    expect(await verifyPassword(ada.password, stored)).toBe(false);
    // A proof without the secret after it is refused before anything is done.
    const missing = await fx.cliAs(ada, ['user', 'password', 'sec-new', '--password-stdin']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('the password on standard input is empty');
  });

  it('asks on the terminal with echo off when there is one (a real pseudo-terminal, through script(1))', async () => {
    const dora2 = people.dora2 as TestUser;
    const code = await fx.totp.code(dora2.totpSecret);
    const command = [process.execPath, CLI, '--config', fx.configFile, '--actor', 'dora2', 'grant', 'list'].join(' ');
    const typed = await new Promise<{ out: string; exit: number | null }>((resolve, reject) => {
      const child = spawn('script', ['-qec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let asked = 0;
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        // Typed only once asked, as a person would: before the prompt the terminal would still echo.
        if (asked === 0 && out.includes('Password of dora2: ')) {
          asked = 1;
          child.stdin.write(`${dora2.password}\r`);
        }
        if (asked === 1 && out.includes('TOTP code of dora2: ')) {
          asked = 2;
          child.stdin.write(`${code}\r`);
        }
      });
      child.on('error', reject);
      child.on('close', (exit) => resolve({ out, exit }));
    });
    expect(typed.exit, typed.out).toBe(0);
    expect(typed.out).not.toContain(dora2.password);
    expect(typed.out).not.toContain(code);
    expect((await fx.audit('login.ok')).at(-1)).toMatchObject({ actor: 'dora2', channel: 'cli', data: { method: 'cli password+totp' } });
  });

  it('refuses an unfinished or misplaced proof as usage', async () => {
    const halfProof = await claimed('dora2', ['grant', 'list'], 'only-one-line');
    expect(halfProof.code).toBe(2);
    expect(halfProof.stderr).toContain('two lines');
    const noActor = await fx.cli(['--actor-credentials-stdin', 'grant', 'list'], 'x\n123456\n');
    expect(noActor.code).toBe(2);
  });

  it('takes an API token as the proof: its owner acts, held to the token\'s scope; a made-up token or one naming someone else is refused', async () => {
    const withToken = (args: string[], token: string): Promise<CliResult> => runCli(args, { config: fx.configFile, env: { PORTCULLIS_TOKEN: token } });
    const madeUp = `pcx_0123456789abcdef_${'A'.repeat(43)}`;
    const before = await lastSeq();
    const bad = await withToken(['grant', 'list', '--json'], madeUp);
    expect(json<ApiError>(bad).error.code).toBe('TOKEN_INVALID');
    expect(bad.stdout + bad.stderr).not.toContain(madeUp);
    expect((await since(before)).map((e) => [e.type, e.code, e.channel])).toEqual([['token.refused', 'TOKEN_INVALID', 'cli']]);
    // tina (security) makes a token that lists grants and nothing else, proving who she is.
    const tina = await fx.addUser('tina', ['security']);
    const made = json<{ secret: string; token: { id: string } }>(await fx.cliAs(tina, ['token', 'create', '--name', 'ops', '--scope', 'grant.read_all', '--expires', '+1d', '--json']));
    const listed = await withToken(['grant', 'list', '--json'], made.secret);
    expect(listed.code, listed.stderr).toBe(0);
    expect((await fx.audit('token.used')).at(-1)).toMatchObject({ actor: 'tina', channel: 'cli', data: { token: made.token.id } });
    // Her roles allow a revocation; the token does not.
    const outOfScope = await withToken(['grant', 'revoke', 'g-00000000', '--json'], made.secret);
    expect(json<ApiError>(outOfScope).error.code).toBe('TOKEN_SCOPE');
    // A token proves its owner only.
    const foreign = await runCli(['--actor', 'sam', 'grant', 'list', '--json'], { config: fx.configFile, env: { PORTCULLIS_TOKEN: made.secret } });
    expect(json<ApiError>(foreign).error.code).toBe('ACTOR_UNPROVEN');
    const all = JSON.stringify(await since(before));
    expect(all).not.toContain(made.secret);
    expect(all).not.toContain(madeUp);
  });
});
