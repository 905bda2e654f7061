import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './device-sshd.js';

/**
 * Debian's rsyslogd as the hospital's SIEM receiver (R-A.5c): its own process with its own
 * config, work directory and pid file on loopback; the system's rsyslog (if any) is never
 * touched. TLS through the gtls driver with a server certificate from a test CA made here.
 * Each input writes the raw message it received, one per line, to a file of its own.
 */
export interface TestCa {
  dir: string;
  /** The CA certificate (PEM file) a client trusts. */
  caFile: string;
  /** The receiver's certificate and key, for the name `localhost`. */
  certFile: string;
  keyFile: string;
  /** A client certificate for the gateway, CN and DNS name `gw-client.test`, and its key (mode 0600). */
  clientCertFile: string;
  clientKeyFile: string;
}

export function makeTestCa(dir: string): TestCa {
  const run = (args: string[]): void => {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
  };
  run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Portcullis test SIEM CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost']);
  writeFileSync(path.join(dir, 'server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'server.ext']);
  run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'client.key', '-out', 'client.csr', '-subj', '/CN=gw-client.test']);
  writeFileSync(path.join(dir, 'client.ext'), 'subjectAltName=DNS:gw-client.test\nextendedKeyUsage=clientAuth\n');
  run(['x509', '-req', '-in', 'client.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'client.pem', '-days', '2', '-extfile', 'client.ext']);
  chmodSync(path.join(dir, 'client.key'), 0o600);
  return {
    dir, caFile: path.join(dir, 'ca.pem'), certFile: path.join(dir, 'server.pem'), keyFile: path.join(dir, 'server.key'),
    clientCertFile: path.join(dir, 'client.pem'), clientKeyFile: path.join(dir, 'client.key'),
  };
}

export interface Rsyslog {
  tlsPort: number;
  /** TLS that also asks for the client's certificate, and takes only `gw-client.test` (x509/name). */
  mtlsPort: number;
  tcpPort: number;
  udpPort: number;
  /** Raw messages received on each input so far, in arrival order. */
  lines(input: 'tls' | 'mtls' | 'tcp' | 'udp'): string[];
  /** Stops rsyslogd (SIGTERM, then waits for it to exit): what it received stays in the files. */
  stop(): Promise<void>;
  /** Starts it again on the same ports. */
  start(): Promise<void>;
  /** Stops it and removes its directory. */
  dispose(): Promise<void>;
}

export async function startRsyslog(ca: TestCa): Promise<Rsyslog> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-rsyslog-'));
  const [tlsPort, mtlsPort, tcpPort, udpPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const conf = path.join(dir, 'rsyslog.conf');
  const pidFile = path.join(dir, 'rsyslogd.pid');
  const out = (input: string): string => path.join(dir, `${input}.log`);
  // The raw message as received (framing removed): the test reads the gateway's bytes, not rsyslog's reformatting.
  writeFileSync(conf, `
global(
  workDirectory="${dir}"
  maxMessageSize="64k"
  defaultNetstreamDriver="gtls"
  defaultNetstreamDriverCAFile="${ca.caFile}"
  defaultNetstreamDriverCertFile="${ca.certFile}"
  defaultNetstreamDriverKeyFile="${ca.keyFile}"
)
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
module(load="imptcp")
module(load="imudp")
template(name="raw" type="string" string="%rawmsg%\\n")
ruleset(name="tls") { action(type="omfile" file="${out('tls')}" template="raw") }
ruleset(name="mtls") { action(type="omfile" file="${out('mtls')}" template="raw") }
ruleset(name="tcp") { action(type="omfile" file="${out('tcp')}" template="raw") }
ruleset(name="udp") { action(type="omfile" file="${out('udp')}" template="raw") }
input(type="imtcp" address="127.0.0.1" port="${tlsPort}" ruleset="tls")
input(type="imtcp" address="127.0.0.1" port="${mtlsPort}" ruleset="mtls" streamDriver.authMode="x509/name" permittedPeer=["gw-client.test"])
input(type="imptcp" address="127.0.0.1" port="${tcpPort}" ruleset="tcp" supportOctetCountedFraming="on")
input(type="imudp" address="127.0.0.1" port="${udpPort}" ruleset="udp")
`);
  let child: ChildProcess | null = null;
  let log = '';

  const accepts = (port: number): Promise<boolean> => new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
  // The TCP inputs accept connections (the UDP input binds before them in rsyslog's start-up).
  const listening = async (): Promise<boolean> => (await Promise.all([tlsPort, mtlsPort, tcpPort].map(accepts))).every(Boolean);
  const start = async (): Promise<void> => {
    rmSync(pidFile, { force: true });
    const c = spawn('/usr/sbin/rsyslogd', ['-n', '-f', conf, '-i', pidFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    c.stdout?.on('data', (d: Buffer) => { log += d.toString(); });
    c.stderr?.on('data', (d: Buffer) => { log += d.toString(); });
    const end = Date.now() + 20_000;
    while (!(await listening())) {
      if (c.exitCode !== null) throw new Error(`rsyslogd exited (${c.exitCode}): ${log}`);
      if (Date.now() > end) throw new Error(`rsyslogd did not listen on ${tlsPort}/${tcpPort}: ${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const stop = async (): Promise<void> => {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await exited;
  };
  await start();
  return {
    tlsPort, mtlsPort, tcpPort, udpPort, start, stop,
    lines: (input) => (existsSync(out(input)) ? readFileSync(out(input), 'utf8').split('\n').filter((l) => l !== '') : []),
    async dispose() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
