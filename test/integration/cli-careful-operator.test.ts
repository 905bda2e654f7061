import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { COMMANDS, main } from '../../gateway/cli/main.js';
import { runCli, startGatewayFixture, type CliResult, type GatewayFixture } from '../support/gateway-fixture.js';

/**
 * Issue 13, item 6: a CLI a careful operator can try things with. `--help` anywhere prints the
 * usage and does nothing (before, `init --help` initialised a data directory and `serve --help`
 * started the gateway); `--config` goes before or after the command; a grant whose command profile
 * does not resolve is refused when it is given, not at every connection after.
 */
const json = <T>(r: CliResult): T => JSON.parse(r.stdout) as T;

describe('--help on every command', () => {
  let dir = '';
  let config = '';
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'pc-help-'));
    config = path.join(dir, 'gateway.config.toml');
    writeFileSync(config, 'data_dir = "./data"\n[ssh]\nlisten = "127.0.0.1:0"\n[web]\nlisten = "127.0.0.1:0"\n');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('prints each command\'s and subcommand\'s usage and exits 0, creating nothing', async () => {
    const out: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      out.push(String(chunk));
      return true;
    });
    const seen: string[] = [];
    try {
      const words = new Set(COMMANDS.map(([k]) => k.split(' ')[0] as string));
      expect([...words]).toEqual(expect.arrayContaining(['init', 'serve', 'user', 'org', 'device', 'grant', 'request', 'records', 'sessions', 'recording', 'audit', 'verify']));
      for (const args of [...[...words].map((w) => [w]), ...COMMANDS.map(([k]) => k.split(' '))]) {
        for (const flag of ['--help', '-h']) {
          out.length = 0;
          const code = await main([...args, flag, '--config', config]);
          seen.push(`${args.join(' ')} ${flag} → ${code}`);
          expect(code, `${args.join(' ')} ${flag}`).toBe(0);
          expect(out.join(''), args.join(' ')).toContain(`Usage: portcullis ${args.join(' ')}`);
          expect(out.join('')).toContain('--actor-credentials-stdin');
        }
      }
    } finally {
      spy.mockRestore();
    }
    expect(seen.length).toBeGreaterThan(90);
    expect(readdirSync(dir)).toEqual(['gateway.config.toml']);
  });

  it('does not initialise or serve when asked for help, in a real process either, with --config before the command', async () => {
    for (const args of [['init', '--help'], ['serve', '--help'], ['--help'], ['device', 'set', '--help'], ['request', 'approve', '42', '--help', '--actor', 'dora']]) {
      const r = await runCli(['--config', config, ...args]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      expect(r.stdout).toContain('Usage: portcullis');
      expect(r.stdout).not.toMatch(/password:|otpauth:|serving/);
    }
    expect(readdirSync(dir)).toEqual(['gateway.config.toml']);
    // Without --help, an unknown subcommand is still a usage error.
    expect((await runCli(['device', 'frob'], { config })).code).toBe(2);
  });
});

describe('the configuration file before or after the command, and grants whose profile cannot resolve', () => {
  let fx: GatewayFixture;
  beforeAll(async () => {
    // Level 1 has no default profile here, and only one profile exists.
    fx = await startGatewayFixture('[profiles.diag]\nmode = "restricted"\nrules = [{ program = "echo", action = "allow" }]\n[approval.level_3]\ndefault_profile = "diag"');
    await fx.addUser('vic');
    const d = await fx.cli(['device', 'add', 'lab-5', '--host', '127.0.0.1', '--port', '22', '--protocol', 'ssh', '--udi', 'UDI-lab-5',
      '--usage-form', 'laboratory', '--contact', 'none', '--effect', 'none']);
    expect(d.code, d.stderr).toBe(0);
  });
  afterAll(async () => {
    await fx?.stop();
  });

  it('reads --config before the command as after it', async () => {
    const before = await runCli(['--config', fx.configFile, 'device', 'list', '--json']);
    const after = await runCli(['device', 'list', '--json', '--config', fx.configFile]);
    const joined = await runCli([`--config=${fx.configFile}`, '--json', 'device', 'list']);
    expect(before.code, before.stderr).toBe(0);
    expect(json<Array<{ name: string }>>(before).map((d) => d.name)).toEqual(['lab-5']);
    expect(after.stdout).toBe(before.stdout);
    expect(joined.stdout).toBe(before.stdout);
    expect((await runCli(['--config', fx.configFile, 'device', 'list', '--config', '/elsewhere.toml'])).code).toBe(2);
  });

  it('refuses a grant without a profile where the level has no default, and one naming no configured profile, both audited', async () => {
    const grant = (extra: string[]) => fx.cli(['grant', 'add', '--user', 'vic', '--device', 'lab-5', '--protocol', 'ssh', '--from', 'now', '--until', '+1h', ...extra, '--json']);
    const none = await grant([]);
    expect(none.code).toBe(1);
    expect(json<{ error: { code: string } }>(none).error.code).toBe('PROFILE_UNKNOWN');
    expect(none.stderr).toContain('level 1 has no default profile configured (configured: diag)');
    const unknown = await grant(['--profile', 'nope']);
    expect(json<{ error: { code: string } }>(unknown).error.code).toBe('PROFILE_UNKNOWN');
    expect(await fx.gw.runtime.store.listGrants({ user: 'vic' })).toEqual([]);
    expect((await fx.audit('grant.refused')).map((e) => [e.code, e.data.profile, e.channel])).toEqual([['PROFILE_UNKNOWN', null, 'cli'], ['PROFILE_UNKNOWN', 'nope', 'cli']]);
    const named = await grant(['--profile', 'diag']);
    expect(named.code, named.stderr).toBe(0);
  });
});
