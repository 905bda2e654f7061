import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ServerChannel } from 'ssh2';
import type { WebSocket } from 'ws';
// For its additions to Fastify's route options (wsHandler).
import type {} from '@fastify/websocket';
import { z } from 'zod';
import type { ErrorCode } from '../../policy/error-codes.js';
import type { LiveSession, SessionBroker, SessionEnding } from '../../gateway/broker/session-broker.js';
import type { Runtime } from '../../gateway/runtime.js';
import { bindEmitterToAuditContext, currentAuditContext, runWithAuditContext, webChannel } from '../../gateway/audit/audit-context.js';
import { ApiError, authorize, declareRoute, type Principal } from './api-route.js';
import { WebTerminalChannel } from './web-terminal-channel.js';
import type { WebSocketSessions } from './web-session-keeper.js';

/** Why a session ended, as the catalogue code a browser can translate. */
const END_CODES: Record<string, ErrorCode | null> = {
  killed: 'SESSION_KILLED', grant_ended: 'GRANT_EXPIRED', idle_timeout: null, recording_failed: 'RECORDING_FAILED', gateway_shutdown: null,
  client_closed: null, device_closed: null, command_denied: 'COMMAND_DENIED', error: 'DEVICE_UNREACHABLE', interrupted: null, access_revoked: null,
};

/**
 * A WebSocket's messages arrive from its TCP socket, outside the request that opened it: the
 * socket is bound to that request's audit context (web, or sso for an SSO session; the client's
 * address), so what a terminal or desktop does later is audited from the door it came in by.
 */
function atWebDoor<T>(socket: WebSocket, req: FastifyRequest, fn: () => T): T {
  const door = currentAuditContext() ?? { channel: webChannel(req.principal?.session ?? null), source: req.ip };
  bindEmitterToAuditContext(socket, door);
  return runWithAuditContext(door, fn);
}

export function endCode(e: SessionEnding): string | null {
  const fromNotice = e.notice ? /\[([A-Z_]+)\]\s*$/.exec(e.notice.trim())?.[1] : undefined;
  return fromNotice ?? END_CODES[e.reason] ?? null;
}

/**
 * Cross-site WebSocket hijacking: a page on another site could open a socket that carries our
 * cookie. SameSite=Strict already keeps the cookie off it; the Origin check is the second lock.
 */
function sameOrigin(req: FastifyRequest): boolean {
  const origin = req.headers.origin;
  if (!origin) return false;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

/**
 * What a kill did besides ending the session, for the browser: its reason, and whether the grant
 * was revoked or the account locked (then "Connect again" cannot work and is not offered).
 */
export function killOf(e: SessionEnding): Record<string, unknown> {
  if (!e.kill) return {};
  const { reason, grantRevoked, lockedUntil } = e.kill;
  return { kill: { reason, grantRevoked, lockedUntil: lockedUntil === null ? null : new Date(lockedUntil).toISOString() } };
}

const sendJson = (ws: WebSocket, msg: Record<string, unknown>): void => {
  if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(msg));
};

/** What a watcher's socket may hold unsent before the watcher is let go. */
const WATCH_MAX_BUFFERED = 32 * 1024 * 1024;

const terminalQuery = z.object({
  device: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/),
  cols: z.coerce.number().int().min(10).max(500).default(80),
  rows: z.coerce.number().int().min(5).max(300).default(24),
});

const desktopQuery = z.object({
  device: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/),
  protocol: z.enum(['vnc', 'rdp']),
  width: z.coerce.number().int().min(320).max(3840).default(1280),
  height: z.coerce.number().int().min(240).max(2160).default(800),
});

/**
 * WebSocket front doors of the web console: the browser terminal (into the same session broker
 * as the SSH front door) and the read-only live watch of any node's session.
 */
