import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { request } from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyWebhookSignature } from '../../gateway/notify/webhook.js';
import { ApiClient, TotpSource } from '../support/api-client.js';
import { startDeviceSshd, type DeviceSshd } from '../support/device-sshd.js';
import { startGatewayFixture, type GatewayFixture, type TestUser } from '../support/gateway-fixture.js';
import { interactiveSsh, type Interactive } from '../support/ssh-client.js';

/**
 * R-6.3c, issue 5: the gateway-owned prompt of restricted mode as a vendor meets it in a real
 * OpenSSH client (`ssh -tt`), against an OpenSSH sshd that logs every command it is asked to run:
 * tab completion, history, Ctrl-C, a full-screen program the profile allows, a shell escape tried
 * from inside that program, and a command held for review that an approver rejects — told to the
 * approver by the console's event stream and a signed webhook.
 */
const KEY = { tab: '\t', up: '\u001b[A', ctrlC: '\u0003', ctrlD: '\u0004' };
const SECRET = 'restricted-prompt-webhook-secret';

const POLICY = [
  '[commands]', 'review_timeout = "30s"',
  '[profiles.svc]', 'mode = "restricted"',
  'rules = [',
  '  { program = "echo", action = "allow" },',
  '  { program = "less", args = ["/etc/os-release"], action = "allow" },',
  '  { program = "hostname", args = [], action = "review" },',
  ']',
  '[approval.level_2]', 'default_profile = "svc"',
].join('\n');

interface Delivery { event: string; body: string; timestamp: string; signature: string }

