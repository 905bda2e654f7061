import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalJson } from '../../gateway/audit/canonical-json.js';
import { openSyslogConnection } from '../../gateway/audit/syslog-connection.js';
import { SyslogExport } from '../../gateway/audit/syslog-export.js';
import { createLogger } from '../../gateway/log/logger.js';
import type { AuditEntry, Store } from '../../gateway/store/store.js';
import { syslogSeverity } from '../../policy/syslog-severity.js';
import { ApiClient, TotpSource } from '../support/api-client.js';
import { runCli, startGatewayFixture, startGatewayWithDevice } from '../support/gateway-fixture.js';
import { openTestRedisStore, uniquePrefix } from '../support/redis.js';
import { makeTestCa, startRsyslog, type Rsyslog, type TestCa } from '../support/rsyslog.js';
import { runSsh } from '../support/ssh-client.js';

/**
 * R-A.5c: the SIEM feed, received by Debian's rsyslogd. Every line rsyslog wrote is one message
 * the gateway sent, read back raw and compared with the audit chain: seq, hash, PRI, and the
 * entry itself (MSG is the entry's canonical JSON after a BOM).
 */
const LOCAL3 = 19;
const LINE = /^<(\d+)>1 (\S+) (\S+) (\S+) - (\S+) \[portcullis@32473 ([^\]]*)\] \uFEFF(.*)$/;

interface Received {
  raw: string;
  pri: number;
  ts: string;
  msgid: string;
  sd: Record<string, string>;
  entry: AuditEntry;
}

