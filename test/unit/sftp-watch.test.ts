import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { FileEvent } from '../../gateway/transfer/file-events.js';
import { SftpWatch } from '../../gateway/transfer/sftp-watch.js';
import { EMPTY_SHA256, feedTranscript, Recorder, sha256, THROWING_SINK, type Chunk } from '../support/transfer-transcript.js';

// R-6.3e for SFTP: the watcher follows copies of the bytes between the vendor's sftp client and
// the device's sftp-server. Both ends here are the real OpenSSH programs: `sftp -D` runs a small
// bridge instead of ssh, the bridge connects to a unix socket the test listens on, and the test
// starts the device's sftp-server for each connection, passing every byte through the watcher
// (client bytes before they reach the server, so a request is always seen before its answer).
// Each session's bytes are also kept in order, to be fed again whole, one byte at a time, or cut.

const SFTP_SERVER = '/usr/lib/openssh/sftp-server';
// sftp sends the local file's permissions with each upload: files made here are 0644 whatever the caller's umask.
process.umask(0o022);

const root = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'sftp-watch-')));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const bridge = path.join(root, 'bridge.mjs');
writeFileSync(bridge, [
  "import { connect } from 'node:net';",
  'const socket = connect(process.argv[2]);',
  'process.stdin.pipe(socket);',
  'socket.pipe(process.stdout);',
  "socket.on('error', (err) => { process.stderr.write(`bridge: ${err.message}\\n`); process.exit(1); });",
  "socket.on('close', () => process.exit(0)); // never outlives the test's end of the connection",
  '',
].join('\n'));

/** Whatever a test started and has not stopped yet: stopped after each test, passed or not. */
const running = new Set<() => void>();
afterEach(() => {
  for (const stop of running) stop();
  running.clear();
});

let count = 0;
function freshDir(name: string): string {
  const dir = path.join(root, `${name}${++count}`);
  mkdirSync(dir);
  return dir;
}

/** Feeds `transcript` to a new SFTP watcher in pieces of at most `pieceSize` bytes, then ends it. */
function replay(transcript: Chunk[], pieceSize = Number.POSITIVE_INFINITY): Recorder {
  return feedTranscript((sink) => new SftpWatch(sink), transcript, pieceSize);
}

/** Cuts one direction's bytes into SFTP packets (without their length), as they complete. */
class Framer {
  private buffered = Buffer.alloc(0);
  *feed(chunk: Buffer): Generator<Buffer> {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    while (this.buffered.length >= 4 && this.buffered.length >= 4 + this.buffered.readUInt32BE(0)) {
      const len = this.buffered.readUInt32BE(0);
      yield this.buffered.subarray(4, 4 + len);
      this.buffered = this.buffered.subarray(4 + len);
    }
  }
}

const SSH_FXP = { INIT: 1, VERSION: 2, OPEN: 3, CLOSE: 4, READ: 5, WRITE: 6, SETSTAT: 9, STATUS: 101, HANDLE: 102, DATA: 103 } as const;

interface Packet {
  from: Chunk['from'];
  type: number;
  /** The request id; null for INIT and VERSION. */
  id: number | null;
  body: Buffer;
  /** Where the packet starts in its direction's bytes. */
  at: number;
}

/** Every packet of a transcript, in the order they completed. */
function packetsOf(transcript: Chunk[]): Packet[] {
  const framers = { client: new Framer(), device: new Framer() };
  const offsets = { client: 0, device: 0 };
  const out: Packet[] = [];
  for (const { from, bytes } of transcript) {
    for (const body of framers[from].feed(bytes)) {
      const type = body[0] ?? 0;
      out.push({ from, type, id: type === SSH_FXP.INIT || type === SSH_FXP.VERSION ? null : body.readUInt32BE(1), body, at: offsets[from] });
      offsets[from] += 4 + body.length;
    }
  }
  return out;
}

/** The most WRITE requests that were waiting for the device's answer at once. */
function mostWritesInFlight(transcript: Chunk[]): number {
  const waiting = new Set<number>();
  let most = 0;
  for (const p of packetsOf(transcript)) {
    if (p.from === 'client' && p.type === SSH_FXP.WRITE && p.id !== null) waiting.add(p.id);
    if (p.from === 'device' && p.type === SSH_FXP.STATUS && p.id !== null) waiting.delete(p.id);
    most = Math.max(most, waiting.size);
  }
  return most;
}

/** The transcript with each side's bytes cut off just before its offset in `at` (a side not named is kept whole). */
function cutAt(transcript: Chunk[], at: Partial<Record<Chunk['from'], number>>): Chunk[] {
  const seen = { client: 0, device: 0 };
  const out: Chunk[] = [];
  for (const c of transcript) {
    const limit = at[c.from] ?? Number.POSITIVE_INFINITY;
    const keep = Math.max(0, Math.min(c.bytes.length, limit - seen[c.from]));
    if (keep > 0) out.push({ from: c.from, bytes: c.bytes.subarray(0, keep) });
    seen[c.from] += c.bytes.length;
  }
  return out;
}

/** One SFTP packet: a number is a uint32, a bigint a uint64, a string or Buffer an SFTP string. */
function packet(type: number, ...fields: (number | bigint | string | Buffer)[]): Buffer {
  const parts = fields.map((f) => {
    if (typeof f === 'number') return Buffer.from([f >>> 24, (f >>> 16) & 0xff, (f >>> 8) & 0xff, f & 0xff]);
    if (typeof f === 'bigint') {
      const b = Buffer.alloc(8);
      b.writeBigUInt64BE(f);
      return b;
    }
    const s = Buffer.from(f);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(s.length);
    return Buffer.concat([len, s]);
  });
  const body = Buffer.concat([Buffer.from([type]), ...parts]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
}

interface Session {
  /** What the watcher reported live, after end(). */
  events: FileEvent[];
  unreadable: string[];
  transcript: Chunk[];
  /** sftp's exit status, and what it printed. */
  code: number | null;
  output: string;
}

function exitOf(child: ChildProcessWithoutNullStreams): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
    else child.once('close', (code) => resolve(code));
  });
}

/**
 * Runs OpenSSH's sftp with `batch` (a `-` before a command lets the batch go on when it fails)
 * in `local`, against a real sftp-server started in `device`, the watcher in between.
 * `onClientPacket` sees each request before the device does, and may kill the device's server.
 */
