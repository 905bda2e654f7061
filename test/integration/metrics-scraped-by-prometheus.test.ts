import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient, TotpSource, signedIn } from '../support/api-client.js';
import type { DeviceSshd } from '../support/device-sshd.js';
import { startGatewayFixture, startGatewayWithDevice, type GatewayFixture } from '../support/gateway-fixture.js';
import { promtoolCheck, sample } from '../support/prometheus-text.js';
import { interactiveSsh, runSsh } from '../support/ssh-client.js';

/**
 * R-A.5b, R-5.5a: the hospital's monitoring scrapes /metrics. The exposition is checked by
 * Prometheus's own parser (promtool), and the figures a user would look at move with a real
 * OpenSSH session: the live count goes up and down, bytes are relayed and recorded, a failed
 * sign-in is counted. Nobody without the token reads it, not even a signed-in console user.
 */
describe('/metrics', () => {
  let tokenDir: string;
  const token = 'a'.repeat(8) + '0123456789abcdef0123456789abcdef';

  beforeAll(() => {
    tokenDir = mkdtempSync(path.join(os.tmpdir(), 'pc-metrics-'));
  });
  afterAll(() => {
    rmSync(tokenDir, { recursive: true, force: true });
  });

  const tokenFile = (mode: number): string => {
    const file = path.join(tokenDir, `token-${mode.toString(8)}`);
    writeFileSync(file, `${token}\n`);
    chmodSync(file, mode);
    return file;
  };

  describe('on the console port with a bearer token', () => {
    let fx: GatewayFixture;
    let device: DeviceSshd;
    const totp = new TotpSource();
    const scrape = async (auth: string | null = `Bearer ${token}`, client = new ApiClient(fx.gw.web.port)) =>
      client.call<string>('GET', '/metrics', undefined, auth ? { authorization: auth } : {});
    const scraped = async (): Promise<string> => {
      const r = await scrape();
      expect(r.status).toBe(200);
      return r.body;
    };

    beforeAll(async () => {
      ({ fx, device } = await startGatewayWithDevice('ct-01', `\n[metrics]\ntoken_file = "${tokenFile(0o600)}"\n`));
    });
    afterAll(async () => {
      await fx?.stop();
      await device?.stop();
    });

    it('refuses a scrape without the token, with a wrong one, and with a console sign-in', async () => {
      const none = await scrape(null);
      expect(none.status).toBe(401);
      expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
      expect(String(none.body)).not.toContain('portcullis_');
      expect((await scrape(`Bearer ${token.slice(0, -1)}x`)).status).toBe(401);
      expect((await scrape(`Basic ${Buffer.from(`x:${token}`).toString('base64')}`)).status).toBe(401);
      // A security officer's browser session is no key to the monitoring feed.
      const sec = await fx.addUser('sec-metrics', ['security']);
      const console = await signedIn(fx.gw.web.port, sec, totp);
      expect((await scrape(null, console)).status).toBe(401);
    });

    it('passes promtool and counts a real OpenSSH session, its bytes and a failed sign-in', async () => {
      const vera = await fx.addUser('vera');
      await fx.grant('vera', 'ct-01', 'now', '+1h');
      const before = await scraped();
      const check = await promtoolCheck(before);
      expect(check.code, check.output).toBe(0);
      expect(sample(before, 'portcullis_sessions_live', { protocol: 'ssh', node: fx.config.nodeId })).toBe(0);
      const failedBefore = sample(before, 'portcullis_sign_ins_total', { outcome: 'failed', channel: 'ssh' }) ?? 0;

      // A wrong TOTP code: refused, and counted as a failed sign-in (R-A.4d).
      const wrong = await runSsh({ port: fx.sshPort, login: 'vera#ct-01', password: vera.password, totpCode: '000000', command: 'true' });
      expect(wrong.code).not.toBe(0);

      const s = interactiveSsh({ port: fx.sshPort, login: 'vera#ct-01', password: vera.password, totpCode: await totp.code(vera.totpSecret) });
      s.type('echo metrics-$((6*7))\r');
      await s.waitFor('metrics-42');
      const during = await scraped();
      expect(sample(during, 'portcullis_sessions_live', { protocol: 'ssh', node: fx.config.nodeId })).toBe(1);
      expect(sample(during, 'portcullis_relayed_bytes_total', { protocol: 'ssh', direction: 'in' })).toBeGreaterThan(0);
      expect(sample(during, 'portcullis_relayed_bytes_total', { protocol: 'ssh', direction: 'out' })).toBeGreaterThan(0);
      s.type('exit\r');
      await s.done;

      // The session is sealed (and its bytes move from the live sum to the ended totals) just after the client goes.
      await expect.poll(async () => sample(await scraped(), 'portcullis_sessions_live', { protocol: 'ssh', node: fx.config.nodeId }), { timeout: 30_000 }).toBe(0);
      const after = await scraped();
      const checked = await promtoolCheck(after);
      expect(checked.code, checked.output).toBe(0);
      const relayedIn = sample(after, 'portcullis_relayed_bytes_total', { protocol: 'ssh', direction: 'in' }) ?? 0;
      expect(relayedIn).toBeGreaterThanOrEqual(sample(during, 'portcullis_relayed_bytes_total', { protocol: 'ssh', direction: 'in' }) ?? Infinity);
      expect(sample(after, 'portcullis_relayed_bytes_total', { protocol: 'ssh', direction: 'out' })).toBeGreaterThan(0);
      expect(sample(after, 'portcullis_sessions_ended_total', { protocol: 'ssh' })).toBe(1);
      expect(sample(after, 'portcullis_recorded_bytes_total')).toBeGreaterThan(0);
      expect(sample(after, 'portcullis_recording_write_duration_seconds_count')).toBeGreaterThan(0);
      expect(sample(after, 'portcullis_recording_backlog_bytes')).toBe(0);
      expect(sample(after, 'portcullis_sign_ins_total', { outcome: 'failed', channel: 'ssh', method: 'password+totp' })).toBe(failedBefore + 1);
      expect(sample(after, 'portcullis_sign_ins_total', { outcome: 'ok', channel: 'ssh' })).toBeGreaterThanOrEqual(1);
      // Level 2 runs the `full` profile here: the typed line is logged, not filtered.
      expect(sample(after, 'portcullis_command_decisions_total', { mode: 'full', decision: 'logged' })).toBeGreaterThanOrEqual(1);
      expect(sample(after, 'portcullis_store_operation_duration_seconds_count', { operation: 'createSession' })).toBeGreaterThanOrEqual(1);
      expect(sample(after, 'portcullis_store_errors_total')).toBe(null); // no failed store call, so no series yet
      expect(sample(after, 'portcullis_queue_depth', { queue: 'write_spool' })).toBe(0);
      expect(sample(after, 'portcullis_queue_depth', { queue: 'webhook' })).toBe(0);
      // Privacy and cardinality: no person, session or address in any label.
      for (const secret of ['vera', 'ct-01', '127.0.0.1', token]) expect(after).not.toContain(secret);
    });
  });

  describe('on a separate loopback listener', () => {
    it('serves only /metrics there, and asks for the token when one is configured', async () => {
      const fx = await startGatewayFixture(`\n[metrics]\nlisten = "127.0.0.1:0"\ntoken_file = "${tokenFile(0o600)}"\n`);
      try {
        const port = fx.gw.metrics?.port ?? 0;
        expect(port).toBeGreaterThan(0);
        const get = (p: string, auth?: string): Promise<{ status: number; body: string }> => new Promise((resolve, reject) => {
          const req = request({ host: '127.0.0.1', port, path: p, headers: auth ? { authorization: auth } : {} }, (res) => {
            let body = '';
            res.on('data', (d: Buffer) => { body += d.toString(); });
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          });
          req.on('error', reject);
          req.end();
        });
        expect((await get('/metrics')).status).toBe(401);
        expect((await get('/api/sessions', `Bearer ${token}`)).status).toBe(404);
        const ok = await get('/metrics', `Bearer ${token}`);
        expect(ok.status).toBe(200);
        expect((await promtoolCheck(ok.body)).code).toBe(0);
        expect(sample(ok.body, 'portcullis_sessions_live', { protocol: 'ssh' })).toBe(0);
        // Not on the console port when it has a listener of its own (that port answers with its page instead).
        const onConsole = await new ApiClient(fx.gw.web.port).call<string>('GET', '/metrics', undefined, { authorization: `Bearer ${token}` });
        expect(String(onConsole.body)).not.toContain('portcullis_sessions_live');
      } finally {
        await fx.stop();
      }
    });

    it('refuses to start with a token file others can read', async () => {
      await expect(startGatewayFixture(`\n[metrics]\ntoken_file = "${tokenFile(0o640)}"\n`)).rejects.toThrow(/metrics\.token_file: .*readable by others/);
    });
  });
});
