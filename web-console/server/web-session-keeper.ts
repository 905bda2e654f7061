import type { WebSocket } from 'ws';
import { loginAllowed } from '../../policy/lockout.js';
import { principalFacts } from '../../gateway/identity/authenticator.js';
import type { Runtime } from '../../gateway/runtime.js';
import type { Principal } from './api-route.js';

/** Writing lastSeenAt on every request would put a store write on every click; once a while is enough. */
export const TOUCH_EVERY_MS = 30_000;
/** How often an open WebSocket checks that its browser session still holds (lapsed, signed out on another node). */
const SOCKET_CHECK_MS = 5_000;

/** Why a browser session no longer holds, in the words the browser shows beside the closed session. */
export type WebSessionLoss = 'signed_out' | 'lapsed';

const LOSS_MESSAGE: Record<WebSessionLoss, string> = {
  signed_out: 'You signed out, so this session was closed.',
  lapsed: 'Your sign-in ended (idle too long, too old, or the account is no longer allowed), so this session was closed. Sign in again.',
};

/**
 * A browser session, read and renewed. The idle timer counts from the last request, or from the
 * last check of an open WebSocket (a terminal, desktop or watch in use sends no HTTP requests for
 * as long as it is open). A disabled, locked or expired account loses its sessions at once.
 */
export async function currentWebSession(rt: Runtime, id: string): Promise<Principal | null> {
  const { store, config, clock } = rt;
  const now = clock();
  const session = await store.getWebSession(id, now);
  if (!session) return null;
  if (now - session.lastSeenAt >= config.web.session_idle_timeout) {
    await store.deleteWebSession(id);
    return null;
  }
  const user = await store.getUser(session.user);
  if (!user || !loginAllowed(principalFacts(user), now).allow) {
    await store.deleteWebSession(id);
    return null;
  }
  if (now - session.lastSeenAt >= TOUCH_EVERY_MS) {
    const expiresAt = Math.min(session.createdAt + config.web.session_max_age, now + config.web.session_idle_timeout);
    await store.touchWebSession(id, now, expiresAt);
    session.lastSeenAt = now;
    session.expiresAt = expiresAt;
  }
  return { user, session, token: null };
}

/**
 * The WebSockets each browser session holds open. An open socket is use of the console: it keeps
 * its session from idling out (the browser's own idle watch signs out a person who left, and the
 * device session has its own idle timeout). When the browser session ends, by signing out on this
 * node (at once) or anywhere else, by lapsing, or by the account being disabled (within
 * SOCKET_CHECK_MS), its sockets are told why and closed, which ends the device sessions behind them.
 */
export class WebSocketSessions {
  private readonly open = new Map<string, Set<(loss: WebSessionLoss) => void>>();

  constructor(private readonly rt: Runtime) {}

  /** `end` tells the browser why and closes the socket; it is called at most once. */
  hold(principal: Principal, socket: WebSocket, end: (loss: WebSessionLoss, message: string) => void): void {
    // Bearer tokens never reach a socket (bearer-auth.ts refuses them first); without a browser session there is nothing to hold.
    if (!principal.session) {
      socket.close();
      return;
    }
    const id = principal.session.id;
    let done = false;
    const close = (loss: WebSessionLoss): void => {
      if (done) return;
      done = true;
      release();
      if (socket.readyState === socket.OPEN) end(loss, LOSS_MESSAGE[loss]);
    };
    const timer = setInterval(() => {
      void currentWebSession(this.rt, id).then((p) => { if (!p) close('lapsed'); }, (err: Error) => {
        // The store is unreachable: the session cannot be renewed, but neither is it known to have ended.
        this.rt.log.warn('an open WebSocket could not check its browser session', { error: err.message });
      });
    }, SOCKET_CHECK_MS);
    timer.unref();
    const set = this.open.get(id) ?? new Set();
    set.add(close);
    this.open.set(id, set);
    const release = (): void => {
      clearInterval(timer);
      set.delete(close);
      if (set.size === 0 && this.open.get(id) === set) this.open.delete(id);
    };
    socket.on('close', () => { done = true; release(); });
  }

  /** This browser session has ended here (signed out): its sockets close now. */
  ended(sessionId: string, loss: WebSessionLoss): void {
    for (const close of [...(this.open.get(sessionId) ?? [])]) close(loss);
  }

  /** How many sockets this node holds open for the session (for tests and /metrics). */
  count(sessionId: string): number {
    return this.open.get(sessionId)?.size ?? 0;
  }
}