function parse(raw: string): Received {
  const m = LINE.exec(raw);
  if (!m) throw new Error(`not an RFC 5424 line of the feed: ${raw}`);
  const sd = Object.fromEntries([...(m[6] as string).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((p) => [p[1], (p[2] as string).replace(/\\(["\\\]])/g, '$1')]));
  return { raw, pri: Number(m[1]), ts: m[2] as string, msgid: m[5] as string, sd, entry: JSON.parse(m[7] as string) as AuditEntry };
}

/** Every received line matches the chain's entry of its seq, byte for byte in MSG. */
function checkAgainstChain(received: Received[], chain: AuditEntry[]): void {
  const bySeq = new Map(chain.map((e) => [e.seq, e]));
  for (const r of received) {
    const e = bySeq.get(Number(r.sd.seq));
    expect(e, `seq ${r.sd.seq} is in the chain`).toBeDefined();
    const entry = e as AuditEntry;
    expect(r.sd.hash).toBe(entry.hash);
    expect(r.sd.prevHash).toBe(entry.prevHash);
    expect(r.sd.actor).toBe(entry.actor);
    expect(r.sd.outcome).toBe(entry.outcome);
    expect(r.sd.code ?? null).toBe(entry.code);
    expect(r.msgid).toBe(entry.type);
    expect(r.ts).toBe(entry.ts);
    expect(r.pri).toBe(LOCAL3 * 8 + syslogSeverity(entry));
    expect(canonicalJson(r.entry)).toBe(canonicalJson(entry));
  }
}

async function until(pred: () => Promise<boolean> | boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-siem-'));
let ca: TestCa;
let rs: Rsyslog;
beforeAll(async () => {
  ca = makeTestCa(dir);
  rs = await startRsyslog(ca);
}, 30_000);
afterAll(async () => {
  await rs?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const feedToml = (transport: string, port: number, extra = ''): string =>
  `[syslog]\ntransport = "${transport}"\nhost = "127.0.0.1"\nport = ${port}\nfacility = "local3"\nconfirm_after = "1s"\nretry_max = "1s"\n${extra}`;

describe('the SIEM feed over syslog (R-A.5c)', () => {
  it('over TLS, every audit entry arrives in chain order with its seq and hash, and a receiver restart mid-stream loses nothing', async () => {
    const { fx, device } = await startGatewayWithDevice('ct-01', feedToml('tls', rs.tlsPort, `server_name = "localhost"\nca = "${ca.caFile}"\n`));
    try {
      const feed = fx.gw.runtime.syslog;
      expect(feed).not.toBeNull();
      const vendor = await fx.addUser('vera');
      const totp = new TotpSource();
      // Real traffic: a recorded OpenSSH session on a grant, refused and accepted sign-ins through the API.
      await fx.grant('vera', 'ct-01', '-1m', '+1h');
      const ssh = await runSsh({ port: fx.sshPort, login: 'vera#ct-01', password: vendor.password, totpCode: await totp.code(vendor.totpSecret), command: 'echo reached-device' });
      expect(ssh.stdout).toContain('reached-device');
      await until(async () => (await fx.audit('recording.sealed')).length === 1, 'the session to end and its recording to be sealed');
      const api = new ApiClient(fx.gw.web.port);
      expect((await api.login('vera', 'wrong-password-1', { code: '000000' })).status).toBe(401);
      expect((await api.login('vera', vendor.password, { code: await totp.code(vendor.totpSecret) })).status).toBe(200);
      const chainNow = async (): Promise<AuditEntry[]> => fx.audit();
      const tls = (): Received[] => rs.lines('tls').map(parse);
      await until(async () => tls().length >= (await chainNow()).length, 'every entry at rsyslog');
      const before = tls();
      expect(before.map((r) => Number(r.sd.seq))).toEqual((await chainNow()).map((e) => e.seq));
      checkAgainstChain(before, await chainNow());
      await until(() => feed?.status.backlog === 0, 'the backlog to be confirmed');
      const lastBefore = Number(before[before.length - 1]?.sd.seq);

      // A stream of entries, and the receiver stops in the middle of it: some were written to
      // the connection just before it broke. The gateway keeps working; entries wait in the chain.
      const audit = fx.gw.runtime.audit;
      let stopped: Promise<void> | null = null;
      for (let i = 1; i <= 200; i++) {
        await audit.record('test.stream', { actor: 'stream-writer', data: { i } });
        if (i % 10 === 0 && !stopped) await until(() => tls().length >= lastBefore + i - 20, 'the stream to flow');
        if (i === 100) stopped = rs.stop();
      }
      await stopped;
      for (let i = 0; i < 3; i++) expect((await new ApiClient(fx.gw.web.port).login('vera', `wrong-${i}`, { code: '000000' })).status).toBe(401);
      const waiting = await chainNow();
      const receivedWhileUp = new Set(tls().map((r) => Number(r.sd.seq)));
      expect(waiting.some((e) => !receivedWhileUp.has(e.seq))).toBe(true);
      await until(() => (feed?.status.backlog ?? 0) >= waiting.length - Math.max(...receivedWhileUp), 'the backlog to show the waiting entries');
      expect(feed?.status.connected).toBe(false);

      await rs.start();
      await until(async () => {
        const seen = new Set(tls().map((r) => Number(r.sd.seq)));
        return (await chainNow()).every((e) => seen.has(e.seq));
      }, 'every entry after the restart');
      const chain = await chainNow();
      // What the chain held when read; an entry appended since (an alert raised in the background)
      // may already be at the receiver, and is no part of this comparison.
      const last = chain[chain.length - 1]?.seq ?? 0;
      const all = tls().filter((r) => Number(r.sd.seq) <= last);
      checkAgainstChain(all, chain);
      // In order: the stream up to the stop, then one resend from an earlier seq onwards.
      const seqs = all.map((r) => Number(r.sd.seq));
      const restartAt = seqs.findIndex((s, i) => i > 0 && s <= (seqs[i - 1] as number));
      const tail = restartAt === -1 ? [] : seqs.slice(restartAt);
      if (restartAt !== -1) {
        // Duplicates only where the receiver may not have stored them (the entries written in the
        // last confirm window before it stopped), resent exactly as they were.
        expect(tail[0]).toBeGreaterThan(lastBefore);
        const firstLines = new Map(all.slice(0, restartAt).map((r) => [Number(r.sd.seq), r.raw]));
        for (const r of all.slice(restartAt)) if (firstLines.has(Number(r.sd.seq))) expect(r.raw).toBe(firstLines.get(Number(r.sd.seq)));
      }
      const unique = [...new Set(seqs)];
      expect(unique).toEqual(chain.map((e) => e.seq));
      expect(seqs.slice(0, restartAt === -1 ? seqs.length : restartAt)).toEqual(unique.slice(0, restartAt === -1 ? seqs.length : restartAt));
      expect(tail).toEqual([...tail].sort((a, b) => a - b));
      expect(new Set(tail).size).toBe(tail.length);
      // The refused sign-ins went out as warnings; the position survives in the store.
      expect(all.filter((r) => r.msgid === 'login.failed').every((r) => r.pri === LOCAL3 * 8 + 4)).toBe(true);
      await until(() => feed?.status.backlog === 0, 'the backlog to drain');
      const cursor = await fx.gw.runtime.store.claimExport('syslog', 'a-test-reader', Date.now(), 1);
      // Everything checked above is delivered; entries the gateway appended since (an alert raised
      // from the refused sign-ins, in the background) may be too, so the position is at least there.
      expect(cursor.position).toBeGreaterThanOrEqual(chain[chain.length - 1]?.seq ?? Number.POSITIVE_INFINITY);
    } finally {
      await fx.stop();
      await device.stop();
    }
    // Stopping sent the gateway's last entry and closed in order.
    expect(rs.lines('tls').map(parse).some((r) => r.msgid === 'gateway.stopped')).toBe(true);
  }, 60_000);

  it('plain TCP with LF framing and UDP each deliver the chain', async () => {
    for (const [transport, port, extra] of [['tcp', rs.tcpPort, 'framing = "lf"\n'], ['udp', rs.udpPort, '']] as const) {
      const fx = await startGatewayFixture(feedToml(transport, port, extra));
      try {
        expect((await new ApiClient(fx.gw.web.port).login('nobody', 'wrong', { code: '000000' })).status).toBe(401);
        const chain = await fx.audit();
        await until(() => rs.lines(transport).length >= chain.length, `every entry over ${transport}`);
        const got = rs.lines(transport).map(parse);
        expect(got.map((r) => Number(r.sd.seq))).toEqual(chain.map((e) => e.seq));
        checkAgainstChain(got, chain);
      } finally {
        await fx.stop();
      }
    }
  }, 40_000);

  it('presents the client certificate to a receiver that names its permitted peers (x509/name)', async () => {
    const fx = await startGatewayFixture(feedToml('tls', rs.mtlsPort, `server_name = "localhost"\nca = "${ca.caFile}"\ncert = "${ca.clientCertFile}"\nkey = "${ca.clientKeyFile}"\n`));
    try {
      const chain = await fx.audit();
      await until(() => rs.lines('mtls').length >= chain.length, 'every entry over mutual TLS');
      const got = rs.lines('mtls').map(parse);
      expect(got.map((r) => Number(r.sd.seq))).toEqual(chain.map((e) => e.seq));
      checkAgainstChain(got, chain);
    } finally {
      await fx.stop();
    }
  }, 30_000);

  it('in a cluster one node sends; when it is lost, another continues from the stored position and each entry arrives once', async () => {
    const prefix = uniquePrefix();
    const [storeA, storeB, writer] = await Promise.all([openTestRedisStore(prefix), openTestRedisStore(prefix), openTestRedisStore(prefix)]);
    const feed = (store: Store, node: string): SyslogExport => new SyslogExport({
      store, node, log: createLogger('error', () => undefined), target: { transport: 'tcp', host: '127.0.0.1', port: rs.tcpPort },
      format: { facility: LOCAL3, hostname: 'cluster-feed', appName: 'portcullis', sdId: 'portcullis@32473', maxBytes: 8192 },
      framing: 'octet-counted', confirmAfterMs: 300, retryMaxMs: 1000, leaseMs: 3000,
    });
    const nodes = { a: feed(storeA, 'gw-a'), b: feed(storeB, 'gw-b') };
    const received = (): Received[] => rs.lines('tcp').filter((l) => l.includes(' cluster-feed ')).map(parse);
    const write = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++) await writer.appendAudit({ type: 'test.cluster', actor: 'writer', outcome: 'info', code: null, data: { i } }, Date.now());
    };
    try {
      nodes.a.start();
      nodes.b.start();
      await write(30);
      await until(() => received().length >= 30, 'the first 30 entries');
      await until(() => nodes.a.status.backlog + nodes.b.status.backlog === 0 && nodes.a.status.sending !== nodes.b.status.sending, 'one sender, caught up');
      const [sender, standby, lostStore] = nodes.a.status.sending ? [nodes.a, nodes.b, storeA] : [nodes.b, nodes.a, storeB];
      // The sending node loses the store (as a node cut off or gone): it stops sending; the other
      // takes the lease when it lapses and continues from the position in the store.
      await lostStore.close();
      await write(30);
      await until(() => received().length >= 60, 'the next 30 entries from the other node', 20_000);
      expect(standby.status.sending).toBe(true);
      expect(sender.status.sending).toBe(false);
      const chain = await writer.listAudit({ limit: 1000 });
      const got = received();
      expect(got.map((r) => Number(r.sd.seq))).toEqual(chain.map((e) => e.seq));
      checkAgainstChain(got, chain);
    } finally {
      await nodes.a.stop();
      await nodes.b.stop();
      await storeA.close().catch(() => undefined);
      await storeB.close().catch(() => undefined);
      await writer.dropAll();
      await writer.close();
    }
  }, 40_000);

  it('sends nothing to a receiver whose certificate does not carry server_name or was not signed by the configured CA', async () => {
    const target = { transport: 'tls', host: '127.0.0.1', port: rs.tlsPort } as const;
    await expect(openSyslogConnection({ ...target, servername: 'siem.elsewhere.example', ca: readFileSync(ca.caFile, 'utf8') })).rejects.toThrow(/altnames|does not match/i);
    await expect(openSyslogConnection({ ...target, servername: 'localhost' })).rejects.toThrow(/self[- ]signed|unable to (get|verify)/i);
    for (const servername of ['localhost', '127.0.0.1']) {
      const good = await openSyslogConnection({ ...target, servername, ca: readFileSync(ca.caFile, 'utf8') });
      expect(await good.end(5000)).toBe(true);
    }
  });

  it('a CA file that holds no certificate stops start-up with the file, the key and the reason', async () => {
    const bad = path.join(dir, 'not-a-ca.pem');
    writeFileSync(bad, 'this is not a certificate\n');
    const config = path.join(dir, 'bad-ca.toml');
    writeFileSync(config, `data_dir = "./bad-ca-state"\n[ssh]\nlisten = "127.0.0.1:0"\n[web]\nlisten = "127.0.0.1:0"\n${feedToml('tls', rs.tlsPort, `ca = "${bad}"\n`)}`);
    const r = await runCli(['serve', '--init-if-needed'], { config });
    expect(r.code).toBe(78);
    expect(r.stderr).toContain(`${config}: syslog.ca: ${bad} holds no PEM certificate`);
  }, 30_000);
});
