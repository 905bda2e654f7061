import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandRule } from '../../policy/command-policy.js';
import { ApiClient, TotpSource } from '../support/api-client.js';
import { ALLOWED_CONTROLS, BYPASS_CORPUS, BYPASS_PROFILE } from '../support/bypass-corpus.js';
import { startDeviceSshd, type DeviceSshd } from '../support/device-sshd.js';
import { startGatewayFixture, type GatewayFixture, type TestUser } from '../support/gateway-fixture.js';
import { interactiveSsh, runSsh, sshMaster, type SshMaster, type SshRun } from '../support/ssh-client.js';

/**
 * R-6.3c, issue 5: command profiles hold as a security boundary, proven on the device's side.
 * Each device logs every command it is asked to run (an sshd ForceCommand); a command that is not
 * in that log never reached the device. The attack corpus goes to a device that only logs and
 * never runs anything (it is root on this machine), through real OpenSSH sessions.
 */
const toml = (name: string, p: { mode: string; rules: readonly CommandRule[]; allowConstructs?: readonly string[] }): string => [
  `[profiles.${name}]`, `mode = "${p.mode}"`,
  ...(p.allowConstructs ? [`allow_constructs = ${JSON.stringify(p.allowConstructs)}`] : []),
  'rules = [',
  ...p.rules.map((r) => `  { program = ${JSON.stringify(r.program)}${r.args ? `, args = ${JSON.stringify(r.args)}` : ''}, action = "${r.action}" },`),
  ']',
].join('\n');

const BOX: { mode: string; rules: CommandRule[]; allowConstructs: string[] } = {
  mode: 'restricted',
  allowConstructs: ['pipeline', 'and-or'],
  rules: [
    { program: 'echo', action: 'allow' },
    { program: 'ls', action: 'allow' },
    { program: 'cat', args: ['/etc/hostname'], action: 'allow' },
    { program: 'false', args: [], action: 'allow' },
    { program: 'tr', args: ['a-z', 'A-Z'], action: 'allow' },
    { program: 'uname', args: ['-s'], action: 'allow' },
    { program: 'hostname', args: [], action: 'review' },
    { program: 'rm', action: 'deny' },
  ],
};

const POLICY = [
  '[commands]', 'review_timeout = "5s"',
  toml('box', BOX),
  toml('insp', { ...BOX, mode: 'inspected' }),
  toml('ct-diag', BYPASS_PROFILE),
  '[profiles.everything]', 'mode = "full"',
  '[approval.level_2]', 'default_profile = "box"',
].join('\n');

