import { AsyncLocalStorage } from 'node:async_hooks';
import type { EventEmitter } from 'node:events';

/**
 * The door an action came in by (R-A.3d, R-A.5b: trace the source of an action). `system` is the
 * gateway's own work outside any door (the sweeper, start-up); the others are set at their door.
 */
export const AUDIT_CHANNELS = ['web', 'ssh', 'cli', 'token', 'sso', 'system'] as const;
export type AuditChannel = (typeof AUDIT_CHANNELS)[number];

/**
 * Set once at each front door (the web server per request, the SSH server per connection, the
 * CLI per run) and read by AuditLog when it drafts an entry, so that no caller has to pass it and
 * none can forget it. Mutable on purpose: a web request learns after sign-in whether its session
 * came from SSO or a token (see webChannel).
 */
export interface AuditContext {
  channel: AuditChannel;
  /** The client's address (web, ssh, token, sso) or the operating-system user (cli). */
  source: string | null;
}

const storage = new AsyncLocalStorage<AuditContext>();

export function runWithAuditContext<T>(ctx: AuditContext, fn: () => T): T {
  return storage.run(ctx, fn);
}

export function currentAuditContext(): AuditContext | undefined {
  return storage.getStore();
}

/**
 * Events of a socket run in the context in which its handle was made (the listening server's),
 * not the connection's: every event the emitter fires from now on runs in `ctx` instead, and so
 * does whatever its listeners start (timers, promises).
 */
export function bindEmitterToAuditContext(emitter: EventEmitter, ctx: AuditContext): void {
  const emit = emitter.emit.bind(emitter);
  emitter.emit = (event: string | symbol, ...args: unknown[]): boolean => storage.run(ctx, () => emit(event, ...args));
}

/**
 * The one place a web request's channel is decided from how its caller signed in: a bearer API
 * token is `token`, a console session begun by single sign-on is `sso`, any other cookie session
 * (and a request not signed in) is `web`.
 */
export function webChannel(auth: object | null): AuditChannel {
  const a = (auth ?? {}) as { via?: unknown; token?: unknown };
  if (a.token) return 'token';
  if (a.via === 'sso') return 'sso';
  return 'web';
}
