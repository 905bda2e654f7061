import type { Logger } from './logger.js';

/**
 * Work started from an event handler, which nobody awaits: a failure is logged, never left as an
 * unhandled rejection (which would end the process and every live session with it).
 */
export function inBackground(log: Logger, what: string, p: Promise<unknown> | undefined): void {
  p?.catch((err: unknown) => log.error(`${what} failed`, { error: (err as Error).message }));
}
