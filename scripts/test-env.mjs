#!/usr/bin/env node
// Makes this machine ready for `npm test`: the real peers the tests drive (OpenSSH client and
// server, oathtool, asciinema, redis) are installed from Debian's archive when missing. Quick
// when everything is already there: it only checks for the programs.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const NEEDS = [
  { bin: '/usr/bin/ssh', pkg: 'openssh-client' },
  { bin: '/usr/sbin/sshd', pkg: 'openssh-server' },
  { bin: '/usr/bin/ssh-keygen', pkg: 'openssh-client' },
  { bin: '/usr/bin/oathtool', pkg: 'oathtool' },
  { bin: '/usr/bin/asciinema', pkg: 'asciinema' },
];

const missing = [...new Set(NEEDS.filter((n) => !existsSync(n.bin)).map((n) => n.pkg))];
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
console.log('test-env: OpenSSH, oathtool and asciinema are present');
