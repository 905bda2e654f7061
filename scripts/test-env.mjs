#!/usr/bin/env node
// Makes this machine ready for `npm test`: the real peers the tests drive (OpenSSH client and
// server, oathtool, asciinema, redis) are installed from Debian's archive when missing, and a
// Redis is started on 127.0.0.1:6379 when none answers there. Quick when everything is already
// there: it only checks for the programs and pings Redis.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { connect } from 'node:net';

const NEEDS = [
  { bin: '/usr/bin/ssh', pkg: 'openssh-client' },
  { bin: '/usr/sbin/sshd', pkg: 'openssh-server' },
  { bin: '/usr/bin/ssh-keygen', pkg: 'openssh-client' },
  // The device sshd's sftp subsystem, and the file-transfer watcher's tests.
  { bin: '/usr/lib/openssh/sftp-server', pkg: 'openssh-sftp-server' },
  { bin: '/usr/bin/oathtool', pkg: 'oathtool' },
  { bin: '/usr/bin/asciinema', pkg: 'asciinema' },
  { bin: '/usr/bin/redis-server', pkg: 'redis-server' },
  { bin: '/usr/bin/redis-cli', pkg: 'redis-tools' },
  // The web console's browser tests: Debian's Chromium, driven by playwright-core (never a downloaded browser).
  { bin: '/usr/bin/chromium', pkg: 'chromium' },
  // The console's Chinese pages need a CJK font, or Chromium draws empty boxes.
  { bin: '/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc', pkg: 'fonts-noto-cjk' },
  // Desktops: TigerVNC as the VNC device and the gateway's private displays, FreeRDP as the RDP
  // client and (shadowing an Xvfb display) the RDP device.
  { bin: '/usr/bin/Xvnc', pkg: 'tigervnc-standalone-server' },
  { bin: '/usr/bin/tigervncpasswd', pkg: 'tigervnc-tools' },
  { bin: '/usr/bin/xfreerdp', pkg: 'freerdp2-x11' },
  { bin: '/usr/bin/freerdp-shadow-cli', pkg: 'freerdp2-shadow-x11' },
  { bin: '/usr/bin/winpr-hash', pkg: 'winpr-utils' },
  { bin: '/usr/bin/Xvfb', pkg: 'xvfb' },
  { bin: '/usr/bin/xwd', pkg: 'x11-apps' },
  { bin: '/usr/bin/xsetroot', pkg: 'x11-xserver-utils' },
  // The gateway resizes an RDP session's private display with xrandr (same package).
  { bin: '/usr/bin/xrandr', pkg: 'x11-xserver-utils' },
  { bin: '/usr/bin/xauth', pkg: 'xauth' },
  // xev proves typed keys reached a device; xwininfo waits for a window; Tk reads and sets a device's clipboard.
  { bin: '/usr/bin/xev', pkg: 'x11-utils' },
  { check: () => spawnSync('python3', ['-c', 'import tkinter']).status === 0, pkg: 'python3-tk' },
  // The SIEM feed's receiver (R-A.5c): rsyslogd started by the test with its own config, TLS by its gtls driver.
  { bin: '/usr/sbin/rsyslogd', pkg: 'rsyslog' },
  { check: () => /install ok installed/.test(spawnSync('dpkg-query', ['-W', '-f=${Status}', 'rsyslog-gnutls']).stdout?.toString() ?? ''), pkg: 'rsyslog-gnutls' },
  // /metrics is checked by Prometheus's own parser and linter (promtool check metrics).
  { bin: '/usr/bin/promtool', pkg: 'prometheus' },
];

const missing = [...new Set(NEEDS.filter((n) => !(n.check ? n.check() : existsSync(n.bin))).map((n) => n.pkg))];
if (missing.length > 0) {
  if (process.getuid?.() !== 0) {
    console.error(`test-env: missing Debian packages: ${missing.join(' ')}; install them (sudo apt-get install ${missing.join(' ')})`);
    process.exit(1);
  }
  console.log(`test-env: installing ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { stdio: 'inherit', env });
}
// sshd refuses to start without its privilege-separation directory.
if (!existsSync('/run/sshd')) spawnSync('mkdir', ['-p', '/run/sshd']);

const REDIS_PORT = 6379;
const answers = () => new Promise((resolve) => {
  const s = connect(REDIS_PORT, '127.0.0.1');
  s.setTimeout(1000);
  s.once('connect', () => s.write('PING\r\n'));
  s.once('data', (d) => { s.destroy(); resolve(d.toString().startsWith('+PONG')); });
  s.once('error', () => resolve(false));
  s.once('timeout', () => { s.destroy(); resolve(false); });
});

if (!(await answers())) {
  // The suite's shared Redis: loopback only, nothing kept on disk (tests use their own prefixes
  // and remove their keys; the outage tests start private servers of their own).
  console.log(`test-env: starting redis-server on 127.0.0.1:${REDIS_PORT}`);
  mkdirSync('/tmp/portcullis-test-redis', { recursive: true });
  const r = spawnSync('redis-server', ['--daemonize', 'yes', '--bind', '127.0.0.1', '--port', String(REDIS_PORT), '--save', '', '--appendonly', 'no',
    '--dir', '/tmp/portcullis-test-redis', '--logfile', '/tmp/portcullis-test-redis/redis.log'], { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error('test-env: redis-server did not start');
    process.exit(1);
  }
  for (let i = 0; i < 50 && !(await answers()); i++) await new Promise((res) => setTimeout(res, 100));
  if (!(await answers())) {
    console.error(`test-env: redis-server does not answer on 127.0.0.1:${REDIS_PORT}`);
    process.exit(1);
  }
}
console.log('test-env: OpenSSH, oathtool, asciinema, Redis, Chromium, TigerVNC and FreeRDP are ready');
