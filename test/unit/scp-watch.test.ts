import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { FileEvent } from '../../gateway/transfer/file-events.js';
import { parseScpCommand, ScpWatch } from '../../gateway/transfer/scp-watch.js';
import { EMPTY_SHA256, feedTranscript, Recorder, sha256, THROWING_SINK, type Chunk } from '../support/transfer-transcript.js';

// R-6.3e for legacy scp (`scp -O`): the watcher follows copies of the bytes between the vendor's
// client and the device-side `scp -t` / `scp -f`. The device side here is the real OpenSSH scp
// run locally; the test plays the vendor's client, and every byte either way is kept in a
// transcript that is then fed to the watcher (whole, in 1-byte pieces, or one chunk per side).

const root = mkdtempSync(path.join(os.tmpdir(), 'scp-watch-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let dirCount = 0;
function freshDir(): string {
  const dir = path.join(root, `d${++dirCount}`);
  mkdirSync(dir);
  return dir;
}

/** Feeds `transcript` to a new scp watcher in pieces of at most `pieceSize` bytes, then ends it. */
function watch(argv: string[], transcript: Chunk[], pieceSize = Number.POSITIVE_INFINITY): Recorder {
  return feedTranscript((sink) => new ScpWatch(argv, sink), transcript, pieceSize);
}

/** Fed whole and a byte at a time, the watcher must report exactly `expected` from a transcript. */
function expectWatchedEitherWay(argv: string[], transcript: Chunk[], expected: { unreadable: string[]; events: FileEvent[] }): void {
  for (const pieces of [Number.POSITIVE_INFINITY, 1]) {
    const { events, unreadable } = watch(argv, transcript, pieces);
    expect(unreadable).toEqual(expected.unreadable);
    expect(events).toEqual(expected.events);
  }
}

/** The same bytes as one chunk per direction: first everything `first` sent, then the other side. */
function coalesced(transcript: Chunk[], first: Chunk['from']): Chunk[] {
  const side = (from: Chunk['from']): Buffer => Buffer.concat(transcript.filter((c) => c.from === from).map((c) => c.bytes));
  return [
    { from: first, bytes: side(first) },
    { from: first === 'client' ? 'device' : 'client', bytes: side(first === 'client' ? 'device' : 'client') },
  ];
}

const byPath = (events: FileEvent[]): FileEvent[] => [...events].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));

/** The device-side scp, with the test as the vendor's client on its stdin/stdout. */
class Device {
  readonly transcript: Chunk[] = [];
  readonly exit: Promise<number | null>;
  private buffered = Buffer.alloc(0);
  private ended = false;
  private wake: (() => void) | null = null;

  constructor(private readonly child: ChildProcessWithoutNullStreams) {
    child.stdout.on('data', (bytes: Buffer) => {
      this.transcript.push({ from: 'device', bytes });
      this.buffered = Buffer.concat([this.buffered, bytes]);
      this.wake?.();
    });
    child.stdout.on('end', () => {
      this.ended = true;
      this.wake?.();
    });
    child.stdin.on('error', () => undefined); // EPIPE once the device has exited
    this.exit = new Promise((resolve) => child.on('close', (code) => resolve(code)));
  }

  static scp(args: string[]): Device {
    return new Device(spawn('scp', args));
  }

  static shell(command: string): Device {
    return new Device(spawn('sh', ['-c', command]));
  }

  send(bytes: Buffer | string): void {
    const b = Buffer.from(bytes);
    this.transcript.push({ from: 'client', bytes: b });
    this.child.stdin.write(b);
  }

  async take(n: number): Promise<Buffer> {
    await this.until(() => this.buffered.length >= n);
    const out = this.buffered.subarray(0, n);
    this.buffered = this.buffered.subarray(n);
    return out;
  }

  /** One line, without its '\n'. */
  async line(): Promise<Buffer> {
    await this.until(() => this.buffered.includes(0x0a));
    const end = this.buffered.indexOf(0x0a);
    const out = this.buffered.subarray(0, end);
    this.buffered = this.buffered.subarray(end + 1);
    return out;
  }

  /** One answer: '' for \0, else the message line with its \1 or \2 byte. */
  async answer(): Promise<string> {
    const [byte] = await this.take(1);
    if (byte === 0) return '';
    return String.fromCharCode(byte ?? 0) + (await this.line()).toString('utf8');
  }

  async atEnd(): Promise<boolean> {
    await this.until(() => this.buffered.length > 0, true);
    return this.buffered.length === 0;
  }

  async close(): Promise<number | null> {
    this.child.stdin.end();
    return this.exit;
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }

