import type { Protocol } from '../../policy/types.js';
import type { DeviceRecord } from '../store/store.js';

/** Each protocol's usual port, used when a device registered no port of its own for it. */
export const DEFAULT_PORTS: Readonly<Record<Protocol, number>> = { ssh: 22, vnc: 5900, rdp: 3389 };

export function portOf(d: Pick<DeviceRecord, 'ports'>, protocol: Protocol): number {
  return d.ports[protocol] ?? DEFAULT_PORTS[protocol];
}