async function sftpSession(opts: { batch: string[]; local: string; device: string; onClientPacket?: (p: Buffer, killDevice: () => void) => void }): Promise<Session> {
  if (!existsSync(SFTP_SERVER)) throw new Error(`${SFTP_SERVER} is missing: install openssh-sftp-server (openssh-server depends on it)`);
  const n = ++count;
  const socketPath = path.join(root, `s${n}.sock`);
  const batchFile = path.join(root, `batch${n}`);
  writeFileSync(batchFile, `${opts.batch.join('\n')}\n`);

  const recorder = new Recorder();
  const watch = new SftpWatch(recorder);
  const transcript: Chunk[] = [];
  const devices: Promise<number | null>[] = [];
  let deviceLog = '';
  const sockets = new Set<net.Socket>();

  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    const device = spawn(SFTP_SERVER, ['-d', opts.device]);
    const stop = (): void => void device.kill('SIGKILL');
    running.add(stop);
    devices.push(exitOf(device).finally(() => running.delete(stop)));
    const framer = new Framer();
    socket.on('data', (bytes: Buffer) => {
      if (opts.onClientPacket) for (const p of framer.feed(bytes)) opts.onClientPacket(p, stop);
      transcript.push({ from: 'client', bytes });
      watch.fromClient(bytes);
      device.stdin.write(bytes);
    });
    socket.on('end', () => device.stdin.end());
    socket.on('error', () => device.kill('SIGKILL'));
    device.stdin.on('error', () => undefined); // EPIPE once the device has exited
    device.stdout.on('data', (bytes: Buffer) => {
      transcript.push({ from: 'device', bytes });
      watch.fromDevice(bytes);
      socket.write(bytes);
    });
    device.stdout.on('end', () => socket.end());
    device.stderr.on('data', (b: Buffer) => (deviceLog += b.toString('utf8')));
  });
  const stopServer = (): void => {
    for (const s of sockets) s.destroy();
    server.close();
  };
  running.add(stopServer);

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
    const client = spawn('sftp', ['-b', batchFile, '-D', `${process.execPath} ${bridge} ${socketPath}`], { cwd: opts.local });
    const stopClient = (): void => void client.kill('SIGKILL');
    running.add(stopClient);
    let output = '';
    client.stdout.on('data', (b: Buffer) => (output += b.toString('utf8')));
    client.stderr.on('data', (b: Buffer) => (output += b.toString('utf8')));
    client.stdin.end();
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([
      exitOf(client),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`sftp did not finish: ${output}${deviceLog}`)), 15_000))),
    ]).finally(() => clearTimeout(timer));
    running.delete(stopClient);
    await Promise.all(devices);
    watch.end();
    return { events: recorder.events, unreadable: recorder.unreadable, transcript, code, output };
  } finally {
    stopServer();
    running.delete(stopServer);
  }
}

/** The bytes of the file `name` in `dir`. */
const contents = (dir: string, name: string): Buffer => readFileSync(path.join(dir, name));