export function registerTerminals(app: FastifyInstance, rt: Runtime, broker: SessionBroker, sockets: WebSocketSessions): void {
  /** The socket lives as long as the browser session that opened it (signed out, lapsed: closed, saying why). */
  const hold = (principal: Principal, socket: WebSocket): void => sockets.hold(principal, socket, (loss, message) => {
    sendJson(socket, { type: 'end', code: 'UNAUTHENTICATED', reason: loss, message });
    socket.close();
  });

  declareRoute({
    method: 'GET', url: '/api/terminal', access: 'session.connect', tags: ['sessions'], produces: 'websocket', query: terminalQuery,
    summary: 'WebSocket: a terminal session to a device on your grant (binary frames: terminal bytes; text: {"type":"resize"}, {"type":"status"}, {"type":"end"})',
  });
  declareRoute({
    method: 'GET', url: '/api/sessions/:id/watch', access: 'session.watch', tags: ['sessions'], produces: 'websocket', params: z.object({ id: z.string() }),
    summary: 'WebSocket: watch a live session read-only, on whichever node it runs (the recent screen first, then live output)',
  });

  // A plain GET (no upgrade) gets the same checks and is told to use a WebSocket.
  const notUpgraded = async (): Promise<never> => {
    throw new ApiError('INVALID_INPUT', 'this address takes a WebSocket connection');
  };
  const guard = (access: 'session.connect' | 'session.watch') => async (req: FastifyRequest): Promise<void> => {
    authorize(access, req.principal);
    if (req.headers.upgrade && !sameOrigin(req)) throw new ApiError('FORBIDDEN', 'the WebSocket did not come from this site');
  };

  app.route({
    method: 'GET', url: '/api/terminal', config: { access: 'session.connect' }, preHandler: guard('session.connect'), handler: notUpgraded,
    wsHandler: (socket: WebSocket, req: FastifyRequest) => {
      void atWebDoor(socket, req, () => openTerminal(socket, req)).catch((err: Error) => {
        rt.log.error('web terminal failed', { error: err.message });
        sendJson(socket, { type: 'end', code: 'INTERNAL', message: 'The gateway could not open the session.' });
        socket.close();
      });
    },
  });

  declareRoute({
    method: 'GET', url: '/api/desktop', access: 'session.connect', tags: ['sessions'], produces: 'websocket', query: desktopQuery,
    summary: 'WebSocket: a VNC or RDP desktop on your grant (binary frames: RFB, the gateway offering security None; text: {"type":"status"|"notice"|"end"})',
  });
  app.route({
    method: 'GET', url: '/api/desktop', config: { access: 'session.connect' }, preHandler: guard('session.connect'), handler: notUpgraded,
    wsHandler: (socket: WebSocket, req: FastifyRequest) => {
      void atWebDoor(socket, req, () => openDesktop(socket, req)).catch((err: Error) => {
        rt.log.error('web desktop failed', { error: err.message });
        sendJson(socket, { type: 'end', code: 'INTERNAL', message: 'The gateway could not open the session.' });
        socket.close();
      });
    },
  });

  async function openDesktop(socket: WebSocket, req: FastifyRequest): Promise<void> {
    const parsed = desktopQuery.safeParse(req.query);
    const principal = req.principal;
    if (!parsed.success || !principal) {
      sendJson(socket, { type: 'end', code: 'INVALID_INPUT', message: 'Name a device and a protocol (vnc or rdp).' });
      socket.close();
      return;
    }
    hold(principal, socket);
    const { device, protocol, width, height } = parsed.data;
    const channel = new WebTerminalChannel(socket);
    const result = await broker.openDesktop({ user: principal.user, deviceName: device, protocol, via: 'web', clientAddress: `web ${req.ip}`, width, height }, channel);
    if (!result.ok) {
      sendJson(socket, { type: 'end', code: result.code, message: result.message });
      socket.close();
      return;
    }
    const live: LiveSession = result.session;
    // Gateway notices (grant ending) beside the screen, not inside the RFB stream.
    live.relay.onNotice = (text) => sendJson(socket, { type: 'notice', text });
    sendJson(socket, { type: 'status', state: 'connected', session: live.id });
    const e = await live.ended;
    sendJson(socket, { type: 'end', code: endCode(e), reason: e.reason, message: e.notice ?? 'The session ended.', ...killOf(e) });
    socket.close();
  }

  async function openTerminal(socket: WebSocket, req: FastifyRequest): Promise<void> {
    const parsed = terminalQuery.safeParse(req.query);
    const principal = req.principal;
    if (!parsed.success || !principal) {
      sendJson(socket, { type: 'end', code: 'INVALID_INPUT', message: 'Name a device to connect to.' });
      socket.close();
      return;
    }
    hold(principal, socket);
    const { device, cols, rows } = parsed.data;
    const channel = new WebTerminalChannel(socket);
    const result = await broker.openSsh({
      user: principal.user, deviceName: device, via: 'web', clientAddress: `web ${req.ip}`, fileTransfer: false, kind: 'shell', command: null,
      pty: { term: 'xterm-256color', cols, rows, width: 0, height: 0, modes: {} }, env: {},
    // The broker drives an SSH session channel; WebTerminalChannel has every part of it that the broker uses.
    }, channel as unknown as ServerChannel);
    if (!result.ok) {
      sendJson(socket, { type: 'end', code: result.code, message: result.message });
      socket.close();
      return;
    }
    const live: LiveSession = result.session;
    sendJson(socket, { type: 'status', state: 'connected', session: live.id });
    channel.onControl = (msg) => {
      if (msg.type === 'resize' && typeof msg.cols === 'number' && typeof msg.rows === 'number') {
        const c = Math.max(10, Math.min(500, Math.floor(msg.cols)));
        const r = Math.max(5, Math.min(300, Math.floor(msg.rows)));
        live.relay.resize(c, r, 0, 0);
      }
    };
    const e = await live.ended;
    sendJson(socket, { type: 'end', code: endCode(e), reason: e.reason, message: e.notice ?? 'The session ended.', exitStatus: channel.exitCode, ...killOf(e) });
    socket.close();
  }

  app.route({
    method: 'GET', url: '/api/sessions/:id/watch', config: { access: 'session.watch' }, preHandler: guard('session.watch'), handler: notUpgraded,
    wsHandler: (socket: WebSocket, req: FastifyRequest) => {
      void atWebDoor(socket, req, () => watch(socket, req)).catch((err: Error) => {
        rt.log.error('watch failed', { error: err.message });
        // Most likely the cluster bus (Redis) did not answer the subscription: say so, never just drop.
        sendJson(socket, { type: 'end', code: 'STORE_UNAVAILABLE', reason: null, message: 'The gateway could not start watching this session (its cluster bus did not answer). Try again in a moment.' });
        socket.close();
      });
    },
  });

  async function watch(socket: WebSocket, req: FastifyRequest): Promise<void> {
    const id = (req.params as { id: string }).id;
    if (!req.principal) {
      socket.close();
      return;
    }
    hold(req.principal, socket);
    const session = await rt.store.getSession(id);
    if (!session) {
      sendJson(socket, { type: 'end', code: 'NOT_FOUND', message: 'No such session.' });
      socket.close();
      return;
    }
    if (session.endedAt !== null) {
      sendJson(socket, { type: 'end', reason: session.endReason, message: 'The session has ended; replay its recording.' });
      socket.close();
      return;
    }
    const watcher = randomUUID();
    let started = false;
    // Registered before any await: a socket closing meanwhile still stops the announcements and
    // the subscription.
    let closed = false;
    let unsubscribe: (() => Promise<void>) | null = null;
    let timer: NodeJS.Timeout | null = null;
    socket.on('close', () => {
      closed = true;
      if (timer) clearInterval(timer);
      void unsubscribe?.();
    });
    const by = req.principal.user.name;
    await rt.audit.record('session.watched', { actor: by, outcome: 'info', data: { session: id, user: session.user, device: session.device, node: session.node } });
    unsubscribe = await rt.bus.subscribeStream(`watch:${id}`, (payload) => {
      let m: { t?: string; to?: string; b?: string; reason?: string; notice?: string | null };
      try {
        m = JSON.parse(payload) as typeof m;
      } catch {
        return;
      }
      // Live bytes count only after this watcher's starting point (a desktop's is the RFB handshake).
      if (m.t === 'backlog' && m.to === watcher) started = true;
      if ((m.t === 'backlog' ? m.to === watcher : m.t === 'd' && started) && typeof m.b === 'string') {
        if (socket.readyState !== socket.OPEN) return;
        // A watcher that cannot keep up is let go rather than buffered without bound.
        if (socket.bufferedAmount > WATCH_MAX_BUFFERED) {
          sendJson(socket, { type: 'end', reason: null, message: 'This connection could not keep up with the session; open the watch again.' });
          socket.close();
          return;
        }
        socket.send(Buffer.from(m.b, 'base64'), { binary: true });
      } else if (m.t === 'end') {
        sendJson(socket, { type: 'end', reason: m.reason ?? null, message: m.notice ?? 'The session ended.' });
        socket.close();
      }
    });
    if (closed) {
      await unsubscribe();
      return;
    }
    // Asked again every 10 s: the node holding the session forgets a watcher that stopped asking.
    const announce = (): void => { void rt.bus.publish({ type: 'watch.start', session: id, watcher, from: rt.node }).catch(() => undefined); };
    announce();
    timer = setInterval(announce, 10_000);
  }
}
