import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { InputError } from '../../gateway/identity/users.js';
import type { Runtime } from '../../gateway/runtime.js';
import type { CommandRecord } from '../../gateway/store/store.js';
import { isoTime, route } from './api-route.js';

const commandSchema = z.object({
  id: z.string(), session: z.string(), user: z.string(), device: z.string(), at: z.string(), line: z.string(), mode: z.string(), decision: z.string(),
  rule: z.string().nullable(), reason: z.string().nullable(), reviewer: z.string().nullable(), exitStatus: z.number().nullable(),
  // Only exec requests (any mode) and restricted-mode lines have these: an interactive shell reports none per line.
  exitSignal: z.string().nullable(),
}).meta({ id: 'Command' });

const view = (c: CommandRecord): z.input<typeof commandSchema> => ({ ...c, at: new Date(c.at).toISOString() });

// A hit of the search across sessions: with the session's recording, to open the replay at its moment.
const commandHitSchema = commandSchema.extend({ recording: z.string().nullable() }).meta({ id: 'CommandHit' });

/** The command log (R-6.3c, R-6.4c): search it, and answer commands held for review. */
export function registerCommands(app: FastifyInstance, rt: Runtime): void {
  const { store } = rt;

  route(app, {
    method: 'GET', url: '/api/commands', access: 'command.read', tags: ['commands'],
    summary: 'Command lines of all sessions, newest first: which sessions ran `systemctl restart`? (text is a literal substring; program a program the line runs; from/to inclusive)',
    query: z.object({
      text: z.string().min(1).max(200).optional(), program: z.string().min(1).max(128).optional(), session: z.string().max(64).optional(),
      user: z.string().max(64).optional(), device: z.string().max(64).optional(), decision: z.enum(['allow', 'deny', 'review', 'logged']).optional(),
      from: isoTime.optional(), to: isoTime.optional(), limit: z.coerce.number().int().min(1).max(5000).default(500),
    }),
    response: z.object({ commands: z.array(commandHitSchema) }),
  }, async ({ query }) => {
    const found = await store.listCommands({
      limit: query.limit, ...(query.text ? { text: query.text } : {}), ...(query.program ? { program: query.program } : {}),
      ...(query.session ? { session: query.session } : {}), ...(query.user ? { user: query.user } : {}), ...(query.device ? { device: query.device } : {}),
      ...(query.decision ? { decision: query.decision } : {}), ...(query.from !== undefined ? { since: query.from } : {}), ...(query.to !== undefined ? { until: query.to } : {}),
    });
    // Each session looked up once, however many of its lines matched.
    const recordings = new Map<string, Promise<string | null>>();
    const recordingOf = (session: string): Promise<string | null> => {
      let p = recordings.get(session);
      if (!p) {
        p = store.getSession(session).then((s) => s?.recordingId ?? null);
        recordings.set(session, p);
      }
      return p;
    };
    return { commands: await Promise.all(found.map(async (c) => ({ ...view(c), recording: await recordingOf(c.session) }))) };
  });

  route(app, {
    method: 'GET', url: '/api/commands/held', access: 'command.review', tags: ['commands'],
    summary: 'Commands waiting for an approver to confirm or reject them',
    response: z.object({ commands: z.array(commandSchema) }),
  }, async () => ({ commands: (await store.listCommands({ decision: 'review', limit: 500 })).map(view) }));

  route(app, {
    method: 'POST', url: '/api/commands/:id/review', access: 'command.review', tags: ['commands'],
    summary: 'Confirm or reject a held command; the vendor\'s session runs it or refuses it at once, on whichever node holds it',
    params: z.object({ id: z.string().min(1).max(64) }),
    body: z.object({ approve: z.boolean(), comment: z.string().max(500).nullable().optional() }),
    response: commandSchema,
  }, async ({ params, body, principal }) => {
    const c = await store.getCommand(params.id);
    if (!c) throw new InputError('NOT_FOUND', `no command ${params.id}`);
    // S-1.3: the person who typed the command does not confirm it.
    if (c.user === principal.user.name) throw new InputError('SELF_APPROVAL', 'nobody confirms their own command');
    const settled = await store.resolveCommandReview(c.id, { decision: body.approve ? 'allow' : 'deny', reviewer: principal.user.name, reason: body.comment ?? null });
    if (!settled) throw new InputError('REQUEST_NOT_PENDING', `command ${c.id} is not waiting for review (it is ${c.decision === 'review' ? 'being settled' : c.decision})`);
    await rt.audit.record('command.reviewed', {
      actor: principal.user.name, outcome: body.approve ? 'ok' : 'denied', ...(body.approve ? {} : { code: 'COMMAND_DENIED' as const }),
      data: { command: c.id, session: c.session, user: c.user, device: c.device, line: c.line, approved: body.approve, comment: body.comment ?? null },
    });
    await rt.bus.publish({ type: 'command.reviewed', command: c.id, from: rt.node });
    return view((await store.getCommand(c.id)) as CommandRecord);
  });
}