describe('uploads and downloads through real OpenSSH sftp and sftp-server', () => {
  it('reports a 5 MiB put as one upload: the absolute path sftp sent, the size and hash of the local file, which arrived intact', async () => {
    const local = freshDir('local');
    const device = freshDir('device');
    const data = randomBytes(5 << 20);
    writeFileSync(path.join(local, 'firmware.bin'), data);

    const s = await sftpSession({ local, device, batch: ['put firmware.bin fw-remote.bin'] });
    expect(s.code, s.output).toBe(0);
    expect(sha256(contents(device, 'fw-remote.bin'))).toBe(sha256(data));
    // OpenSSH sends it as many WRITEs (255 KiB each once the server tells its limits), several in
    // flight at a time: the watcher sees requests run ahead of their answers.
    expect(packetsOf(s.transcript).filter((p) => p.from === 'client' && p.type === SSH_FXP.WRITE).length).toBeGreaterThanOrEqual(16);
    expect(mostWritesInFlight(s.transcript)).toBeGreaterThan(1);

    const expected: FileEvent[] = [
      { protocol: 'sftp', op: 'upload', path: `${device}/fw-remote.bin`, bytes: data.length, sha256: sha256(data), mode: '0644', outcome: 'ok' },
    ];
    expect(s.unreadable).toEqual([]);
    expect(s.events).toEqual(expected);
    expect(replay(s.transcript).events).toEqual(expected);
  });

  it('reports a 5 MiB get as one download with the size and hash of the device\'s file', async () => {
    const local = freshDir('local');
    const device = freshDir('device');
    const data = randomBytes((5 << 20) + 12_345);
    writeFileSync(path.join(device, 'logs.tar'), data);

    const s = await sftpSession({ local, device, batch: ['get logs.tar copy.tar'] });
    expect(s.code, s.output).toBe(0);
    expect(sha256(contents(local, 'copy.tar'))).toBe(sha256(data));
    expect(s.unreadable).toEqual([]);
    expect(s.events).toEqual([
      { protocol: 'sftp', op: 'download', path: `${device}/logs.tar`, bytes: data.length, sha256: sha256(data), outcome: 'ok' },
    ]);
  });

  it('reports an empty file each way with 0 bytes and the hash of nothing', async () => {
    const local = freshDir('local');
    const device = freshDir('device');
    writeFileSync(path.join(local, 'empty.up'), '');
    writeFileSync(path.join(device, 'empty.down'), '');

    const s = await sftpSession({ local, device, batch: ['put empty.up', 'get empty.down'] });
    expect(s.code, s.output).toBe(0);
    expect(statSync(path.join(device, 'empty.up')).size).toBe(0);
    expect(s.events).toEqual([
      { protocol: 'sftp', op: 'upload', path: `${device}/empty.up`, bytes: 0, sha256: EMPTY_SHA256, mode: '0644', outcome: 'ok' },
      { protocol: 'sftp', op: 'download', path: `${device}/empty.down`, bytes: 0, sha256: EMPTY_SHA256, outcome: 'ok' },
    ]);
  });

  it('reports a resumed put and get (reput, reget) from where they start: offset, the remaining bytes and their hash', async () => {
    const local = freshDir('local');
    const device = freshDir('device');
    const up = randomBytes(3 << 20);
    const down = randomBytes((2 << 20) + 777);
    const upDone = 1_000_001;
    const downDone = 654_321;
    writeFileSync(path.join(local, 'up.img'), up);
    writeFileSync(path.join(device, 'up.img'), up.subarray(0, upDone)); // a put that was cut off
    writeFileSync(path.join(device, 'down.img'), down);
    writeFileSync(path.join(local, 'down.img'), down.subarray(0, downDone)); // a get that was cut off

    const s = await sftpSession({ local, device, batch: ['reput up.img', 'reget down.img'] });
    expect(s.code, s.output).toBe(0);
    expect(contents(device, 'up.img').equals(up)).toBe(true);
    expect(contents(local, 'down.img').equals(down)).toBe(true);
    expect(s.unreadable).toEqual([]);
    expect(s.events).toEqual([
      { protocol: 'sftp', op: 'upload', path: `${device}/up.img`, offset: upDone, bytes: up.length - upDone, sha256: sha256(up.subarray(upDone)), mode: '0644', outcome: 'ok' },
      { protocol: 'sftp', op: 'download', path: `${device}/down.img`, offset: downDone, bytes: down.length - downDone, sha256: sha256(down.subarray(downDone)), outcome: 'ok' },
    ]);
  });

  it('reports a put into a directory that does not exist as failed, with the device\'s message and no bytes', async () => {
    const local = freshDir('local');
    const device = freshDir('device');
    writeFileSync(path.join(local, 'config.xml'), '<config/>\n');

    const s = await sftpSession({ local, device, batch: ['-put config.xml no-such-dir/config.xml'] });
    expect(s.output).toMatch(/No such file/);
    expect(existsSync(path.join(device, 'no-such-dir'))).toBe(false);
    expect(s.events).toEqual([
      { protocol: 'sftp', op: 'upload', path: `${device}/no-such-dir/config.xml`, bytes: 0, sha256: null, outcome: 'failed', detail: 'No such file' },
    ]);
  });

  it('reports nothing for a get sftp gives up on before opening (it looks the name up first), and a failed download when the open itself is refused', async () => {
    const local = freshDir('local');
    const device = freshDir('device');
    writeFileSync(path.join(device, 'vanishing.log'), 'gone before it is opened\n');

    // The file goes away between sftp's look-up and its OPEN: the device refuses the OPEN.
    const s = await sftpSession({
      local,
      device,
      batch: ['-get missing.log', '-get vanishing.log'],
      onClientPacket: (p) => {
        if (p[0] === SSH_FXP.OPEN && p.includes(Buffer.from('vanishing.log'))) unlinkSync(path.join(device, 'vanishing.log'));
      },
    });
    expect(s.output).toMatch(/missing\.log" not found/);
    expect(existsSync(path.join(local, 'missing.log'))).toBe(false);
    const opened = packetsOf(s.transcript).filter((p) => p.from === 'client' && p.type === SSH_FXP.OPEN);
    expect(opened.map((p) => p.body.subarray(9, 9 + p.body.readUInt32BE(5)).toString())).toEqual([`${device}/vanishing.log`]);
    expect(s.events).toEqual([
      { protocol: 'sftp', op: 'download', path: `${device}/vanishing.log`, bytes: 0, sha256: null, outcome: 'failed', detail: 'No such file' },
    ]);
  });
});

describe('changes to the device\'s file tree', () => {
  it('reports rm, rename, mkdir, rmdir, ln -s and ln once each, as the device did them, and the device\'s refusals as failed', async () => {
    const local = freshDir('local');
    const device = freshDir('device');
    writeFileSync(path.join(device, 'old.cfg'), 'a=1\n');
    writeFileSync(path.join(device, 'doomed.log'), 'bye\n');
    writeFileSync(path.join(device, 'shared.dat'), 'linked\n');
    mkdirSync(path.join(device, 'empty-dir'));

    const s = await sftpSession({
      local,
      device,
      batch: [
        'rm doomed.log',
        'rename old.cfg new.cfg',
        'mkdir conf.d',
        'rmdir empty-dir',
        'ln -s shared.dat soft-link',
        'ln shared.dat hard-link',
        '-rm not-there.log',
        '-mkdir conf.d',
      ],
    });
    expect(s.output).toMatch(/not-there\.log.*No such file/s);
    // What the device's tree says happened.
    expect(existsSync(path.join(device, 'doomed.log'))).toBe(false);
    expect([existsSync(path.join(device, 'old.cfg')), contents(device, 'new.cfg').toString()]).toEqual([false, 'a=1\n']);
    expect(statSync(path.join(device, 'conf.d')).isDirectory()).toBe(true);
    expect(existsSync(path.join(device, 'empty-dir'))).toBe(false);
    expect(readlinkSync(path.join(device, 'soft-link'))).toBe('shared.dat');
    expect(lstatSync(path.join(device, 'hard-link')).ino).toBe(lstatSync(path.join(device, 'shared.dat')).ino);

    const expected: FileEvent[] = [
      { protocol: 'sftp', op: 'remove', path: `${device}/doomed.log`, outcome: 'ok' },
      { protocol: 'sftp', op: 'rename', path: `${device}/old.cfg`, to: `${device}/new.cfg`, outcome: 'ok' },
      { protocol: 'sftp', op: 'mkdir', path: `${device}/conf.d`, mode: '0777', outcome: 'ok' },
      { protocol: 'sftp', op: 'rmdir', path: `${device}/empty-dir`, outcome: 'ok' },
      // The link that was made, and what it points to as the client wrote it (sftp keeps a symlink's target relative).
      { protocol: 'sftp', op: 'symlink', path: `${device}/soft-link`, to: 'shared.dat', outcome: 'ok' },
      { protocol: 'sftp', op: 'hardlink', path: `${device}/shared.dat`, to: `${device}/hard-link`, outcome: 'ok' },
      { protocol: 'sftp', op: 'remove', path: `${device}/not-there.log`, outcome: 'failed', detail: 'No such file' },
      { protocol: 'sftp', op: 'mkdir', path: `${device}/conf.d`, mode: '0777', outcome: 'failed', detail: 'Failure' },
    ];
    expect(s.unreadable).toEqual([]);
    expect(s.events).toEqual(expected);
  });
});

describe('however the bytes are cut, and however the session ends', () => {
  /** One session that does a bit of everything, small enough to feed a byte at a time. */
  async function mixedSession(): Promise<{ s: Session; device: string; up: Buffer; down: Buffer }> {
    const local = freshDir('local');
    const device = freshDir('device');
    const up = randomBytes(150_000);
    const down = randomBytes(100_000);
    writeFileSync(path.join(local, 'up.bin'), up);
    writeFileSync(path.join(device, 'down.bin'), down);
    const s = await sftpSession({
      local,
      device,
      batch: ['mkdir in', 'put up.bin in/up.bin', 'get down.bin', 'rename in/up.bin in/final.bin', '-rm nothing', 'ln -s in/final.bin latest', '-get nowhere/x'],
    });
    expect(s.code, s.output).toBe(0); // the refused steps had a '-'
    return { s, device, up, down };
  }

  it('gives the same events fed whole, a byte at a time, or as the live session', async () => {
    const { s, device, up, down } = await mixedSession();
    const expected: FileEvent[] = [
      { protocol: 'sftp', op: 'mkdir', path: `${device}/in`, mode: '0777', outcome: 'ok' },
      { protocol: 'sftp', op: 'upload', path: `${device}/in/up.bin`, bytes: up.length, sha256: sha256(up), mode: '0644', outcome: 'ok' },
      { protocol: 'sftp', op: 'download', path: `${device}/down.bin`, bytes: down.length, sha256: sha256(down), outcome: 'ok' },
      { protocol: 'sftp', op: 'rename', path: `${device}/in/up.bin`, to: `${device}/in/final.bin`, outcome: 'ok' },
      { protocol: 'sftp', op: 'remove', path: `${device}/nothing`, outcome: 'failed', detail: 'No such file' },
      { protocol: 'sftp', op: 'symlink', path: `${device}/latest`, to: 'in/final.bin', outcome: 'ok' },
    ];
    expect(s.events).toEqual(expected);
    expect(s.unreadable).toEqual([]);
    expect(replay(s.transcript).events).toEqual(expected);
    const byteByByte = replay(s.transcript, 1);
    expect(byteByByte.events).toEqual(expected);
    expect(byteByByte.unreadable).toEqual([]);
    expect(replay(s.transcript, 4093).events).toEqual(expected);
  });

  it('reports a file whose CLOSE the device never answered as incomplete, with every byte that went', async () => {
    const { s, device, up } = await mixedSession();
    const packets = packetsOf(s.transcript);
    const close = packets.find((p) => p.from === 'client' && p.type === SSH_FXP.CLOSE);
    const answer = packets.find((p) => p.from === 'device' && p.id === close?.id);
    if (close === undefined || answer === undefined) throw new Error('no CLOSE and its answer in the transcript');
    // The session ends there: the client's later requests (made after answers that never came) go too.
    const cut = replay(cutAt(s.transcript, { device: answer.at, client: close.at + 4 + close.body.length }));
    expect(cut.unreadable).toEqual([]);
    expect(cut.events).toEqual([
      { protocol: 'sftp', op: 'mkdir', path: `${device}/in`, mode: '0777', outcome: 'ok' },
      { protocol: 'sftp', op: 'upload', path: `${device}/in/up.bin`, bytes: up.length, sha256: sha256(up), mode: '0644', outcome: 'incomplete' },
    ]);
  });

  it('reports a put cut off by the device going away as incomplete, with the bytes that went so far', async () => {
    const local = freshDir('local');
    const device = freshDir('device');
    const data = randomBytes(4 << 20);
    writeFileSync(path.join(local, 'big.img'), data);
    let writes = 0;
    const s = await sftpSession({
      local,
      device,
      batch: ['put big.img'],
      onClientPacket: (p, killDevice) => {
        // At the 5th write (of 16) the device's server is killed: the session ends mid-file.
        if (p[0] === SSH_FXP.WRITE && ++writes === 5) killDevice();
      },
    });
    expect(s.code).not.toBe(0); // sftp dies of SIGPIPE writing to the closed connection
    expect(statSync(path.join(device, 'big.img')).size).toBeLessThan(data.length);
    const [event, ...more] = s.events;
    expect(more).toEqual([]);
    if (event === undefined) throw new Error('no event');
    expect(event).toMatchObject({ op: 'upload', path: `${device}/big.img`, outcome: 'incomplete' });
    // Counted as sent: sftp keeps up to 64 writes in flight, so it may have sent all 16 before it
    // noticed. They are one run from the start either way; the device took fewer.
    expect(event.bytes).toBeGreaterThan(0);
    expect(event.bytes).toBeLessThanOrEqual(data.length);
    expect(event.sha256).toBe(sha256(data.subarray(0, event.bytes)));
  });
});

describe('hashing in file order (hand-built streams: OpenSSH itself sends and answers in order)', () => {
  const handle = Buffer.from('fh');
  /** A watcher with `name` opened (flags: 0x1a write/create/truncate, 0x1 read). */
  function opened(name: string, flags: number): { recorder: Recorder; watcher: SftpWatch } {
    const recorder = new Recorder();
    const watcher = new SftpWatch(recorder);
    watcher.fromClient(packet(SSH_FXP.INIT, 3));
    watcher.fromDevice(packet(SSH_FXP.VERSION, 3));
    watcher.fromClient(packet(SSH_FXP.OPEN, 1, name, flags, 0));
    watcher.fromDevice(packet(SSH_FXP.HANDLE, 1, handle));
    return { recorder, watcher };
  }
  const ok = (id: number): Buffer => packet(SSH_FXP.STATUS, id, 0, '', '');
  function close(watcher: SftpWatch, id: number): void {
    watcher.fromClient(packet(SSH_FXP.CLOSE, id, handle));
    watcher.fromDevice(ok(id));
    watcher.end();
  }

  it('hashes writes that skip ahead in file order once the gap is filled', () => {
    const { recorder, watcher } = opened('/srv/a', 0x1a);
    watcher.fromClient(Buffer.concat([packet(SSH_FXP.WRITE, 2, handle, 0n, 'aaaa'), packet(SSH_FXP.WRITE, 3, handle, 8n, 'cccc'), packet(SSH_FXP.WRITE, 4, handle, 4n, 'bbbb')]));
    watcher.fromDevice(Buffer.concat([ok(4), ok(2), ok(3)]));
    close(watcher, 5);
    expect(recorder.events).toEqual([{ protocol: 'sftp', op: 'upload', path: '/srv/a', bytes: 12, sha256: sha256('aaaabbbbcccc'), outcome: 'ok' }]);
  });

  it('reports writes sent last block first from their lowest offset, without a hash (no single run as they came)', () => {
    const { recorder, watcher } = opened('/srv/a2', 0x1a);
    watcher.fromClient(Buffer.concat([packet(SSH_FXP.WRITE, 2, handle, 8n, 'cccc'), packet(SSH_FXP.WRITE, 3, handle, 4n, 'bbbb'), packet(SSH_FXP.WRITE, 4, handle, 0n, 'aaaa')]));
    watcher.fromDevice(Buffer.concat([ok(2), ok(3), ok(4)]));
    close(watcher, 5);
    // Not reported as a transfer resumed at offset 8: the file was written from its first byte.
    expect(recorder.events).toEqual([{ protocol: 'sftp', op: 'upload', path: '/srv/a2', bytes: 12, sha256: null, outcome: 'ok' }]);
  });

  it('hashes DATA the device answers out of order by the offset each READ asked for', () => {
    const { recorder, watcher } = opened('/srv/b', 0x1);
    watcher.fromClient(Buffer.concat([packet(SSH_FXP.READ, 2, handle, 0n, 5), packet(SSH_FXP.READ, 3, handle, 5n, 5), packet(SSH_FXP.READ, 4, handle, 10n, 5)]));
    watcher.fromDevice(Buffer.concat([packet(SSH_FXP.DATA, 3, 'world'), packet(SSH_FXP.DATA, 2, 'hello'), packet(SSH_FXP.STATUS, 4, 1, 'EOF', '')]));
    close(watcher, 5);
    expect(recorder.events).toEqual([{ protocol: 'sftp', op: 'download', path: '/srv/b', bytes: 10, sha256: sha256('helloworld'), outcome: 'ok' }]);
  });

  it('gives no hash but the exact count for a file written twice over, or with a gap left at CLOSE', () => {
    const twice = opened('/srv/c', 0x1a);
    twice.watcher.fromClient(packet(SSH_FXP.WRITE, 2, handle, 0n, 'first'));
    twice.watcher.fromClient(packet(SSH_FXP.WRITE, 3, handle, 0n, 'again'));
    twice.watcher.fromDevice(Buffer.concat([ok(2), ok(3)]));
    close(twice.watcher, 4);
    expect(twice.recorder.events).toEqual([{ protocol: 'sftp', op: 'upload', path: '/srv/c', bytes: 10, sha256: null, outcome: 'ok' }]);

    const gap = opened('/srv/d', 0x1a);
    gap.watcher.fromClient(packet(SSH_FXP.WRITE, 2, handle, 0n, 'head'));
    gap.watcher.fromClient(packet(SSH_FXP.WRITE, 3, handle, 100n, 'tail'));
    gap.watcher.fromDevice(Buffer.concat([ok(2), ok(3)]));
    close(gap.watcher, 4);
    expect(gap.recorder.events).toEqual([{ protocol: 'sftp', op: 'upload', path: '/srv/d', bytes: 8, sha256: null, outcome: 'ok' }]);
  });

  it('reports a file with a WRITE the device refused as failed, with its message, counting only what it took', () => {
    const { recorder, watcher } = opened('/srv/e', 0x1a);
    watcher.fromClient(Buffer.concat([packet(SSH_FXP.WRITE, 2, handle, 0n, 'kept'), packet(SSH_FXP.WRITE, 3, handle, 4n, 'refused')]));
    watcher.fromDevice(Buffer.concat([ok(2), packet(SSH_FXP.STATUS, 3, 4, 'No space left on device\n', '')]));
    close(watcher, 4);
    expect(recorder.events).toEqual([{ protocol: 'sftp', op: 'upload', path: '/srv/e', bytes: 4, sha256: sha256('keptrefused'), outcome: 'failed', detail: 'No space left on device' }]);
  });

  it('follows a packet of the largest size fed a byte at a time without copying it over and over', { timeout: 30_000 }, () => {
    const { recorder, watcher } = opened('/srv/big', 0x1a);
    const data = randomBytes(500 * 1024);
    const write = packet(SSH_FXP.WRITE, 2, handle, 0n, data);
    for (let i = 0; i < write.length; i++) watcher.fromClient(write.subarray(i, i + 1));
    watcher.fromDevice(ok(2));
    close(watcher, 3);
    expect(recorder.unreadable).toEqual([]);
    expect(recorder.events).toEqual([{ protocol: 'sftp', op: 'upload', path: '/srv/big', bytes: data.length, sha256: sha256(data), outcome: 'ok' }]);
  });
});

// Review findings, from the attacker's side: a vendor's own client sending what OpenSSH never
// sends, to move bytes past the audit or to make the audit say something else.
describe('a client that breaks the rules to slip a file past the audit', () => {
  const FLAGS = { READ: 0x1, WRITE: 0x2, CREAT: 0x8, TRUNC: 0x10 } as const;
  const h0 = Buffer.from([0, 0, 0, 0]);
  const ok = (id: number): Buffer => packet(SSH_FXP.STATUS, id, 0, '', '');
  function started(): { recorder: Recorder; watcher: SftpWatch } {
    const recorder = new Recorder();
    const watcher = new SftpWatch(recorder);
    watcher.fromClient(packet(SSH_FXP.INIT, 3));
    watcher.fromDevice(packet(SSH_FXP.VERSION, 3));
    return { recorder, watcher };
  }

  it('ends the session on a WRITE to a handle the device has not given yet (guessed: sftp-server\'s first is always 0)', () => {
    const { recorder, watcher } = started();
    watcher.fromClient(Buffer.concat([packet(SSH_FXP.OPEN, 1, '/srv/x', FLAGS.WRITE | FLAGS.CREAT, 0), packet(SSH_FXP.WRITE, 2, h0, 0n, 'smuggled')]));
    expect(recorder.unreadable).toEqual([expect.stringMatching(/handle the device has not given/)]);
    // The open that was on its way is on record: the device may have created the file.
    expect(recorder.events).toEqual([{ protocol: 'sftp', op: 'upload', path: '/srv/x', bytes: 0, sha256: null, outcome: 'incomplete' }]);
  });

  it('ends the session on a WRITE after CLOSE, and the file keeps the bytes written before', () => {
    const { recorder, watcher } = started();
    watcher.fromClient(packet(SSH_FXP.OPEN, 1, '/srv/y', FLAGS.WRITE | FLAGS.CREAT, 0));
    watcher.fromDevice(packet(SSH_FXP.HANDLE, 1, h0));
    watcher.fromClient(Buffer.concat([packet(SSH_FXP.WRITE, 2, h0, 0n, 'real\n'), packet(SSH_FXP.CLOSE, 3, h0), packet(SSH_FXP.WRITE, 4, h0, 5n, 'fake')]));
    expect(recorder.unreadable).toEqual([expect.stringMatching(/handle being closed/)]);
    expect(recorder.events).toEqual([{ protocol: 'sftp', op: 'upload', path: '/srv/y', bytes: 5, sha256: sha256('real\n'), outcome: 'incomplete' }]);
  });

  it('ends the session on a request id sent again before its answer (a second OPEN would rename the first)', () => {
    const { recorder, watcher } = started();
    watcher.fromClient(Buffer.concat([packet(SSH_FXP.OPEN, 7, '/srv/secret.txt', FLAGS.READ, 0), packet(SSH_FXP.OPEN, 7, '/srv/harmless.txt', FLAGS.READ, 0)]));
    expect(recorder.unreadable).toEqual([expect.stringMatching(/request 7 sent again/)]);
  });

  it('ends the session on an answer to nothing, and on a handle given twice', () => {
    const a = started();
    a.watcher.fromDevice(ok(99));
    expect(a.recorder.unreadable).toEqual([expect.stringMatching(/answered request 99, which was not asked/)]);
    const b = started();
    b.watcher.fromClient(Buffer.concat([packet(SSH_FXP.OPEN, 1, '/srv/a', FLAGS.READ, 0), packet(SSH_FXP.OPEN, 2, '/srv/b', FLAGS.READ, 0)]));
    b.watcher.fromDevice(Buffer.concat([packet(SSH_FXP.HANDLE, 1, h0), packet(SSH_FXP.HANDLE, 2, h0)]));
    expect(b.recorder.unreadable).toEqual([expect.stringMatching(/handle that is still open/)]);
  });

  it('reports bytes read as a download whatever the OPEN asked for (flags 0 opens read-only)', () => {
    const { recorder, watcher } = started();
    watcher.fromClient(packet(SSH_FXP.OPEN, 1, '/etc/secret', 0, 0));
    watcher.fromDevice(packet(SSH_FXP.HANDLE, 1, h0));
    watcher.fromClient(packet(SSH_FXP.READ, 2, h0, 0n, 32768));
    watcher.fromDevice(packet(SSH_FXP.DATA, 2, 'the secret'));
    watcher.fromClient(packet(SSH_FXP.CLOSE, 3, h0));
    watcher.fromDevice(ok(3));
    expect(recorder.events).toEqual([{ protocol: 'sftp', op: 'download', path: '/etc/secret', bytes: 10, sha256: sha256('the secret'), outcome: 'ok' }]);
  });

  it('reports an OPEN that truncates without WRITE as an upload of nothing, and a SETSTAT as what it changes', () => {
    const { recorder, watcher } = started();
    watcher.fromClient(packet(SSH_FXP.OPEN, 1, '/srv/log', FLAGS.CREAT | FLAGS.TRUNC, 0));
    watcher.fromDevice(packet(SSH_FXP.HANDLE, 1, h0));
    watcher.fromClient(packet(SSH_FXP.CLOSE, 2, h0));
    watcher.fromDevice(ok(2));
    // SETSTAT: size 0 and mode 4755 (flags SIZE | PERMISSIONS).
    watcher.fromClient(packet(SSH_FXP.SETSTAT, 3, '/srv/tool', 0x5, 0n, 0o104755));
    watcher.fromDevice(ok(3));
    expect(recorder.events).toEqual([
      { protocol: 'sftp', op: 'upload', path: '/srv/log', bytes: 0, sha256: EMPTY_SHA256, outcome: 'ok' },
      { protocol: 'sftp', op: 'setstat', path: '/srv/tool', attributes: { size: 0, mode: '4755' }, outcome: 'ok' },
    ]);
  });

  it('keeps a finished download as it went when a refused WRITE on the same handle fails the upload side', () => {
    const { recorder, watcher } = started();
    watcher.fromClient(packet(SSH_FXP.OPEN, 1, '/srv/both', FLAGS.READ | FLAGS.WRITE, 0));
    watcher.fromDevice(packet(SSH_FXP.HANDLE, 1, h0));
    watcher.fromClient(packet(SSH_FXP.READ, 2, h0, 0n, 100));
    watcher.fromDevice(packet(SSH_FXP.DATA, 2, 'went out'));
    watcher.fromClient(packet(SSH_FXP.WRITE, 3, h0, 0n, 'x'));
    watcher.fromDevice(packet(SSH_FXP.STATUS, 3, 3, 'Permission denied', ''));
    watcher.fromClient(packet(SSH_FXP.CLOSE, 4, h0));
    watcher.fromDevice(ok(4));
    expect(recorder.events).toEqual([
      { protocol: 'sftp', op: 'upload', path: '/srv/both', bytes: 0, sha256: sha256('x'), outcome: 'failed', detail: 'Permission denied' },
      { protocol: 'sftp', op: 'download', path: '/srv/both', bytes: 8, sha256: sha256('went out'), outcome: 'ok' },
    ]);
  });

  it('holds back at most 16 MiB of out-of-order data per session, however many files are open', () => {
    const { recorder, watcher } = started();
    const block = randomBytes(256 * 1024);
    const files = 8;
    const blocks = 13;
    const handleOf = (f: number): Buffer => Buffer.from([0, 0, 0, f]);
    let id = 1;
    const send = (req: Buffer): void => {
      watcher.fromClient(req);
      watcher.fromDevice(ok(id++));
    };
    for (let f = 0; f < files; f++) {
      watcher.fromClient(packet(SSH_FXP.OPEN, id, `/srv/f${f}`, FLAGS.WRITE | FLAGS.CREAT, 0));
      watcher.fromDevice(packet(SSH_FXP.HANDLE, id++, handleOf(f)));
    }
    // Every file gets block 0, then blocks 2..13: 3 MiB each waits for block 1, 24 MiB in all if nothing stopped it.
    for (let f = 0; f < files; f++) {
      send(packet(SSH_FXP.WRITE, id, handleOf(f), 0n, block));
      for (let i = 2; i <= blocks; i++) send(packet(SSH_FXP.WRITE, id, handleOf(f), BigInt(i * block.length), block));
    }
    for (let f = 0; f < files; f++) send(packet(SSH_FXP.WRITE, id, handleOf(f), BigInt(block.length), block));
    for (let f = 0; f < files; f++) send(packet(SSH_FXP.CLOSE, id, handleOf(f)));
    expect(recorder.unreadable).toEqual([]);
    // Five files' 15 MiB fit; the sixth would pass 16 MiB, so it and the later ones lose their hash. Counts stay exact.
    const whole = sha256(Buffer.concat(Array.from({ length: blocks + 1 }, () => block)));
    expect(recorder.events.map((e) => [e.path, e.bytes, e.sha256])).toEqual(
      Array.from({ length: files }, (_, f) => [`/srv/f${f}`, (blocks + 1) * block.length, f < 5 ? whole : null]),
    );
  });

  it('ends the session on an extension it cannot audit, a path longer than Linux allows, or a request type SFTP v3 does not have', () => {
    const a = started();
    a.watcher.fromClient(packet(200, 1, 'write-anything@example.com', '/srv/x', 'data'));
    expect(a.recorder.unreadable).toEqual([expect.stringMatching(/extension "write-anything@example.com", which the gateway cannot audit/)]);
    const b = started();
    b.watcher.fromClient(packet(SSH_FXP.OPEN, 1, `/srv/${'x'.repeat(5000)}`, FLAGS.READ, 0));
    expect(b.recorder.unreadable).toEqual([expect.stringMatching(/a path of 5005 bytes/)]);
    const c = started();
    c.watcher.fromClient(packet(42, 1));
    expect(c.recorder.unreadable).toEqual([expect.stringMatching(/request type 42/)]);
  });

  it('reports a change the device had not answered when the session ended as incomplete', () => {
    const { recorder, watcher } = started();
    watcher.fromClient(packet(13, 1, '/srv/evidence.log'));
    watcher.end();
    expect(recorder.events).toEqual([{ protocol: 'sftp', op: 'remove', path: '/srv/evidence.log', outcome: 'incomplete' }]);
  });
});

describe('a stream the watcher cannot follow', () => {
  /** A real upload's requests and answers, to go on with after the bad bytes. */
  function validUpload(): Chunk[] {
    const handle = Buffer.from('h0');
    return [
      { from: 'client', bytes: packet(SSH_FXP.OPEN, 1, '/tmp/x', 0x1a, 0) },
      { from: 'device', bytes: packet(SSH_FXP.HANDLE, 1, handle) },
      { from: 'client', bytes: packet(SSH_FXP.WRITE, 2, handle, 0n, 'data') },
      { from: 'device', bytes: packet(SSH_FXP.STATUS, 2, 0, '', '') },
      { from: 'client', bytes: packet(SSH_FXP.CLOSE, 3, handle) },
      { from: 'device', bytes: packet(SSH_FXP.STATUS, 3, 0, '', '') },
    ];
  }

  it('follows the hand-built upload used below (so that its silence after bad bytes means something)', () => {
    const start: Chunk[] = [{ from: 'client', bytes: packet(SSH_FXP.INIT, 3) }, { from: 'device', bytes: packet(SSH_FXP.VERSION, 3) }];
    expect(replay([...start, ...validUpload()]).events).toEqual([
      { protocol: 'sftp', op: 'upload', path: '/tmp/x', bytes: 4, sha256: sha256('data'), outcome: 'ok' },
    ]);
  });

  const malformed: [string, Chunk, RegExp][] = [
    ['a packet longer than 512 KiB', { from: 'client', bytes: Buffer.from([0x00, 0x08, 0x00, 0x01, 3]) }, /a packet of 524289 bytes \(at most 524288\)/],
    ['a packet of length 0', { from: 'device', bytes: Buffer.alloc(4) }, /a packet of 0 bytes/],
    ['a string running past its packet', { from: 'client', bytes: packet(SSH_FXP.OPEN, 7, 1000, 0x1a, 0) }, /a string runs past the end of its packet/],
    ['a packet shorter than its fields', { from: 'client', bytes: packet(SSH_FXP.CLOSE, 7) }, /shorter than its fields/],
    ['an INIT asking for version 2', { from: 'client', bytes: packet(SSH_FXP.INIT, 2) }, /SFTP version 2 asked for/],
    ['a device answering version 4', { from: 'device', bytes: packet(SSH_FXP.VERSION, 4) }, /answered with SFTP version 4/],
    ['a file size beyond 2^53', { from: 'client', bytes: packet(SSH_FXP.SETSTAT, 7, '/srv/x', 0x1, 1n << 60n) }, /size beyond 2\^53/],
  ];

  it.each(malformed)('%s: unreadable once, saying why, then nothing more', (_what, bad, reason) => {
    const recorder = new Recorder();
    const watcher = new SftpWatch(recorder);
    const feed = ({ from, bytes }: Chunk): void => (from === 'client' ? watcher.fromClient(bytes) : watcher.fromDevice(bytes));
    feed({ from: 'client', bytes: packet(SSH_FXP.INIT, 3) });
    feed({ from: 'device', bytes: packet(SSH_FXP.VERSION, 3) });
    feed(bad);
    expect(recorder.unreadable).toHaveLength(1);
    expect(recorder.unreadable[0]).toMatch(/^the SFTP stream could not be followed: /);
    expect(recorder.unreadable[0]).toMatch(reason);
    for (const c of validUpload()) feed(c);
    watcher.fromClient(Buffer.from([0xff, 0xff, 0xff, 0xff]));
    watcher.end();
    expect(recorder.unreadable).toHaveLength(1);
    expect(recorder.events).toEqual([]);
  });

  it('reports a file already open when the stream breaks as incomplete, before the unreadable, and nothing after', () => {
    const recorder = new Recorder();
    const watcher = new SftpWatch(recorder);
    const handle = Buffer.from('h1');
    watcher.fromClient(packet(SSH_FXP.OPEN, 1, '/opt/firmware.bin', 0x1a, 0));
    watcher.fromDevice(packet(SSH_FXP.HANDLE, 1, handle));
    watcher.fromClient(packet(SSH_FXP.WRITE, 2, handle, 0n, 'most of the firmware'));
    watcher.fromClient(Buffer.from([0x7f, 0xff, 0xff, 0xff])); // then a length no client sends
    watcher.fromDevice(packet(SSH_FXP.STATUS, 2, 0, '', ''));
    watcher.end();
    expect(recorder.calls).toEqual(['file upload incomplete', 'unreadable']);
    expect(recorder.events).toEqual([
      { protocol: 'sftp', op: 'upload', path: '/opt/firmware.bin', bytes: 20, sha256: sha256('most of the firmware'), outcome: 'incomplete' },
    ]);
  });

  it('never throws into the relay, even when the sink does', () => {
    const handle = Buffer.from('h');
    const open = (w: SftpWatch): void => {
      w.fromClient(packet(SSH_FXP.OPEN, 1, '/tmp/x', 0x1a, 0));
      w.fromDevice(packet(SSH_FXP.HANDLE, 1, handle));
    };
    const settled = new SftpWatch(THROWING_SINK);
    expect(() => {
      open(settled);
      settled.fromClient(packet(SSH_FXP.CLOSE, 2, handle));
      settled.fromDevice(packet(SSH_FXP.STATUS, 2, 0, '', '')); // the event the sink refuses
      settled.fromClient(Buffer.from('garbage'));
      settled.end();
    }).not.toThrow();
    const open1 = new SftpWatch(THROWING_SINK);
    expect(() => {
      open(open1);
      open1.end(); // the incomplete file the sink refuses
    }).not.toThrow();
  });
});

describe('R-6.3e: a grant with one direction, gated request by request (hand-built streams)', () => {
  const T = { ...SSH_FXP, LSTAT: 7, OPENDIR: 11, READDIR: 12, REMOVE: 13, MKDIR: 14, RMDIR: 15, REALPATH: 16, STAT: 17, RENAME: 18, SYMLINK: 20, EXTENDED: 200 } as const;
  const handle = Buffer.from('fh');
  const ok = (id: number): Buffer => packet(SSH_FXP.STATUS, id, 0, '', '');

  /** A gating watcher wired to byte lists: what it let reach the device, and the client's stream as the client would read it. */
  function gated(allowed: { upload: boolean; download: boolean }) {
    const recorder = new Recorder();
    const watcher = new SftpWatch(recorder, allowed);
    const toDevice: Buffer[] = [];
    const toClient: Buffer[] = [];
    const notices: string[] = [];
    watcher.attach({ toDevice: (b) => toDevice.push(Buffer.from(b)), toClient: (b) => toClient.push(Buffer.from(b)), notice: (t) => notices.push(t) });
    watcher.fromClient(packet(SSH_FXP.INIT, 3));
    watcher.fromDevice(packet(SSH_FXP.VERSION, 3));
    /** The client's stream cut into packets: any reply spliced inside a device packet would break this framing. */
    const clientPackets = (): Array<{ type: number; id: number | null; code?: number; message?: string }> => {
      const framer = new Framer();
      return [...framer.feed(Buffer.concat(toClient))].map((body) => {
        const type = body[0] ?? 0;
        if (type === SSH_FXP.VERSION) return { type, id: null };
        const id = body.readUInt32BE(1);
        if (type !== SSH_FXP.STATUS) return { type, id };
        const len = body.readUInt32BE(9);
        return { type, id, code: body.readUInt32BE(5), message: body.subarray(13, 13 + len).toString('utf8') };
      });
    };
    const devicePackets = (): Array<{ type: number; id: number | null }> => {
      const framer = new Framer();
      return [...framer.feed(Buffer.concat(toDevice))].map((body) => ({ type: body[0] ?? 0, id: body[0] === SSH_FXP.INIT ? null : body.readUInt32BE(1) }));
    };
    return { recorder, watcher, toDevice, notices, clientPackets, devicePackets };
  }

  it('watches only, as before, on a grant with both directions (or gates nothing to gate)', () => {
    expect(new SftpWatch(new Recorder()).gates).toBe(false);
    expect(new SftpWatch(new Recorder(), { upload: true, download: true }).gates).toBe(false);
    expect(new SftpWatch(new Recorder(), { upload: true, download: false }).gates).toBe(true);
  });

  it('upload only: a read never reaches the device; the reply goes between two device packets, never inside one, and the id stays the client\'s', () => {
    const g = gated({ upload: true, download: false });
    g.watcher.fromClient(packet(SSH_FXP.OPEN, 1, '/srv/fw.bin', 0x1a, 0));
    const answer = packet(SSH_FXP.HANDLE, 1, handle);
    // The device's answer arrives a byte at a time; the refused read is asked while it is half-way through.
    g.watcher.fromDevice(answer.subarray(0, 3));
    g.watcher.fromClient(packet(SSH_FXP.OPEN, 2, '/srv/patients.db', 0x1, 0));
    for (let i = 3; i < answer.length; i++) g.watcher.fromDevice(answer.subarray(i, i + 1));
    // Reading on the write handle is refused too; writing goes on, and id 2 may be used again.
    g.watcher.fromClient(packet(SSH_FXP.READ, 3, handle, 0n, 4096));
    g.watcher.fromClient(packet(SSH_FXP.WRITE, 2, handle, 0n, 'data'));
    g.watcher.fromDevice(ok(2));
    g.watcher.fromClient(packet(SSH_FXP.CLOSE, 4, handle));
    g.watcher.fromDevice(ok(4));
    g.watcher.end();

    expect(g.devicePackets()).toEqual([
      { type: SSH_FXP.INIT, id: null }, { type: SSH_FXP.OPEN, id: 1 }, { type: SSH_FXP.WRITE, id: 2 }, { type: SSH_FXP.CLOSE, id: 4 },
    ]);
    const client = g.clientPackets();
    expect(client.map((p) => [p.type, p.id, p.code])).toEqual([
      [SSH_FXP.VERSION, null, undefined], [SSH_FXP.STATUS, 2, 3], [SSH_FXP.HANDLE, 1, undefined], [SSH_FXP.STATUS, 3, 3], [SSH_FXP.STATUS, 2, 0], [SSH_FXP.STATUS, 4, 0],
    ]);
    expect(client[1]?.message).toMatch(/^portcullis: .*upload only.*\[FILE_DOWNLOAD_NOT_GRANTED\]$/);
    expect(g.notices).toEqual([expect.stringContaining('download "/srv/patients.db" refused'), expect.stringContaining('download "/srv/fw.bin" refused')]);
    expect(g.recorder.unreadable).toEqual([]);
    expect(g.recorder.events).toEqual([
      expect.objectContaining({ op: 'download', path: '/srv/patients.db', outcome: 'denied', code: 'FILE_DOWNLOAD_NOT_GRANTED', bytes: 0 }),
      expect.objectContaining({ op: 'download', path: '/srv/fw.bin', outcome: 'denied', code: 'FILE_DOWNLOAD_NOT_GRANTED' }),
      expect.objectContaining({ op: 'upload', path: '/srv/fw.bin', outcome: 'ok', bytes: 4, sha256: sha256('data') }),
    ]);
  });

  it('upload only: an open for reading and writing, and one with neither flag (read-only for sftp-server), are downloads', () => {
    const g = gated({ upload: true, download: false });
    g.watcher.fromClient(Buffer.concat([packet(SSH_FXP.OPEN, 1, '/a', 0x3, 0), packet(SSH_FXP.OPEN, 2, '/b', 0x0, 0), packet(SSH_FXP.OPEN, 3, '/c', 0x4 | 0x8, 0)]));
    expect(g.devicePackets().map((p) => p.id)).toEqual([null]);
    expect(g.recorder.events.map((e) => [e.path, e.code])).toEqual([['/a', 'FILE_DOWNLOAD_NOT_GRANTED'], ['/b', 'FILE_DOWNLOAD_NOT_GRANTED'], ['/c', 'FILE_DOWNLOAD_NOT_GRANTED']]);
  });

  it('download only: every change to the device\'s files is refused; reading, listing and looking up pass', () => {
    const g = gated({ upload: false, download: true });
    const changes = [
      packet(SSH_FXP.OPEN, 10, '/srv/new.cfg', 0x1a, 0),
      packet(SSH_FXP.OPEN, 11, '/srv/log', 0x1 | 0x10, 0),
      packet(T.REMOVE, 12, '/srv/a'),
      packet(T.RENAME, 13, '/srv/a', '/srv/b'),
      packet(T.MKDIR, 14, '/srv/d', 0),
      packet(T.RMDIR, 15, '/srv/d'),
      packet(SSH_FXP.SETSTAT, 16, '/srv/a', 0x4, 0o777),
      packet(T.SYMLINK, 17, '/etc/shadow', '/srv/l'),
      packet(T.EXTENDED, 18, 'posix-rename@openssh.com', '/srv/a', '/srv/c'),
      packet(T.EXTENDED, 19, 'hardlink@openssh.com', '/srv/a', '/srv/h'),
      packet(T.EXTENDED, 20, 'lsetstat@openssh.com', '/srv/a', 0x4, 0o600),
    ];
    const reads = [
      packet(T.REALPATH, 30, '.'), packet(T.STAT, 31, '/srv/a'), packet(T.LSTAT, 32, '/srv/a'), packet(T.OPENDIR, 33, '/srv'),
      packet(SSH_FXP.OPEN, 34, '/srv/a', 0x1, 0), packet(T.EXTENDED, 35, 'statvfs@openssh.com', '/srv'),
    ];
    g.watcher.fromClient(Buffer.concat([...changes, ...reads]));
    expect(g.devicePackets().map((p) => p.id)).toEqual([null, 30, 31, 32, 33, 34, 35]);
    expect(g.clientPackets().filter((p) => p.type === SSH_FXP.STATUS).map((p) => [p.id, p.code])).toEqual(changes.map((_, i) => [10 + i, 3]));
    expect(g.recorder.events.map((e) => [e.op, e.outcome, e.code])).toEqual([
      'upload', 'upload', 'remove', 'rename', 'mkdir', 'rmdir', 'setstat', 'symlink', 'rename', 'hardlink', 'setstat',
    ].map((op) => [op, 'denied', 'FILE_UPLOAD_NOT_GRANTED']));
    // A WRITE on a handle opened for reading does not reach the device either.
    g.watcher.fromDevice(packet(SSH_FXP.HANDLE, 34, handle));
    g.watcher.fromClient(packet(SSH_FXP.WRITE, 36, handle, 0n, 'x'));
    g.watcher.fromClient(packet(SSH_FXP.READ, 37, handle, 0n, 10));
    expect(g.devicePackets().map((p) => p.id).slice(-1)).toEqual([37]);
    expect(g.recorder.unreadable).toEqual([]);
  });

  it('ends a session that keeps asking for what the grant refuses, and tells the client only the first few times', () => {
    const g = gated({ upload: false, download: true });
    for (let i = 0; i < 256; i++) g.watcher.fromClient(packet(T.REMOVE, i, `/srv/${i}`));
    expect(g.recorder.unreadable).toEqual([]);
    expect(g.notices).toHaveLength(20);
    g.watcher.fromClient(packet(T.REMOVE, 999, '/srv/one-more'));
    expect(g.recorder.unreadable).toEqual([expect.stringContaining('more than 256 requests the grant does not allow')]);
    expect(g.devicePackets().map((p) => p.id)).toEqual([null]);
  });
});