  private async until(ready: () => boolean, endIsFine = false): Promise<void> {
    while (!ready()) {
      if (this.ended) {
        if (endIsFine) return;
        throw new Error(`device output ended early: ${JSON.stringify(this.buffered.toString('latin1'))}`);
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = null;
    }
  }
}

/** The client as source (upload): one file, as OpenSSH's source() sends it. The device's answers to the C line and the data. */
async function sendFile(device: Device, name: string, data: Buffer, mode = '0644'): Promise<string[]> {
  device.send(`C${mode} ${data.length} ${name}\n`);
  const header = await device.answer();
  if (header !== '') return [header];
  for (let i = 0; i < data.length; i += 65536) device.send(data.subarray(i, i + 65536));
  device.send('\0');
  return ['', await device.answer()];
}

async function sendLine(device: Device, line: string): Promise<string> {
  device.send(`${line}\n`);
  return device.answer();
}

/** The client as sink (download), as OpenSSH's sink() answers: every file by its path below the top, and the source's errors. */
async function receiveAll(device: Device): Promise<{ files: Map<string, Buffer>; errors: string[]; code: number | null }> {
  const files = new Map<string, Buffer>();
  const errors: string[] = [];
  const dirs: string[] = [];
  device.send('\0');
  while (!(await device.atEnd())) {
    const line = (await device.line()).toString('utf8');
    const header = /^[CD]\d{4} (\d+) (.*)$/s.exec(line);
    if (line.startsWith('\x01') || line.startsWith('\x02')) {
      errors.push(line.slice(1));
      continue;
    }
    if (line.startsWith('D') && header !== null) dirs.push(header[2] ?? '');
    if (line === 'E') dirs.pop();
    if (line.startsWith('C') && header !== null) {
      device.send('\0');
      const data = await device.take(Number(header[1]));
      expect((await device.take(1))[0]).toBe(0);
      files.set([...dirs, header[2]].join('/'), data);
    }
    device.send('\0');
  }
  return { files, errors, code: await device.close() };
}

/**
 * A C (or D) line of exactly `length` bytes before its '\n', the size zero-padded to fill it: the
 * device's scp reads the size with strtoull, so `C0644 000…0151 ab` is size 151, name `ab`.
 */
function paddedLine(length: number, size: number, name: string, kind = 'C0644'): string {
  const digits = length - Buffer.byteLength(`${kind}  ${name}`);
  const line = `${kind} ${String(size).padStart(digits, '0')} ${name}`;
  if (digits < String(size).length || Buffer.byteLength(line) !== length) throw new Error(`no ${length}-byte line for ${name}`);
  return line;
}

describe('scp command line', () => {
  it('reads -t and -f the way scp getopt does, grouped flags and values included', () => {
    expect(parseScpCommand(['scp', '-t', '--', '/tmp/dest'])).toEqual({ op: 'upload', recursive: false, targetIsDir: false, paths: ['/tmp/dest'] });
    expect(parseScpCommand(['scp', '-r', '-d', '-p', '-t', '/tmp/x'])).toEqual({ op: 'upload', recursive: true, targetIsDir: true, paths: ['/tmp/x'] });
    expect(parseScpCommand(['/usr/bin/scp', '-f', '/etc/hostname'])).toEqual({ op: 'download', recursive: false, targetIsDir: false, paths: ['/etc/hostname'] });
    expect(parseScpCommand(['scp', '-prt', 'dir'])).toEqual({ op: 'upload', recursive: true, targetIsDir: false, paths: ['dir'] });
    expect(parseScpCommand(['scp', '-v', '-l', '100', '-oBatchMode=yes', '-f', '--', '-odd', 'b'])).toEqual({ op: 'download', recursive: false, targetIsDir: false, paths: ['-odd', 'b'] });
  });

  it('refuses a command it cannot follow, saying why', () => {
    expect(() => new ScpWatch(['scp', '/tmp/x'], new Recorder())).toThrow(/neither -t nor -f/);
    expect(() => new ScpWatch(['scp', '/tmp/x', '-t'], new Recorder())).toThrow(/neither -t nor -f/); // getopt stops at the first operand
    expect(() => new ScpWatch(['scp', '-tf', '/tmp/x'], new Recorder())).toThrow(/both -t and -f/);
    expect(() => new ScpWatch(['scp', '-x', '-t', '/tmp/x'], new Recorder())).toThrow(/unknown option -x/);
    expect(() => new ScpWatch(['scp', '-t'], new Recorder())).toThrow(/exactly one target, got 0/);
    expect(() => new ScpWatch(['scp', '-t', 'a', 'b'], new Recorder())).toThrow(/exactly one target, got 2/);
    expect(() => new ScpWatch(['scp', '-f'], new Recorder())).toThrow(/names no file/);
    expect(() => new ScpWatch(['scp', '-t', '-l'], new Recorder())).toThrow(/-l needs a value/);
  });
});

describe('upload (scp -t on the device)', () => {
  it('reports a single file as TARGET, with the size and hash of what arrived on disk', async () => {
    const target = path.join(freshDir(), 'firmware.bin');
    const data = randomBytes(1 << 20);
    const device = Device.scp(['-t', target]);
    expect(await device.answer()).toBe('');
    expect(await sendFile(device, 'local-name.bin', data)).toEqual(['', '']);
    expect(await device.close()).toBe(0);
    expect(sha256(readFileSync(target))).toBe(sha256(data));

    const { events, unreadable } = watch(['scp', '-t', target], device.transcript);
    expect(unreadable).toEqual([]);
    expect(events).toEqual([{ protocol: 'scp', op: 'upload', path: target, bytes: data.length, sha256: sha256(data), outcome: 'ok' }]);
  });

  it('reports a single file sent to a TARGET ending in / (scp file host:dir/, no -d) by its name in that directory', async () => {
    const dir = freshDir();
    const data = randomBytes(4096);
    const device = Device.scp(['-t', `${dir}/`]);
    expect(await device.answer()).toBe('');
    expect(await sendFile(device, 'report.pdf', data)).toEqual(['', '']);
    expect(await device.close()).toBe(0);
    expect(sha256(readFileSync(path.join(dir, 'report.pdf')))).toBe(sha256(data));
    const { events } = watch(['scp', '-t', `${dir}/`], device.transcript);
    expect(events).toEqual([{ protocol: 'scp', op: 'upload', path: `${dir}/report.pdf`, bytes: data.length, sha256: sha256(data), outcome: 'ok' }]);
  });

  it('reports several files into a -d target by name: spaces, UTF-8, an empty file', async () => {
    const target = freshDir();
    const files: [string, Buffer][] = [
      ['résumé final ✓.txt', Buffer.from('bonjour\n')],
      ['empty', Buffer.alloc(0)],
      ['log.tar.gz', randomBytes(300_000)],
    ];
    const device = Device.scp(['-d', '-t', target]);
    expect(await device.answer()).toBe('');
    for (const [name, data] of files) expect(await sendFile(device, name, data)).toEqual(['', '']);
    expect(await device.close()).toBe(0);

    const expected = files.map(([name, data]): FileEvent => {
      expect(readFileSync(path.join(target, name))).toEqual(data);
      return { protocol: 'scp', op: 'upload', path: `${target}/${name}`, bytes: data.length, sha256: sha256(data), outcome: 'ok' };
    });
    const argv = ['scp', '-d', '-t', target];
    expect(watch(argv, device.transcript).events).toEqual(expected);
    expect(watch(argv, device.transcript, 1).events).toEqual(expected);
    expect(watch(argv, coalesced(device.transcript, 'client')).events).toEqual(expected);
  });

  it('follows -r -p into nested directories, with times, the same however the bytes are cut', async () => {
    const target = freshDir();
    const a = randomBytes(70_000);
    const b = Buffer.from('second level\n');
    const device = Device.scp(['-r', '-d', '-p', '-t', target]);
    expect(await device.answer()).toBe('');
    expect(await sendLine(device, 'T1700000000 0 1700000000 0')).toBe('');
    expect(await sendLine(device, 'D0755 0 config')).toBe('');
    expect(await sendLine(device, 'T1700000000 0 1700000000 0')).toBe('');
    expect(await sendFile(device, 'a.cfg', a)).toEqual(['', '']);
    expect(await sendLine(device, 'D0700 0 sub dir')).toBe('');
    expect(await sendFile(device, 'b.txt', b)).toEqual(['', '']);
    expect(await sendLine(device, 'E')).toBe('');
    expect(await sendLine(device, 'E')).toBe('');
    expect(await sendFile(device, 'top.txt', b)).toEqual(['', '']);
    expect(await device.close()).toBe(0);
    expect(readFileSync(path.join(target, 'config', 'a.cfg'))).toEqual(a);
    expect(readFileSync(path.join(target, 'config', 'sub dir', 'b.txt'))).toEqual(b);

    const expected: FileEvent[] = [
      { protocol: 'scp', op: 'upload', path: `${target}/config/a.cfg`, bytes: a.length, sha256: sha256(a), outcome: 'ok' },
      { protocol: 'scp', op: 'upload', path: `${target}/config/sub dir/b.txt`, bytes: b.length, sha256: sha256(b), outcome: 'ok' },
      { protocol: 'scp', op: 'upload', path: `${target}/top.txt`, bytes: b.length, sha256: sha256(b), outcome: 'ok' },
    ];
    const argv = ['scp', '-r', '-d', '-p', '-t', target];
    expect(watch(argv, device.transcript).events).toEqual(expected);
    expect(watch(argv, device.transcript, 1).events).toEqual(expected);
    const oneChunkEach = watch(argv, coalesced(device.transcript, 'client'));
    expect(oneChunkEach.events).toEqual(expected);
    expect(oneChunkEach.unreadable).toEqual([]);
  });

  it('reports a file the device refuses at its C line as failed, with the device\'s message', async () => {
    const target = path.join(freshDir(), 'missing', 'deeper');
    const device = Device.scp(['-t', target]);
    expect(await device.answer()).toBe('');
    const answers = await sendFile(device, 'x', Buffer.from('never sent'));
    expect(answers).toEqual([`\x01scp: ${target}: No such file or directory`]);
    expect(await device.close()).toBe(1);

    const { events, unreadable } = watch(['scp', '-t', target], device.transcript);
    expect(unreadable).toEqual([]);
    expect(events).toEqual([{ protocol: 'scp', op: 'upload', path: target, bytes: 0, sha256: EMPTY_SHA256, outcome: 'failed', detail: `scp: ${target}: No such file or directory` }]);
  });

  it('reports a device that refuses to start (-d into a missing directory) as one failed attempt on TARGET', async () => {
    const target = path.join(freshDir(), 'nowhere');
    const device = Device.scp(['-d', '-t', target]);
    expect(await device.answer()).toBe(`\x01scp: ${target}: No such file or directory`);
    expect(await device.close()).toBe(1);

    expect(watch(['scp', '-d', '-t', target], device.transcript).events).toEqual([
      { protocol: 'scp', op: 'upload', path: target, outcome: 'failed', detail: `scp: ${target}: No such file or directory` },
    ]);
  });

  it.skipIf(!existsSync('/dev/full'))('reports a write error after the data as failed, with all the bytes that went', async () => {
    const data = randomBytes(10_000);
    const device = Device.scp(['-t', '/dev/full']);
    expect(await device.answer()).toBe('');
    expect(await sendFile(device, 'big.img', data)).toEqual(['', '\x01scp: /dev/full: No space left on device']);
    await device.close();

    expect(watch(['scp', '-t', '/dev/full'], device.transcript).events).toEqual([
      { protocol: 'scp', op: 'upload', path: '/dev/full', bytes: data.length, sha256: sha256(data), outcome: 'failed', detail: 'scp: /dev/full: No space left on device' },
    ]);
  });

  it('reports a refused directory and the client\'s own errors as failed attempts, and goes on', async () => {
    const target = freshDir();
    const data = Buffer.from('still arrives\n');
    const device = Device.scp(['-d', '-t', target]);
    expect(await device.answer()).toBe('');
    device.send('\x01scp: /home/vendor/secret.txt: Permission denied\n'); // the client could not read a file: nothing answers
    expect(await sendFile(device, 'ok.txt', data)).toEqual(['', '']);
    expect(await sendLine(device, 'D0755 0 logs')).toBe('\x01scp: protocol error: received directory without -r');
    expect(await device.close()).toBe(1);
    expect(readFileSync(path.join(target, 'ok.txt'))).toEqual(data);

    expect(watch(['scp', '-d', '-t', target], device.transcript).events).toEqual([
      { protocol: 'scp', op: 'upload', path: target, outcome: 'failed', detail: 'scp: /home/vendor/secret.txt: Permission denied' },
      { protocol: 'scp', op: 'upload', path: `${target}/ok.txt`, bytes: data.length, sha256: sha256(data), outcome: 'ok' },
      { protocol: 'scp', op: 'upload', path: `${target}/logs`, outcome: 'failed', detail: 'scp: protocol error: received directory without -r' },
    ]);
  });

  it('reports a file cut off by the end of the session as incomplete, with the bytes seen so far', async () => {
    const target = path.join(freshDir(), 'partial.bin');
    const data = randomBytes(100_000);
    const device = Device.scp(['-t', target]);
    expect(await device.answer()).toBe('');
    device.send(`C0644 ${data.length} partial.bin\n`);
    expect(await device.answer()).toBe('');
    device.send(data.subarray(0, 40_000));
    const { events } = watch(['scp', '-t', target], device.transcript);
    device.kill();
    await device.exit;
    expect(events).toEqual([{ protocol: 'scp', op: 'upload', path: target, bytes: 40_000, sha256: sha256(data.subarray(0, 40_000)), outcome: 'incomplete' }]);
  });

  it('reports a file whose data all went but was not acknowledged as incomplete', async () => {
    const target = path.join(freshDir(), 'unacked');
    const data = randomBytes(5000);
    const device = Device.scp(['-t', target]);
    expect(await device.answer()).toBe('');
    expect(await sendFile(device, 'unacked', data)).toEqual(['', '']);
    expect(await device.close()).toBe(0);
    const [source, answers] = coalesced(device.transcript, 'client');
    if (source === undefined || answers === undefined) throw new Error('no transcript');
    expect(answers.bytes).toEqual(Buffer.from([0, 0, 0])); // start, C line, data
    const withoutLastAck: Chunk[] = [source, { from: 'device', bytes: answers.bytes.subarray(0, 2) }];
    expect(watch(['scp', '-t', target], withoutLastAck).events).toEqual([
      { protocol: 'scp', op: 'upload', path: target, bytes: data.length, sha256: sha256(data), outcome: 'incomplete' },
    ]);
  });

  it('reports the client\'s own error in place of a file\'s trailer as failed, with its whole message and the bytes that went', async () => {
    const target = path.join(freshDir(), 'firmware.bin');
    const data = randomBytes(5000);
    const device = Device.scp(['-t', target]);
    expect(await device.answer()).toBe('');
    device.send(`C0644 ${data.length} firmware.bin\n`);
    expect(await device.answer()).toBe('');
    device.send(data);
    device.send('\x01scp: firmware.bin: Input/output error\n'); // the client's read failed: it sent the data anyway, then this
    expect(await device.answer()).toBe(''); // the device keeps what it got
    expect(await device.close()).toBe(1);
    expect(readFileSync(target)).toEqual(data);

    const { events, unreadable } = watch(['scp', '-t', target], device.transcript);
    expect(unreadable).toEqual([]);
    expect(events).toEqual([
      { protocol: 'scp', op: 'upload', path: target, bytes: data.length, sha256: sha256(data), outcome: 'failed', detail: 'scp: firmware.bin: Input/output error' },
    ]);
  });

  it('takes a device error message longer than the 2046 bytes the device reads: the device writes its own lines whole', async () => {
    const target = freshDir();
    const name = 'n'.repeat(2030); // beyond NAME_MAX: the device refuses it, naming it in full
    const device = Device.scp(['-d', '-t', target]);
    expect(await device.answer()).toBe('');
    device.send(`${paddedLine(2046, 5, name)}\n`);
    const refusal = `scp: ${target}/${name}: File name too long`;
    expect(await device.answer()).toBe(`\x01${refusal}`);
    device.send('C0644 2 ok.txt\n');
    expect(await device.answer()).toBe('');
    device.send('hi\0');
    expect(await device.answer()).toBe('');
    expect(await device.close()).toBe(1);

    const { events, unreadable } = watch(['scp', '-d', '-t', target], device.transcript);
    expect(unreadable).toEqual([]);
    expect(events).toEqual([
      { protocol: 'scp', op: 'upload', path: `${target}/${name}`, bytes: 0, sha256: EMPTY_SHA256, outcome: 'failed', detail: refusal.slice(0, 200) },
      { protocol: 'scp', op: 'upload', path: `${target}/ok.txt`, bytes: 2, sha256: sha256('hi'), outcome: 'ok' },
    ]);
  });
});

describe('download (scp -f on the device)', () => {
  it('reports a single file as the -f path, hash equal to the file on disk', async () => {
    const file = path.join(freshDir(), 'hostname');
    writeFileSync(file, randomBytes(200_000));
    const device = Device.scp(['-f', file]);
    const { files, errors, code } = await receiveAll(device);
    expect([code, errors, [...files.keys()]]).toEqual([0, [], ['hostname']]);

    const expected = [{ protocol: 'scp', op: 'download', path: file, bytes: 200_000, sha256: sha256(readFileSync(file)), outcome: 'ok' }];
    expect(watch(['/usr/bin/scp', '-f', file], device.transcript).events).toEqual(expected);
    expect(watch(['/usr/bin/scp', '-f', file], device.transcript, 1).events).toEqual(expected);
  });

  it('follows -r -p through a tree, and reports a file the device cannot read as a failed attempt in its directory', async () => {
    const base = freshDir();
    const tree = path.join(base, 'tree');
    mkdirSync(path.join(tree, 'sub', 'deeper'), { recursive: true });
    const contents: Record<string, Buffer> = {
      'a.log': randomBytes(90_000),
      'empty': Buffer.alloc(0),
      'sub/ünïcødé name.txt': Buffer.from('x y z\n'),
      'sub/deeper/b.bin': randomBytes(3000),
    };
    for (const [rel, data] of Object.entries(contents)) writeFileSync(path.join(tree, rel), data);
    symlinkSync(path.join(base, 'gone'), path.join(tree, 'sub', 'dangling'));

    const device = Device.scp(['-r', '-p', '-f', tree]);
    const { files, errors, code } = await receiveAll(device);
    expect(code).toBe(1);
    expect(errors).toEqual([`scp: ${tree}/sub/dangling: No such file or directory`]);
    expect([...files.keys()].sort()).toEqual(Object.keys(contents).map((rel) => `tree/${rel}`).sort());

    const expected: FileEvent[] = [
      ...Object.entries(contents).map(([rel, data]): FileEvent => ({ protocol: 'scp', op: 'download', path: `${tree}/${rel}`, bytes: data.length, sha256: sha256(data), outcome: 'ok' })),
      { protocol: 'scp', op: 'download', path: `${tree}/sub`, outcome: 'failed', detail: `scp: ${tree}/sub/dangling: No such file or directory` },
    ];
    const argv = ['scp', '-r', '-p', '-f', `${tree}/`];
    expect(byPath(watch(argv, device.transcript).events)).toEqual(byPath(expected));
    expect(watch(argv, device.transcript, 1).events).toEqual(watch(argv, device.transcript).events);
  });

  it('reports a path the device cannot send as a failed attempt on that path', async () => {
    const missing = path.join(freshDir(), 'no-such-file');
    const device = Device.scp(['-f', missing]);
    const { files, errors, code } = await receiveAll(device);
    expect([code, errors, files.size]).toEqual([1, [`scp: ${missing}: No such file or directory`], 0]);
    expect(watch(['scp', '-f', missing], device.transcript).events).toEqual([
      { protocol: 'scp', op: 'download', path: missing, outcome: 'failed', detail: `scp: ${missing}: No such file or directory` },
    ]);
  });

  it('matches each file of several -f paths to the path it came from', async () => {
    const first = path.join(freshDir(), 'alpha.cfg');
    const second = path.join(freshDir(), 'beta.cfg');
    writeFileSync(first, 'a=1\n');
    writeFileSync(second, 'b=22\n');
    const device = Device.scp(['-f', first, second]);
    const { files, code } = await receiveAll(device);
    expect([code, [...files.keys()]]).toEqual([0, ['alpha.cfg', 'beta.cfg']]);

    expect(watch(['scp', '-f', first, second], device.transcript).events).toEqual([
      { protocol: 'scp', op: 'download', path: first, bytes: 4, sha256: sha256('a=1\n'), outcome: 'ok' },
      { protocol: 'scp', op: 'download', path: second, bytes: 5, sha256: sha256('b=22\n'), outcome: 'ok' },
    ]);
  });

  it('names each file of a pattern the device\'s shell expanded by its own path', async () => {
    const dir = freshDir();
    writeFileSync(path.join(dir, 'one.log'), 'first\n');
    writeFileSync(path.join(dir, 'two.log'), 'second\n');
    writeFileSync(path.join(dir, 'other.txt'), 'not asked for\n');
    const device = Device.shell(`exec scp -f ${dir}/*.log`);
    const { files, code } = await receiveAll(device);
    expect([code, [...files.keys()].sort()]).toEqual([0, ['one.log', 'two.log']]);

    expect(byPath(watch(['scp', '-f', `${dir}/*.log`], device.transcript).events)).toEqual([
      { protocol: 'scp', op: 'download', path: `${dir}/one.log`, bytes: 6, sha256: sha256('first\n'), outcome: 'ok' },
      { protocol: 'scp', op: 'download', path: `${dir}/two.log`, bytes: 7, sha256: sha256('second\n'), outcome: 'ok' },
    ]);
  });

  it('reports a file the client refuses after its data as failed, with the bytes and hash of what left the device', async () => {
    const file = path.join(freshDir(), 'config.tar');
    const data = randomBytes(50_000);
    writeFileSync(file, data);
    const device = Device.scp(['-f', file]);
    device.send('\0');
    expect((await device.line()).toString()).toMatch(/^C0\d{3} 50000 config\.tar$/);
    device.send('\0');
    expect(await device.take(data.length)).toEqual(data);
    expect(await device.take(1)).toEqual(Buffer.from([0]));
    device.send('\x01scp: config.tar: No space left on device\n');
    expect(await device.close()).toBe(1);

    expect(watch(['scp', '-f', file], device.transcript).events).toEqual([
      { protocol: 'scp', op: 'download', path: file, bytes: data.length, sha256: sha256(data), outcome: 'failed', detail: 'scp: config.tar: No space left on device' },
    ]);
  });

  it('pairs answers the client sends ahead in order, as the device reads them: an early refusal is the next file\'s, an extra one answers nothing', async () => {
    const dir = freshDir();
    const [one, two, three] = ['one', 'two', 'three'].map((name) => path.join(dir, name));
    if (one === undefined || two === undefined || three === undefined) throw new Error('paths');
    writeFileSync(one, 'first\n');
    writeFileSync(two, 'second\n');
    writeFileSync(three, 'third\n');
    const device = Device.scp(['-f', one, two, three]);
    // start, one's C line (refused), two's C line and trailer, three's C line and trailer, and one more.
    device.send(Buffer.concat([Buffer.from([0]), Buffer.from('\x01scp: one: not wanted\n'), Buffer.from([0, 0, 0, 0, 0])]));
    expect(await device.close()).toBe(1);
    const sent = Buffer.concat(device.transcript.filter((c) => c.from === 'device').map((c) => c.bytes)).toString('latin1');
    expect(sent).toMatch(/^C0\d{3} 6 one\nC0\d{3} 7 two\nsecond\n\0C0\d{3} 6 three\nthird\n\0$/);

    const expected: FileEvent[] = [
      { protocol: 'scp', op: 'download', path: one, bytes: 0, sha256: EMPTY_SHA256, outcome: 'failed', detail: 'scp: one: not wanted' },
      { protocol: 'scp', op: 'download', path: two, bytes: 7, sha256: sha256('second\n'), outcome: 'ok' },
      { protocol: 'scp', op: 'download', path: three, bytes: 6, sha256: sha256('third\n'), outcome: 'ok' },
    ];
    const argv = ['scp', '-f', one, two, three];
    expectWatchedEitherWay(argv, device.transcript, { unreadable: [], events: expected });
  });

  it('takes an error line from the device longer than the 2046 bytes a client reads: the device writes its own lines whole', async () => {
    const missing = path.join(freshDir(), 'x'.repeat(3000));
    const device = Device.scp(['-f', missing]);
    const { errors, code } = await receiveAll(device);
    expect([code, errors]).toEqual([1, [`scp: ${missing}: File name too long`]]);
    const { events, unreadable } = watch(['scp', '-f', missing], device.transcript);
    expect(unreadable).toEqual([]);
    expect(events).toEqual([{ protocol: 'scp', op: 'download', path: missing, outcome: 'failed', detail: `scp: ${missing}: File name too long`.slice(0, 200) }]);
  });
});

describe('a stream the watcher cannot follow', () => {
  const malformed: [string, Buffer][] = [
    ['an unknown record type', Buffer.from('X0644 1 a\n')],
    ['a mode of three digits', Buffer.from('C644 1 a\n')],
    ['a mode that is not octal', Buffer.from('C0648 1 a\n')],
    ['a size that is not decimal', Buffer.from('C0644 1x a\n')],
    ['an empty name', Buffer.from('C0644 1 \n')],
    ['a name with a slash', Buffer.from('C0644 1 ../etc/passwd\n')],
    ['the name ..', Buffer.from('D0755 0 ..\n')],
    ['the name .', Buffer.from('C0644 1 .\n')],
    ['a malformed T line', Buffer.from('T12 0 x 0\n')],
    ['an empty line', Buffer.from('\n')],
    ['E outside a directory', Buffer.from('E\n')],
    ['a line longer than the device\'s scp reads', Buffer.from(`C0644 1 ${'n'.repeat(5000)}\n`)],
    ['a size beyond 2^53', Buffer.from(`C0644 ${Number.MAX_SAFE_INTEGER + 1} big\n`)],
  ];

  it.each(malformed)('%s: unreadable once, then nothing more', (_what, line) => {
    const recorder = new Recorder();
    const watcher = new ScpWatch(['scp', '-r', '-d', '-t', '/tmp/dest'], recorder);
    watcher.fromDevice(Buffer.from([0]));
    watcher.fromClient(Buffer.concat([line, Buffer.from('C0644 2 ok\nhi\0')]));
    watcher.fromDevice(Buffer.from([0, 0]));
    watcher.fromClient(Buffer.from('also bad\n'));
    watcher.end();
    expect(recorder.unreadable).toHaveLength(1);
    expect(recorder.events).toEqual([]);
  });

  it('agrees with the device\'s own scp, which refuses the same lines', async () => {
    for (const line of ['C644 1 a', 'C0644 1x a', 'C0644 1 ', 'C0644 1 a/b', 'C0644 1 ..', 'T12 0 x 0']) {
      const device = Device.scp(['-d', '-t', freshDir()]);
      expect(await device.answer()).toBe('');
      const answer = await sendLine(device, line);
      expect(answer.charCodeAt(0)).toBe(1);
      expect(answer.slice(1)).toMatch(/^scp: (protocol error|error: unexpected filename)/);
      expect(await device.close()).toBe(1);
    }
  });

  it('takes a size up to 2^53-1 without holding the data, reporting what passed', () => {
    const recorder = new Recorder();
    const watcher = new ScpWatch(['scp', '-t', '/tmp/huge'], recorder);
    watcher.fromDevice(Buffer.from([0]));
    watcher.fromClient(Buffer.from(`C0644 ${Number.MAX_SAFE_INTEGER} huge\n`));
    watcher.fromDevice(Buffer.from([0]));
    const block = Buffer.alloc(1 << 20, 7);
    const hash = createHash('sha256');
    for (let i = 0; i < 64; i++) {
      watcher.fromClient(block);
      hash.update(block);
    }
    watcher.end();
    expect(recorder.events).toEqual([{ protocol: 'scp', op: 'upload', path: '/tmp/huge', bytes: 64 << 20, sha256: hash.digest('hex'), outcome: 'incomplete' }]);
  });

  it('is unreadable when the source goes on after a refusal it had not waited for', () => {
    const recorder = new Recorder();
    const watcher = new ScpWatch(['scp', '-t', '/tmp/x'], recorder);
    watcher.fromDevice(Buffer.from([0]));
    watcher.fromClient(Buffer.from('C0644 3 a\nabc\0'));
    watcher.fromDevice(Buffer.from('\x01scp: /tmp/x: Permission denied\n'));
    watcher.end();
    expect(recorder.unreadable).toEqual(['scp source went on before the sink refused what it sent']);
    expect(recorder.events).toEqual([{ protocol: 'scp', op: 'upload', path: '/tmp/x', bytes: 3, sha256: sha256('abc'), outcome: 'incomplete' }]);
  });

  it('is unreadable on an answer that is not \\0, \\1 or \\2', () => {
    const recorder = new Recorder();
    const watcher = new ScpWatch(['scp', '-f', '/etc/hostname'], recorder);
    watcher.fromClient(Buffer.from('ok\n'));
    expect(recorder.unreadable).toEqual(['scp answer byte 0x6f, not \\0, \\1 or \\2']);
  });

  it('never throws, even when the sink does', () => {
    const watcher = new ScpWatch(['scp', '-t', '/tmp/x'], THROWING_SINK);
    expect(() => {
      watcher.fromDevice(Buffer.from([0]));
      watcher.fromClient(Buffer.from('C0644 1 a\nz\0'));
      watcher.fromDevice(Buffer.from([0, 0]));
      watcher.fromClient(Buffer.from('garbage'));
      watcher.end();
    }).not.toThrow();
  });
});


// C1: what the device's own scp reads. Its sink() reads a control line into a 2048-byte buffer,
// at most 2047 bytes with the '\n', and its response() reads an error message the same way: a
// longer line is cut there and its rest read as what follows. It works on C strings, so a NUL
// ends a name. The real `scp -t` / `scp -f` reads each attack below; the test of an answer out
// of step feeds the watcher a real session with one of its lines misread on purpose.
describe('where the watcher and the device\'s scp could part ways (C1)', () => {
  it('is unreadable on a C line the device cuts at 2047 bytes, where a second file rides in the name', async () => {
    const target = freshDir();
    const hidden = Buffer.from('#!/bin/sh\necho pwned\n');
    const hiddenRecord = Buffer.from(`C0755 ${hidden.length} hidden.sh\n`);
    const tail = 't'.repeat(hiddenRecord.length + hidden.length); // to the watcher more of the name; to the device, data
    const filler = randomBytes(100);
    const size = tail.length + 1 + filler.length;
    const device = Device.scp(['-d', '-t', target]);
    expect(await device.answer()).toBe('');
    device.send(`${paddedLine(2047, size, 'ab')}${tail}\n`);
    expect(await device.answer()).toBe('');
    // To the watcher: `size` bytes of ab's data and its trailer. To the device: the rest of ab, its trailer, then hidden.sh.
    device.send(Buffer.concat([filler, Buffer.from([0]), hiddenRecord, hidden, Buffer.from([0])]));
    expect([await device.answer(), await device.answer(), await device.answer()]).toEqual(['', '', '']);
    expect(await device.close()).toBe(0);
    expect(readdirSync(target).sort()).toEqual(['ab', 'hidden.sh']);
    expect(readFileSync(path.join(target, 'ab'))).toEqual(Buffer.concat([Buffer.from(`${tail}\n`), filler]));
    expect(readFileSync(path.join(target, 'hidden.sh'))).toEqual(hidden);
    expect(statSync(path.join(target, 'hidden.sh')).mode & 0o100).toBe(0o100);

    expectWatchedEitherWay(['scp', '-d', '-t', target], device.transcript, { unreadable: ['scp control line longer than the 2046 bytes the device\'s scp reads as one line'], events: [] });
  });

  it('follows a line of 2046 bytes, the longest the device reads whole, and is unreadable at 2047, whose newline the device takes for data', async () => {
    const target = freshDir();
    const name = `${'n'.repeat(250)}.bin`;
    const data = randomBytes(3000);
    const device = Device.scp(['-d', '-t', target]);
    expect(await device.answer()).toBe('');
    device.send(`${paddedLine(2046, data.length, name)}\n`);
    expect(await device.answer()).toBe('');
    device.send(data);
    device.send('\0');
    expect(await device.answer()).toBe('');
    expect(await device.close()).toBe(0);
    expect(readFileSync(path.join(target, name))).toEqual(data);
    expectWatchedEitherWay(['scp', '-d', '-t', target], device.transcript, { unreadable: [], events: [{ protocol: 'scp', op: 'upload', path: `${target}/${name}`, bytes: data.length, sha256: sha256(data), outcome: 'ok' }] });

    const cutTarget = freshDir();
    const sent = Buffer.from('hello\0');
    const cut = Device.scp(['-d', '-t', cutTarget]);
    expect(await cut.answer()).toBe('');
    cut.send(`${paddedLine(2047, sent.length, 'cut.txt')}\n`);
    expect(await cut.answer()).toBe('');
    cut.send(sent);
    cut.send('\0');
    expect(await cut.answer()).toBe(''); // to the device, the data's last byte was the trailer
    expect(await cut.close()).toBe(1); // and the real trailer began a line the session ended in
    expect(readFileSync(path.join(cutTarget, 'cut.txt'))).toEqual(Buffer.from('\nhello'));
    expectWatchedEitherWay(['scp', '-d', '-t', cutTarget], cut.transcript, { unreadable: ['scp control line longer than the 2046 bytes the device\'s scp reads as one line'], events: [] });
  });

  it('is unreadable on a C or D line with a NUL byte, where the device\'s name ends', async () => {
    const fileTarget = freshDir();
    const file = Device.scp(['-d', '-t', fileTarget]);
    expect(await file.answer()).toBe('');
    expect(await sendFile(file, 'ab\0x', Buffer.from('hello'))).toEqual(['', '']);
    expect(await file.close()).toBe(0);
    expect(readdirSync(fileTarget)).toEqual(['ab']);
    expect(readFileSync(path.join(fileTarget, 'ab'))).toEqual(Buffer.from('hello'));

    const dirTarget = freshDir();
    const dir = Device.scp(['-r', '-d', '-t', dirTarget]);
    expect(await dir.answer()).toBe('');
    expect(await sendLine(dir, 'D0755 0 sub\0x')).toBe('');
    expect(await sendFile(dir, 'f.txt', Buffer.from('inside\n'))).toEqual(['', '']);
    expect(await sendLine(dir, 'E')).toBe('');
    expect(await dir.close()).toBe(0);
    expect(readFileSync(path.join(dirTarget, 'sub', 'f.txt'))).toEqual(Buffer.from('inside\n'));

    for (const [argv, device] of [[['scp', '-d', '-t', fileTarget], file], [['scp', '-r', '-d', '-t', dirTarget], dir]] as const) {
      const { events, unreadable } = watch([...argv], device.transcript);
      expect(unreadable).toEqual(['scp line with a NUL byte, where the device\'s scp would end it']);
      expect(events).toEqual([]);
    }
  });

  it('is unreadable when the device answers while nothing awaits an answer: the two no longer agree where records start', async () => {
    const target = freshDir();
    const a = Buffer.from('first file\n');
    const b = Buffer.from('#!/bin/sh\necho second\n');
    const bRecord = `C0755 ${b.length} b.sh\n`;
    const device = Device.scp(['-d', '-t', target]);
    expect(await device.answer()).toBe('');
    expect(await sendFile(device, 'a.txt', a)).toEqual(['', '']);
    expect(await sendFile(device, 'b.sh', b, '0755')).toEqual(['', '']);
    expect(await device.close()).toBe(0);
    // The same session read as a watcher that took a's size wrong (as it did the 2047-byte line):
    // b's record and data look like a's data, and the device's answers about a and b come early.
    const misreadSize = a.length + 1 + bRecord.length + b.length;
    const misread = device.transcript.map((c): Chunk => (c.from === 'client' && c.bytes.toString('latin1') === `C0644 ${a.length} a.txt\n` ? { from: 'client', bytes: Buffer.from(`C0644 ${misreadSize} a.txt\n`) } : c));
    expect(misread).not.toEqual(device.transcript);
    expectWatchedEitherWay(['scp', '-d', '-t', target], misread, { unreadable: ['scp device answered while nothing awaited an answer: it read the stream differently'], events: [
        { protocol: 'scp', op: 'upload', path: `${target}/a.txt`, bytes: a.length + 1, sha256: sha256(Buffer.concat([a, Buffer.from([0])])), outcome: 'incomplete' },
      ] });
  });

  it('follows a client error answer of 2046 bytes, the longest the device reads whole, and is unreadable at 2047, which the device reads as two answers', async () => {
    const dir = freshDir();
    const one = path.join(dir, 'one');
    const two = path.join(dir, 'two');
    writeFileSync(one, 'first\n');
    writeFileSync(two, 'second\n');
    const session = async (length: number): Promise<Device> => {
      const device = Device.scp(['-f', one, two]);
      device.send('\0');
      expect((await device.line()).toString()).toMatch(/^C0\d{3} 6 one$/);
      device.send(`\x01${'m'.repeat(length)}\n`);
      expect((await device.line()).toString()).toMatch(/^C0\d{3} 7 two$/);
      device.send('\0');
      return device;
    };

    const whole = await session(2046);
    expect((await whole.take(8)).toString('latin1')).toBe('second\n\0');
    whole.send('\0');
    expect(await whole.close()).toBe(1);
    expect(watch(['scp', '-f', one, two], whole.transcript).events).toEqual([
      { protocol: 'scp', op: 'download', path: one, bytes: 0, sha256: EMPTY_SHA256, outcome: 'failed', detail: 'm'.repeat(200) },
      { protocol: 'scp', op: 'download', path: two, bytes: 7, sha256: sha256('second\n'), outcome: 'ok' },
    ]);

    // The device read 2047 bytes of it, then its '\n' as the answer to two's C line: an error,
    // whose message the client's \0 only continues. two never goes; the watcher would say it went ahead.
    const split = await session(2047);
    expect(await split.close()).toBe(1);
    expect(Buffer.concat(split.transcript.filter((c) => c.from === 'device').map((c) => c.bytes)).toString('latin1')).toMatch(/^C0\d{3} 6 one\nC0\d{3} 7 two\n$/);
    expectWatchedEitherWay(['scp', '-f', one, two], split.transcript, { unreadable: ['scp error message longer than the 2046 bytes the device\'s scp reads as one line'], events: [{ protocol: 'scp', op: 'download', path: one, bytes: 0, sha256: EMPTY_SHA256, outcome: 'incomplete' }] });
  });
});
