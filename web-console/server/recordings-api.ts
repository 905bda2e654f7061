import { existsSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { asciicastLines } from '../../recordings/asciicast-export.js';
import { keyframeToRfb } from '../../recordings/rfb-keyframe.js';
import { RfbRecordingReader } from '../../recordings/rfb-reader.js';
import { Framebuffer } from '../../gateway/desktop/framebuffer.js';
import { InputError } from '../../gateway/identity/users.js';
import type { Runtime } from '../../gateway/runtime.js';
import type { SessionRecord } from '../../gateway/store/store.js';
import { isoTime, route } from './api-route.js';

const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());

const recordingSchema = z.object({
  id: z.string(), session: z.string(), user: z.string(), device: z.string(), protocol: z.string(), kind: z.string(), command: z.string().nullable(),
  startedAt: z.string(), endedAt: z.string().nullable(), endReason: z.string().nullable(), size: z.number().nullable(), sealed: z.boolean(), format: z.string(),
}).meta({ id: 'Recording' });

/** Recordings for security (R-A.3e): find them by vendor, device, date and protocol, and replay them in the console. */
export function registerRecordings(app: FastifyInstance, rt: Runtime): void {
  const { store } = rt;

  route(app, {
    method: 'GET', url: '/api/recordings', access: 'recording.read', tags: ['recordings'],
    summary: 'Recordings, newest first, by vendor, device, date and protocol',
    query: z.object({
      vendor: z.string().max(64).optional(), device: z.string().max(64).optional(), protocol: z.enum(['ssh', 'vnc', 'rdp']).optional(),
      from: isoTime.optional(), to: isoTime.optional(), limit: z.coerce.number().int().min(1).max(1000).default(200),
    }),
    response: z.object({ recordings: z.array(recordingSchema) }),
  }, async ({ query }) => {
    const sessions: SessionRecord[] = await store.listSessions({
      limit: query.limit, ...(query.vendor ? { user: query.vendor } : {}), ...(query.device ? { device: query.device } : {}),
      ...(query.from !== undefined ? { from: query.from } : {}), ...(query.to !== undefined ? { to: query.to } : {}),
    });
    const rows = await Promise.all(sessions.filter((s) => !query.protocol || s.protocol === query.protocol).map(async (s) => {
      const rec = await store.getRecording(s.recordingId);
      return rec ? {
        id: rec.id, session: s.id, user: s.user, device: s.device, protocol: s.protocol, kind: s.kind, command: s.command, startedAt: iso(s.startedAt) as string,
        endedAt: iso(s.endedAt), endReason: s.endReason, size: rec.size, sealed: rec.sealedAt !== null, format: rec.format,
      } : null;
    }));
    return { recordings: rows.filter((r): r is NonNullable<typeof r> => r !== null) };
  });

  const desktopFile = async (id: string): Promise<string> => {
    const rec = await store.getRecording(id);
    if (!rec || rec.format !== 'pcrfb') throw new InputError('NOT_FOUND', `no desktop recording ${id}`);
    const file = path.join(rt.config.paths.recordings, rec.path);
    if (!existsSync(file)) throw new InputError('NOT_FOUND', `recording ${id} is indexed but its file is missing`);
    return file;
  };

  route(app, {
    method: 'GET', url: '/api/recordings/:id/desktop', access: 'recording.read', tags: ['recordings'],
    summary: 'A desktop recording\'s outline for the player: duration, screen size, keyframe times, idle stretches (to skip)',
    params: z.object({ id: z.string().min(1).max(64) }),
    response: z.object({
      durationMs: z.number(), width: z.number(), height: z.number(), protocol: z.string(), device: z.string(), user: z.string(),
      keyframesMs: z.array(z.number()), idle: z.array(z.object({ startMs: z.number(), endMs: z.number() })),
    }),
  }, async ({ params, principal }) => {
    const reader = await RfbRecordingReader.open(await desktopFile(params.id));
    try {
      await rt.audit.record('recording.viewed', { actor: principal.user.name, outcome: 'info', data: { recording: params.id, format: 'pcrfb' } });
      return {
        durationMs: reader.durationMs, width: reader.header.width, height: reader.header.height, protocol: reader.header.protocol,
        device: reader.header.device, user: reader.header.user, keyframesMs: reader.keyframes.map((k) => k.micros / 1000),
        idle: await reader.idleStretches(2000),
      };
    } finally {
      await reader.close();
    }
  });

  route(app, {
    method: 'GET', url: '/api/recordings/:id/desktop/frames', access: 'recording.read', tags: ['recordings'], produces: 'application/octet-stream',
    summary: 'A desktop recording from a time on: first the screen at that time (RFB a fresh noVNC shows), then every later update; each frame is u32 ms, u32 length, RFB bytes',
    params: z.object({ id: z.string().min(1).max(64) }), query: z.object({ from: z.coerce.number().min(0).default(0) }), response: z.unknown(),
  }, async ({ params, query, principal }) => {
    const reader = await RfbRecordingReader.open(await desktopFile(params.id));
    // Every fetch of the pictures is a viewing (a seek is a new one), whoever asks and however.
    await rt.audit.record('recording.viewed', { actor: principal.user.name, outcome: 'info', data: { recording: params.id, format: 'pcrfb', fromMs: query.from } });
    const frame = (ms: number, data: Buffer): Buffer => {
      const head = Buffer.alloc(8);
      head.writeUInt32BE(Math.max(0, Math.round(ms)), 0);
      head.writeUInt32BE(data.length, 4);
      return Buffer.concat([head, data]);
    };
    async function* stream(): AsyncGenerator<Buffer> {
      try {
        // The screen at the exact time, composed here: a keyframe and the updates after it, as one picture.
        const at = await reader.seek(query.from);
        const fb = Framebuffer.fromKeyframe(at.keyframe);
        for (const m of at.messages) fb.apply(m);
        yield frame(at.micros / 1000, keyframeToRfb(fb.keyframe()));
        for await (const f of reader.framesAfter(query.from)) {
          if (f.type === 'output' && f.micros > at.micros) yield frame(f.micros / 1000, f.data);
        }
      } finally {
        await reader.close();
      }
    }
    return Readable.from(stream());
  });

  route(app, {
    method: 'GET', url: '/api/recordings/:id/asciicast', access: 'recording.read', tags: ['recordings'], produces: 'application/x-asciicast',
    summary: 'An SSH recording as asciicast v2 (what asciinema-player plays), input events included; each viewing is audited',
    params: z.object({ id: z.string().min(1).max(64) }), response: z.unknown(),
  }, async ({ params, principal }) => {
    const rec = await store.getRecording(params.id);
    if (!rec || rec.format !== 'pcrec') throw new InputError('NOT_FOUND', `no terminal recording ${params.id}`);
    const file = path.join(rt.config.paths.recordings, rec.path);
    if (!existsSync(file)) throw new InputError('NOT_FOUND', `recording ${params.id} is indexed but its file is missing`);
    await rt.audit.record('recording.viewed', { actor: principal.user.name, outcome: 'info', data: { recording: rec.id, session: rec.sessionId, sealed: rec.sealedAt !== null } });
    return Readable.from(asciicastLines(file, { includeInput: true }));
  });
}
