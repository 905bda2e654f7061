import { existsSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { asciicastLines } from '../../recordings/asciicast-export.js';
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

  route(app, {
    method: 'GET', url: '/api/recordings/:id/asciicast', access: 'recording.read', tags: ['recordings'], produces: 'application/x-asciicast',
    summary: 'An SSH recording as asciicast v2 (what asciinema-player plays), input events included; each viewing is audited',
    params: z.object({ id: z.string().min(1).max(64) }), response: z.unknown(),
  }, async ({ params, principal }) => {
    const rec = await store.getRecording(params.id);
    if (!rec) throw new InputError('NOT_FOUND', `no recording ${params.id}`);
    const file = path.join(rt.config.paths.recordings, rec.path);
    if (!existsSync(file)) throw new InputError('NOT_FOUND', `recording ${params.id} is indexed but its file is missing`);
    await rt.audit.record('recording.viewed', { actor: principal.user.name, outcome: 'info', data: { recording: rec.id, session: rec.sessionId, sealed: rec.sealedAt !== null } });
    return Readable.from(asciicastLines(file, { includeInput: true }));
  });
}