describe('the restricted prompt through a real OpenSSH client', () => {
  let fx: GatewayFixture;
  let device: DeviceSshd;
  let receiver: Server;
  const deliveries: Delivery[] = [];
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-restricted-'));
  const totp = new TotpSource();
  const vendors: Record<string, TestUser> = {};
  let approver: ApiClient;

  /** Each test signs in as its own vendor: a TOTP code is good once per 30 s step. */
  const open = async (name: string): Promise<Interactive> => {
    const u = vendors[name] as TestUser;
    const s = interactiveSsh({ port: fx.sshPort, login: `${name}#svc-01`, password: u.password, totpCode: await totp.code(u.totpSecret) });
    await s.waitFor(`${name}@svc-01`);
    return s;
  };
  /** What the device was asked to run since `from`, as the sshd logged it. */
  const ran = (from: number): string[] => device.received().slice(from);

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        deliveries.push({
          event: String(req.headers['x-portcullis-event']), body: Buffer.concat(chunks).toString(),
          timestamp: String(req.headers['x-portcullis-timestamp']), signature: String(req.headers['x-portcullis-signature']),
        });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
    const secretFile = path.join(dir, 'webhook-secret');
    writeFileSync(secretFile, SECRET, { mode: 0o600 });
    const port = (receiver.address() as { port: number }).port;
    device = await startDeviceSshd({ logCommands: true });
    fx = await startGatewayFixture(`${POLICY}\n[notifications]\nwebhook_url = "http://127.0.0.1:${port}/hook"\nwebhook_secret_file = "${secretFile}"`);
    await fx.addDevice('svc-01', device);
    for (const name of ['rita', 'lena', 'vera']) {
      vendors[name] = await fx.addUser(name);
      await fx.grant(name, 'svc-01', 'now', '+1h');
    }
    const dm = await fx.addUser('dora', ['device_manager']);
    approver = new ApiClient(fx.gw.web.port);
    await approver.login(dm.name, dm.password, { code: await totp.code(dm.totpSecret) });
  });
  afterAll(async () => {
    await fx?.stop();
    await device?.stop();
    await new Promise((r) => receiver?.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  it('completes an allowed program with Tab, recalls the line with Up, and drops a line on Ctrl-C', async () => {
    const from = device.received().length;
    const s = await open('rita');
    s.type(`ec${KEY.tab}`);
    await s.waitFor('echo ');
    s.type('tabbed-line\r');
    await s.waitFor(/tabbed-line\r\n.*rita@svc-01/s);
    // History: Up brings the line back; Enter runs it again.
    s.type(`${KEY.up}\r`);
    await s.waitFor((seen) => seen.split('tabbed-line\r\n').length - 1 >= 2);
    await s.waitFor(/tabbed-line\r\n[^]*tabbed-line\r\n[^]*rita@svc-01/);
    // Ctrl-C drops the line being typed: it is never decided or run.
    s.type(`echo never-run${KEY.ctrlC}`);
    await s.waitFor(/never-run[^]*\^C/);
    s.type('echo after-ctrl-c\r');
    // Ctrl-D only once the prompt is back: typed while echo runs, it would go to echo's input.
    await s.waitFor((seen) => seen.slice(seen.lastIndexOf('after-ctrl-c\r\n')).includes('rita@svc-01:~$ '));
    s.type(KEY.ctrlD);
    expect((await s.done).code).toBe(0);
    const got = ran(from);
    expect(got).toHaveLength(3);
    expect(got.filter((c) => c.includes("'echo' 'tabbed-line'"))).toHaveLength(2);
    expect(got.join('\n')).not.toContain('never-run');
  });

  it('runs a full-screen program the profile allows, where its shell escapes do nothing', async () => {
    const s = await open('lena');
    const prompts = (seen: string): number => seen.split('lena@svc-01:~$ ').length - 1;
    s.type('less /etc/os-release\r');
    let before = 0;
    await s.waitFor((seen) => seen.includes('PRETTY_NAME') && (before = prompts(seen)) > 0);
    // less's shell escape, pipe-to-command and editor keys: LESSSECURE refuses each one.
    const refusals = (seen: string): number => seen.split('Command not available').length - 1;
    let expected = 0;
    // Each is refused the moment it is typed, so no command line can follow it.
    for (const attempt of ['!', '|', 'v']) {
      s.type(attempt);
      expected++;
      await s.waitFor((seen) => refusals(seen) >= expected);
      s.type('\r');
    }
    s.type('q');
    // less is gone and the gateway's prompt is back.
    await s.waitFor((seen) => prompts(seen) > before);
    s.type('echo still-restricted\r');
    // Ctrl-D only once the prompt is back: typed while echo runs, it would go to echo's input.
    await s.waitFor((seen) => seen.slice(seen.lastIndexOf('still-restricted\r\n')).includes('lena@svc-01:~$ '));
    s.type(KEY.ctrlD);
    await s.done;
  });

  it('holds a review command at the prompt, tells approvers, and never runs it when rejected', async () => {
    const events: string[] = [];
    const sse = request({ host: '127.0.0.1', port: fx.gw.web.port, path: '/api/events', rejectUnauthorized: false, headers: { cookie: approver.cookie ?? '' } }, (res) => {
      res.on('data', (d: Buffer) => events.push(d.toString()));
    });
    sse.end();
    try {
      const from = device.received().length;
      const s = await open('vera');
      s.type('hostname\r');
      await s.waitFor('waiting for an approver');
      let held: { id: string; line: string } | undefined;
      await expect.poll(async () => {
        held = (await approver.get<{ commands: Array<{ id: string; line: string; user: string }> }>('/api/commands/held')).body.commands.find((c) => c.user === 'vera');
        return held?.line;
      }, { timeout: 30_000 }).toBe('hostname');
      await expect.poll(() => events.join(''), { timeout: 30_000 }).toMatch(/event: command\ndata: \{"action":"review_requested"/);
      await expect.poll(() => deliveries.some((d) => d.event === 'command.review_requested'), { timeout: 30_000 }).toBe(true);
      const hook = deliveries.find((d) => d.event === 'command.review_requested') as Delivery;
      expect(verifyWebhookSignature(SECRET, hook, hook.body, Math.floor(Date.now() / 1000))).toBe(true);
      expect(JSON.parse(hook.body)).toMatchObject({ data: { user: 'vera', device: 'svc-01', line: 'hostname' } });

      const answer = await approver.post<{ decision: string }>(`/api/commands/${held?.id}/review`, { approve: false, comment: 'not during the scan' });
      expect(answer.body.decision).toBe('deny');
      await s.waitFor('[COMMAND_DENIED]');
      await s.waitFor(/COMMAND_DENIED[^]*vera@svc-01/);
      s.type(KEY.ctrlD);
      await s.done;
      expect(ran(from)).toEqual([]);
    } finally {
      sse.destroy();
    }
  });
});