describe('command profiles through real OpenSSH sessions', () => {
  let fx: GatewayFixture;
  let box: DeviceSshd;
  let probe: DeviceSshd;
  const totp = new TotpSource();
  const users: Record<string, TestUser> = {};
  let reviewer: ApiClient;
  let security: ApiClient;

  const ssh = async (name: string, device: string, command: string, timeoutMs = 30_000): Promise<SshRun> => {
    const u = users[name] as TestUser;
    return runSsh({ port: fx.sshPort, login: `${name}#${device}`, password: u.password, totpCode: await totp.code(u.totpSecret), command, timeoutMs });
  };

  beforeAll(async () => {
    box = await startDeviceSshd({ logCommands: true });
    probe = await startDeviceSshd({ logCommands: true, execute: false });
    fx = await startGatewayFixture(POLICY);
    await fx.addDevice('box', box);
    await fx.addDevice('probe', probe);
    for (const name of ['vic', 'ria', 'nia', 'rev', 'ted', 'fay', 'cora', 'ines', 'fred', 'xena', 'finn']) {
      users[name] = await fx.addUser(name);
      await fx.grant(name, 'box', 'now', '+1h');
    }
    const grant = await fx.cli(['grant', 'add', '--user', 'cora', '--device', 'probe', '--protocol', 'ssh', '--from', 'now', '--until', '+1h', '--profile', 'ct-diag']);
    expect(grant.code, grant.stderr).toBe(0);
    const full = await fx.cli(['grant', 'add', '--user', 'fay', '--device', 'probe', '--protocol', 'ssh', '--from', 'now', '--until', '+1h', '--profile', 'everything']);
    expect(full.code, full.stderr).toBe(0);
    // ines, fred and finn work on box under other profiles than its default: revoke theirs and grant anew.
    for (const [name, profile] of [['ines', 'insp'], ['fred', 'everything'], ['finn', 'everything']] as const) {
      for (const g of await fx.gw.runtime.store.listGrants({ user: name })) await fx.gw.runtime.store.revokeGrant(g.id, Date.now(), 'test');
      const r = await fx.cli(['grant', 'add', '--user', name, '--device', 'box', '--protocol', 'ssh', '--from', 'now', '--until', '+1h', '--profile', profile]);
      expect(r.code, r.stderr).toBe(0);
    }
    const dm = await fx.addUser('dm', ['device_manager']);
    reviewer = new ApiClient(fx.gw.web.port);
    await reviewer.login(dm.name, dm.password, { code: await totp.code(dm.totpSecret) });
    const sec = await fx.addUser('secu', ['security']);
    security = new ApiClient(fx.gw.web.port);
    await security.login(sec.name, sec.password, { code: await totp.code(sec.totpSecret) });
  });
  afterAll(async () => {
    await fx?.stop();
    await box?.stop();
    await probe?.stop();
  });

  it('runs an allowed exec request on the device, re-quoted, with its output and exit status', async () => {
    const r = await ssh('vic', 'box', 'echo "hello   world"');
    expect(r.stdout).toBe('hello   world\n');
    expect(r.code).toBe(0);
    expect(box.received().at(-1)).toMatch(/\( exec 'echo' 'hello {3}world' \)$/);
    const piped = await ssh('vic', 'box', 'echo abc | tr a-z A-Z && false');
    expect(piped.stdout).toBe('ABC\n');
    expect(piped.code).toBe(1);
  });

  it('logs the exit status (or signal) of every exec request it runs, in the command log and the audit chain', async () => {
    type Logged = { id: string; session: string; decision: string; exitStatus: number | null; exitSignal: string | null };
    const missing = `/nonexistent-pc-${process.pid}`;
    const runs: Array<[user: string, line: string, status: number | null, signal: string | null]> = [
      ['xena', 'false', 1, null],
      ['xena', `ls ${missing}`, 2, null],
      // Full mode sends the line as it is: the device's shell ends by a signal, and reports that instead of a status.
      ['finn', `kill -TERM $$ # pc-signal-${process.pid}`, null, 'SIGTERM'],
    ];
    // One connection per person (each exec request is a session of its own): no second TOTP step to wait for.
    const masters = new Map<string, SshMaster>();
    try {
      for (const name of ['xena', 'finn']) {
        const u = users[name] as TestUser;
        masters.set(name, await sshMaster({ port: fx.sshPort, login: `${name}#box`, password: u.password, totpCode: await totp.code(u.totpSecret) }));
      }
      for (const [user, line, status, signal] of runs) {
        const r = await (masters.get(user) as SshMaster).run(line);
        if (status !== null) expect(r.code, line).toBe(status);
        // Written as the session is sealed, just after the client has its exit status.
        let row: Logged | undefined;
        await expect.poll(async () => {
          row = (await security.get<{ commands: Logged[] }>(`/api/commands?user=${user}&text=${encodeURIComponent(line)}`)).body.commands[0];
          return row && { status: row.exitStatus, signal: row.exitSignal };
        }, { timeout: 30_000 }).toEqual({ status, signal });
        expect(row?.decision, line).toBe(user === 'finn' ? 'logged' : 'allow');
        const finished = (await fx.audit('command.finished')).filter((e) => e.data.command === row?.id);
        expect(finished, line).toHaveLength(1);
        expect(finished[0]?.actor).toBe(user);
        expect(finished[0]?.data).toMatchObject({ session: row?.session, device: 'box', exitStatus: status, exitSignal: signal });
      }
    } finally {
      for (const m of masters.values()) await m.close();
    }
  });

  it('never lets a denied exec request reach the device', async () => {
    const marker = `/tmp/pc-denied-${process.pid}`;
    const before = box.received().length;
    const u = users.ria as TestUser;
    const master = await sshMaster({ port: fx.sshPort, login: 'ria#box', password: u.password, totpCode: await totp.code(u.totpSecret) });
    try {
      for (const line of [`touch ${marker}`, `echo x; touch ${marker}`, `echo $(touch ${marker})`, `rm -rf ${marker}`, `cat /etc/shadow`]) {
        const r = await master.run(line);
        expect(r.code, line).toBe(1);
        expect(r.stderr, line).toContain('[COMMAND_DENIED]');
        expect(r.stdout).toBe('');
      }
    } finally {
      await master.close();
    }
    expect(box.received().length).toBe(before);
    expect(existsSync(marker)).toBe(false);
  });

  it('owns the prompt in restricted mode: allowed commands run, denied lines never reach the device', async () => {
    const marker = `/tmp/pc-restricted-${process.pid}`;
    const u = users.ted as TestUser;
    const before = box.received().length;
    const s = interactiveSsh({ port: fx.sshPort, login: 'ted#box', password: u.password, totpCode: await totp.code(u.totpSecret) });
    await s.waitFor('ted@box');
    s.type('echo restricted-$((6*7))\r');
    await s.waitFor('[COMMAND_DENIED]');
    s.type('echo restricted-ok\r');
    // Typed after the prompt is back: what is typed while a command runs goes to that command.
    await s.waitFor(/restricted-ok\r\n.*ted@box/s);
    s.type(`touch ${marker}\r`);
    await s.waitFor(/touch.*\r\n.*denied/s);
    s.type('cd /etc\r');
    s.type('ls\r');
    // ls has finished only when the prompt is back (in /etc, so cd took effect).
    await s.waitFor(/hostname.*ted@box:\/etc\$ /s);
    s.type('help\r');
    await s.waitFor('tr a-z A-Z');
    s.type('\u0004');
    const run = await s.done;
    expect(run.code).toBe(0);
    expect(existsSync(marker)).toBe(false);
    const got = box.received().slice(before);
    expect(got).toHaveLength(2);
    expect(got[0]).toMatch(/exec 'echo' 'restricted-ok'$/);
    expect(got[1]).toMatch(/cd '\/etc' && exec 'ls'$/);
    expect(got.join(' ')).not.toContain('touch');
    expect(got.join(' ')).not.toContain('<shell>');
  });

  it('logs every command line with its decision, rule and exit status, searchable through the API', async () => {
    const denied = await security.get<{ commands: Array<{ user: string; decision: string; rule: string | null; line: string }> }>('/api/commands?text=touch');
    expect(denied.body.commands.length).toBeGreaterThanOrEqual(3);
    expect(denied.body.commands.every((c) => c.decision === 'deny')).toBe(true);
    const rm = await security.get<{ commands: Array<{ rule: string | null }> }>('/api/commands?text=rm%20-rf');
    expect(rm.body.commands[0]?.rule).toBe('box#8');
    const ok = await security.get<{ commands: Array<{ id: string; decision: string; rule: string; exitStatus: number | null; session: string }> }>('/api/commands?text=restricted-ok');
    expect(ok.body.commands[0]).toMatchObject({ decision: 'allow', rule: 'box#1', exitStatus: 0 });
    const audit = await fx.audit('command');
    expect(audit.some((e) => e.data.line === 'echo restricted-ok' && e.outcome === 'ok')).toBe(true);
    // A restricted line's end is in the audit chain too (it ran as its own exec request).
    const finished = (await fx.audit('command.finished')).filter((e) => e.data.command === ok.body.commands[0]?.id);
    expect(finished.map((e) => [e.data.session, e.data.mode, e.data.exitStatus, e.data.exitSignal])).toEqual([[ok.body.commands[0]?.session, 'restricted', 0, null]]);
    expect((await (reviewer as ApiClient).get('/api/commands')).status).toBe(403);
  });

  it('holds a review command until an approver confirms it, then runs it', async () => {
    const pending = ssh('rev', 'box', 'hostname');
    let held: { id: string; line: string } | undefined;
    await expect.poll(async () => {
      held = (await reviewer.get<{ commands: Array<{ id: string; line: string; user: string }> }>('/api/commands/held')).body.commands.find((c) => c.user === 'rev');
      return held?.line;
    }, { timeout: 30_000 }).toBe('hostname');
    const before = box.received().length;
    const answer = await reviewer.post<{ decision: string; reviewer: string }>(`/api/commands/${held?.id}/review`, { approve: true, comment: 'planned' });
    expect(answer.body).toMatchObject({ decision: 'allow', reviewer: 'dm' });
    const r = await pending;
    expect(r.stderr).toContain('waiting for an approver');
    expect(r.code).toBe(0);
    expect(r.stdout.trim().length).toBeGreaterThan(0);
    expect(box.received().length).toBe(before + 1);
    // Answered once: a second answer is refused.
    expect((await reviewer.post<{ error: { code: string } }>(`/api/commands/${held?.id}/review`, { approve: false })).body.error.code).toBe('REQUEST_NOT_PENDING');
  });

  it('denies a review command nobody answers within the timeout, and the device never sees it', async () => {
    const before = box.received().length;
    const r = await ssh('nia', 'box', 'hostname', 30_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no approver answered in time');
    expect(box.received().length).toBe(before);
    const log = await security.get<{ commands: Array<{ decision: string; reason: string }> }>('/api/commands?user=nia&text=hostname');
    expect(log.body.commands[0]).toMatchObject({ decision: 'deny', reason: 'no approver answered in time' });
  });

  it('refuses every line of the bypass corpus sent as exec requests, and the device receives none of them', async () => {
    const u = users.cora as TestUser;
    const master = await sshMaster({ port: fx.sshPort, login: 'cora#probe', password: u.password, totpCode: await totp.code(u.totpSecret) });
    try {
      // A NUL cannot travel in an SSH command string; every other line goes as it is.
      const corpus = BYPASS_CORPUS.filter((c) => !c.line.includes('\u0000'));
      expect(corpus.length).toBeGreaterThanOrEqual(60);
      const results: Array<{ name: string; run: SshRun }> = [];
      for (let i = 0; i < corpus.length; i += 8) {
        const batch = corpus.slice(i, i + 8);
        results.push(...await Promise.all(batch.map(async (c) => ({ name: c.name, run: await master.run(c.line, { timeoutMs: 30_000 }) }))));
      }
      // Refused by the profile, or (rsync, scp) by the grant's file-transfer rule: either way exit 1 and nothing sent.
      const leaked = results.filter((r) => r.run.code !== 1 || !/\[(COMMAND_DENIED|FILE_TRANSFER_NOT_GRANTED)\]/.test(r.run.stderr));
      expect(leaked.map((r) => `${r.name}: exit ${r.run.code} ${r.run.stderr.trim()}`)).toEqual([]);
      expect(probe.received()).toEqual([]);
      // The same connection runs what the profile allows: the corpus was refused for what it is, not wholesale.
      for (const line of ALLOWED_CONTROLS.slice(0, 5)) {
        const ok = await master.run(line);
        expect(ok.stdout, line).toContain('device received it');
      }
      expect(probe.received()).toHaveLength(5);
    } finally {
      await master.close();
    }
  });

  it('refuses the printable corpus lines typed at the restricted prompt', async () => {
    const u = users.cora as TestUser;
    const before = probe.received().length;
    // Lines with control characters are keystrokes at a prompt (Enter, Ctrl-C…), not text; they went as exec requests above.
    const typed = BYPASS_CORPUS.filter((c) => c.expect === 'deny' && !/[\p{Cc}\u2028\u2029]/u.test(c.line));
    expect(typed.length).toBeGreaterThanOrEqual(60);
    const s = interactiveSsh({ port: fx.sshPort, login: 'cora#probe', password: u.password, totpCode: await totp.code(u.totpSecret) });
    await s.waitFor('cora@probe');
    for (const c of typed) s.type(`${c.line}\r`);
    await s.waitFor((seen) => seen.split('[COMMAND_DENIED]').length - 1 >= typed.length, 60_000);
    s.type('exit\r');
    await s.done;
    expect(probe.received().length).toBe(before);
  });

  it('runs anything in full mode, and still logs every command line', async () => {
    const r = await ssh('fay', 'probe', 'uname -a; id');
    expect(r.stdout).toContain('device received it');
    expect(probe.received().at(-1)).toBe('uname -a; id');
    const logged = await security.get<{ commands: Array<{ decision: string; mode: string }> }>('/api/commands?user=fay');
    expect(logged.body.commands[0]).toMatchObject({ decision: 'logged', mode: 'full' });
  });

  it('checks each line of a real shell at Enter in inspected mode, and cancels what the profile refuses', async () => {
    const marker = `/tmp/pc-inspected-${process.pid}`;
    const u = users.ines as TestUser;
    const s = interactiveSsh({ port: fx.sshPort, login: 'ines#box', password: u.password, totpCode: await totp.code(u.totpSecret) });
    await s.waitFor('# ');
    await new Promise((r) => setTimeout(r, 300));
    s.type('echo inspected-$((40+2))\r');
    await s.waitFor('[COMMAND_DENIED]');
    s.type('echo inspected-ok\r');
    await s.waitFor('inspected-ok\r\n');
    s.type(`touch ${marker}\r`);
    await s.waitFor((seen) => seen.split('[COMMAND_DENIED]').length - 1 >= 2);
    s.type('echo still-here\r');
    await s.waitFor('still-here\r\n');
    s.type('exit\r');
    await s.done;
    expect(existsSync(marker)).toBe(false);
    const log = await security.get<{ commands: Array<{ line: string; decision: string; mode: string }> }>('/api/commands?user=ines');
    const lines = log.body.commands.map((c) => [c.line, c.decision, c.mode]);
    expect(lines).toContainEqual([`touch ${marker}`, 'deny', 'inspected']);
    expect(lines).toContainEqual(['echo inspected-ok', 'allow', 'inspected']);
  });

  it('logs the lines of a full-mode shell without holding them', async () => {
    const u = users.fred as TestUser;
    const s = interactiveSsh({ port: fx.sshPort, login: 'fred#box', password: u.password, totpCode: await totp.code(u.totpSecret) });
    await s.waitFor('# ');
    s.type('echo logged-$((1+1))\r');
    await s.waitFor('logged-2');
    s.type('exit\r');
    await s.done;
    const log = await security.get<{ commands: Array<{ line: string; decision: string; mode: string }> }>('/api/commands?user=fred');
    expect(log.body.commands.map((c) => [c.line, c.decision, c.mode])).toContainEqual(['echo logged-$((1+1))', 'logged', 'full']);
  });
});
