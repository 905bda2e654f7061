import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isHeader, readRecording, type RecordedFrame } from '../../recordings/recording-reader.js';
import { RecordingWriter } from '../../recordings/recording-writer.js';
import type { RecordingHeader } from '../../recordings/pcrec-format.js';
import { sha256File } from '../../gateway/verify.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-rec-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const header = (id: string): RecordingHeader => ({
  format: 'pcrec', version: 1, recordingId: id, sessionId: id, user: 'alice', device: 'ct-01', protocol: 'ssh', kind: 'shell',
  command: null, startedAt: Date.now(), term: 'xterm', cols: 80, rows: 24,
});

async function frames(file: string): Promise<RecordedFrame[]> {
  const out: RecordedFrame[] = [];
  for await (const x of readRecording(file)) if (!isHeader(x)) out.push(x);
  return out;
}

// R-A.3e: every byte both ways, with times; S-3.5: sealed with SHA-256.
describe('the .pcrec recording format', () => {
  it('keeps every byte both ways, binary included, in order, with non-decreasing times', async () => {
    const file = path.join(dir, 'a.pcrec');
    const w = await RecordingWriter.create(file, header('a'), { flushIntervalMs: 1000, compression: 'deflate', blockBytes: 4096 });
    const chunks = [Buffer.from('ls -l\r'), Buffer.alloc(5000, 0), randomBytes(70_000), Buffer.from('héllo ✓\n')];
    w.input(chunks[0] as Buffer);
    w.output(chunks[1] as Buffer);
    w.resize(120, 40);
    w.output(chunks[2] as Buffer);
    w.output(chunks[3] as Buffer);
    w.event({ end: 'client_closed' });
    const sealed = await w.close();
    expect(sealed.size).toBe(statSync(file).size);
    expect(sealed.sha256).toBe(await sha256File(file));

    const got = await frames(file);
    expect(got.map((f) => f.type)).toEqual(['input', 'output', 'resize', 'output', 'output', 'event']);
    const outBytes = Buffer.concat(got.filter((f) => f.type === 'output').map((f) => (f as { data: Buffer }).data));
    expect(outBytes.equals(Buffer.concat([chunks[1] as Buffer, chunks[2] as Buffer, chunks[3] as Buffer]))).toBe(true);
    expect(got[2]).toMatchObject({ type: 'resize', cols: 120, rows: 40 });
    const times = got.map((f) => f.micros);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
  });

  it('stores NUL bytes as bytes: 16 MiB of zeros takes far less than 16 MiB, random data at most 1.2× (issue target)', async () => {
    const zeros = path.join(dir, 'zeros.pcrec');
    const w = await RecordingWriter.create(zeros, header('z'), { flushIntervalMs: 1000, compression: 'deflate' });
    for (let i = 0; i < 512; i++) w.output(Buffer.alloc(32 * 1024));
    await w.close();
    expect(statSync(zeros).size).toBeLessThan(1024 * 1024);

    const rnd = path.join(dir, 'random.pcrec');
    const r = await RecordingWriter.create(rnd, header('r'), { flushIntervalMs: 1000, compression: 'deflate' });
    const data = randomBytes(8 * 1024 * 1024);
    for (let off = 0; off < data.length; off += 32 * 1024) r.output(data.subarray(off, off + 32 * 1024));
    await r.close();
    expect(statSync(rnd).size).toBeLessThan(data.length * 1.2);
    const back = Buffer.concat((await frames(rnd)).map((f) => (f as { data: Buffer }).data));
    expect(back.equals(data)).toBe(true);
  });

  it('signals backpressure instead of growing without bound, and drains', async () => {
    const file = path.join(dir, 'bp.pcrec');
    const w = await RecordingWriter.create(file, header('bp'), { flushIntervalMs: 1000, compression: 'none', highWaterBytes: 256 * 1024 });
    let refused = false;
    for (let i = 0; i < 64 && !refused; i++) refused = !w.output(randomBytes(32 * 1024));
    expect(refused).toBe(true);
    await new Promise<void>((resolve) => w.once('drain', resolve));
    await w.close();
  });

  it('reaches the disk within the flush interval while the session is still open (a crash loses at most that)', async () => {
    const file = path.join(dir, 'flush.pcrec');
    const w = await RecordingWriter.create(file, header('f'), { flushIntervalMs: 200, compression: 'deflate' });
    const before = statSync(file).size;
    w.output(Buffer.from('visible soon'));
    await new Promise((r) => setTimeout(r, 600));
    expect(statSync(file).size).toBeGreaterThan(before);
    expect(readFileSync(file).length).toBe(statSync(file).size);
    await w.close();
  });

  it('refuses to overwrite an existing recording', async () => {
    const file = path.join(dir, 'once.pcrec');
    await (await RecordingWriter.create(file, header('o'), { flushIntervalMs: 1000, compression: 'none' })).close();
    await expect(RecordingWriter.create(file, header('o'), { flushIntervalMs: 1000, compression: 'none' })).rejects.toThrow(/EEXIST/);
  });
});
