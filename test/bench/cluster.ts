/**
 * `npm run bench` (second part): what cluster mode and command mediation cost, each against its
 * peer measured in the same run.
 *   - ending a session held by node A: from the API call to the OpenSSH client's exit, for a kill
 *     on node A (the peer) and, on node B, a kill, a grant revocation, disabling the user and
 *     locking the account (two `portcullis serve` processes on one Redis);
 *   - command mediation: `ssh user#device 'uname -s'` (exec, password + TOTP) under a restricted
 *     profile vs under a full-mode profile, and the parse + decide time of one line.
 * Knobs: BENCH_CLUSTER_RUNS (10).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decideCommand } from '../../policy/command-policy.js';
import type { Role } from '../../policy/types.js';
import { parseCommandLine, preloadShellParser } from '../../gateway/mediation/shell-parse.js';
import { ApiClient, TotpSource } from '../support/api-client.js';
import { startDeviceSshd, type DeviceSshd } from '../support/device-sshd.js';
import { CLASS_OF_LEVEL, runCli } from '../support/gateway-fixture.js';
import { spawnGateway, type GatewayProcess } from '../support/gateway-process.js';
import { openTestRedisStore, TEST_REDIS_URL, uniquePrefix } from '../support/redis.js';
import { runSsh } from '../support/ssh-client.js';
import { staffInProcess } from '../support/staff-in-process.js';
import { fmt, median, percentile, ratio, table } from './bench-lib.js';

const RUNS = Math.max(3, Number(process.env.BENCH_CLUSTER_RUNS) || 10);
const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-bench-cluster-'));
const prefix = uniquePrefix();
const totp = new TotpSource();

function nodeConfig(node: string): string {
  const file = path.join(dir, `${node}.toml`);
  writeFileSync(file, [
    `data_dir = "./${node}"`, '[ssh]', 'listen = "127.0.0.1:0"', 'host_key = "./shared/ssh_host_ed25519_key"',
    '[web]', 'listen = "127.0.0.1:0"', 'tls_cert = "./shared/web-tls.crt"', 'tls_key = "./shared/web-tls.key"', 'login_rate_per_minute = 1000',
    '[store]', 'backend = "redis"', `url = "${TEST_REDIS_URL}"`, `prefix = "${prefix}"`,
    '[cluster]', `node_id = "${node}"`, '[vault]', 'master_key = "./shared/master.key"', '[recordings]', 'path = "./shared/recordings"',
    '[log]', 'level = "warn"',
    '[profiles.full]', 'mode = "full"',
    '[profiles.narrow]', 'mode = "restricted"', 'rules = [{ program = "uname", args = ["-s"], action = "allow" }, { program = "sleep", action = "allow" }, { program = "echo", action = "allow" }]',
    '[approval.level_2]', 'default_profile = "full"', '',
  ].join('\n'));
  return file;
}

async function main(): Promise<void> {
  const configA = nodeConfig('gw-a');
  const configB = nodeConfig('gw-b');
  const cli = async (args: string[], stdin?: string): Promise<string> => {
    const r = await runCli(args, { config: configA, ...(stdin !== undefined ? { stdin } : {}) });
    if (r.code !== 0) throw new Error(`portcullis ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  mkdirSync(path.join(dir, 'shared'), { recursive: true });
  await cli(['init', '--password-stdin'], 'initial-admin-password');
  await cli(['org', 'add', 'bench']);
  let device: DeviceSshd | null = null;
  let a: GatewayProcess | null = null;
  let b: GatewayProcess | null = null;
  try {
    device = await startDeviceSshd();
    await cli(['device', 'add', 'dev', '--host', '127.0.0.1', '--port', String(device.port), '--protocol', 'ssh', '--udi', 'U-BENCH', ...CLASS_OF_LEVEL[2]]);
    await cli(['device', 'credential', 'dev', '--username', 'root', '--key-file', device.clientKeyFile]);
    await cli(['device', 'trust', 'dev']);
    [a, b] = await Promise.all([spawnGateway(configA), spawnGateway(configB)]);
    const users: Array<{ name: string; password: string; secret: string; grant: string }> = [];
    const addUser = async (name: string, role: string, profile?: string) => {
      const password = `pw-${name}-correct-horse`;
      const secret = role === 'vendor'
        ? new URL((JSON.parse(await cli(['user', 'add', name, '--role', role, '--org', 'bench', '--nda-signed=-1d', '--nda-expires=+365d', '--password-stdin', '--json'], password)) as { otpauthUri: string }).otpauthUri).searchParams.get('secret') as string
        : await staffInProcess(configA, name, role as Role, password, 'bench');
      const grant = role === 'vendor'
        ? (JSON.parse(await cli(['grant', 'add', '--user', name, '--device', 'dev', '--protocol', 'ssh', '--from', 'now', '--until', '+2h', ...(profile ? ['--profile', profile] : []), '--json'])) as { id: string }).id
        : '';
      const u = { name, password, secret, grant };
      users.push(u);
      return u;
    };
    const sec = await addUser('sec', 'security');
    const adm = await addUser('adm', 'admin');
    const apiA = new ApiClient(a.webPort);
    const apiB = new ApiClient(b.webPort);
    const admB = new ApiClient(b.webPort);
    await apiA.login(sec.name, sec.password, { code: await totp.code(sec.secret) });
    await apiB.login(sec.name, sec.password, { code: await totp.code(sec.secret) });
    await admB.login(adm.name, adm.password, { code: await totp.code(adm.secret) });

    // Ending a session held by node A: a kill on A (the peer), and on node B a kill, a grant
    // revocation, disabling the user and locking the account (issue 3: each within 1 s).
    type Ending = 'kill-same' | 'kill' | 'revoke' | 'disable' | 'lock';
    const endLatency: Record<Ending, number[]> = { 'kill-same': [], kill: [], revoke: [], disable: [], lock: [] };
    const act: Record<Ending, (u: { name: string; grant: string }, session: string) => Promise<unknown>> = {
      'kill-same': (_u, id) => apiA.post(`/api/sessions/${id}/kill`, { reason: 'bench' }),
      kill: (_u, id) => apiB.post(`/api/sessions/${id}/kill`, { reason: 'bench' }),
      revoke: (u) => apiB.post(`/api/grants/${u.grant}/revoke`, { reason: 'bench' }),
      disable: (u) => admB.post(`/api/users/${u.name}/disable`, {}),
      lock: (u) => apiB.post(`/api/users/${u.name}/lock`, { minutes: 5, reason: 'bench' }),
    };
    for (let i = 0; i < RUNS; i++) {
      for (const how of Object.keys(endLatency) as Ending[]) {
        const u = await addUser(`k${i}${how.replace('-', '')}`, 'vendor');
        let up: () => void = () => undefined;
        const started = new Promise<void>((r) => { up = r; });
        const done = runSsh({ port: a.sshPort, login: `${u.name}#dev`, password: u.password, totpCode: await totp.code(u.secret), command: 'echo up; sleep 60', timeoutMs: 90_000, onStdout: (c) => { if (c.includes('up')) up(); } });
        await started;
        const id = (await apiA.get<{ sessions: Array<{ id: string }> }>(`/api/sessions?open=true&user=${u.name}`)).body.sessions[0]?.id ?? '';
        const t0 = performance.now();
        const answer = (await act[how](u, id)) as { status: number };
        if (answer.status >= 300) throw new Error(`${how} answered ${answer.status}`);
        await done;
        endLatency[how].push(performance.now() - t0);
      }
    }

    // Mediation: exec under a restricted profile vs full mode, same device, same sign-in.
    const exec: Record<'full' | 'restricted', number[]> = { full: [], restricted: [] };
    for (let i = 0; i < RUNS; i++) {
      for (const mode of ['full', 'restricted'] as const) {
        const u = await addUser(`m${i}${mode}`, 'vendor', mode === 'restricted' ? 'narrow' : 'full');
        const t0 = performance.now();
        const r = await runSsh({ port: a.sshPort, login: `${u.name}#dev`, password: u.password, totpCode: await totp.code(u.secret), command: 'uname -s' });
        if (r.stdout.trim() !== 'Linux') throw new Error(`unexpected output ${JSON.stringify(r.stdout)} ${r.stderr}`);
        exec[mode].push(performance.now() - t0);
      }
    }
    await preloadShellParser();
    const profile = { name: 'p', mode: 'restricted' as const, rules: [{ program: 'systemctl', args: ['status', '*'], action: 'allow' as const }] };
    const decide: number[] = [];
    for (let i = 0; i < 200; i++) {
      const t0 = performance.now();
      decideCommand(await parseCommandLine(`systemctl status ct-recon-${i}.service | grep -i error && echo "done $i"`), profile);
      decide.push(performance.now() - t0);
    }

    console.log(`\nCLUSTER AND MEDIATION  ${RUNS} runs each, ms (median [p90])\n`);
    console.log(table([
      ['measure', 'peer', 'value', 'peer value', 'ratio'],
      ...(['kill', 'revoke', 'disable', 'lock'] as const).map((how) => [
        `${how} on node B → client on node A exits`, 'kill on node A',
        `${fmt(median(endLatency[how]))} [${fmt(percentile(endLatency[how], 90))}]`,
        `${fmt(median(endLatency['kill-same']))} [${fmt(percentile(endLatency['kill-same'], 90))}]`,
        ratio(median(endLatency[how]), median(endLatency['kill-same'])),
      ]),
      ['exec `uname -s`, restricted', 'full mode', `${fmt(median(exec.restricted))} [${fmt(percentile(exec.restricted, 90))}]`, `${fmt(median(exec.full))} [${fmt(percentile(exec.full, 90))}]`, ratio(median(exec.restricted), median(exec.full))],
    ]));
    console.log(`\nparse + decide one line (a pipeline and a list): median ${fmt(median(decide))} ms, p95 ${fmt(percentile(decide, 95))} ms`);
    for (const how of ['kill', 'revoke', 'disable', 'lock'] as const) {
      const p90 = percentile(endLatency[how], 90);
      console.log(`target: a ${how} on another node ends the session within 1 s: ${p90 < 1000 ? 'PASS' : 'MISS'} (p90 ${fmt(p90)} ms, worst ${fmt(Math.max(...endLatency[how]))} ms)`);
    }
  } finally {
    await a?.stop();
    await b?.stop();
    await device?.stop();
    const s = await openTestRedisStore(prefix);
    await s.dropAll();
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`bench failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  process.exitCode = 1;
});
