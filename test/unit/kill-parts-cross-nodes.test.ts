import { describe, expect, it } from 'vitest';
import { killNotice } from '../../gateway/broker/session-broker.js';
import { parseBusMessage } from '../../gateway/cluster/bus.js';

// Issue 14 item 5: a kill from another node tells the vendor the same as a local one, so what
// else it did (grant revoked, account locked) travels with the kill on the cluster bus.
describe('a kill\'s parts between nodes', () => {
  it('survive the bus as sent, and nothing else does', () => {
    const sent = { type: 'session.kill', session: 's1', by: 'sam', reason: 'firmware change', from: 'gw-b', grantRevoked: true, lockedUntil: 1_800_000_000_000 } as const;
    expect(parseBusMessage(JSON.stringify(sent))).toEqual(sent);
    // A plain kill stays plain; a part of the wrong type is dropped rather than believed.
    expect(parseBusMessage(JSON.stringify({ type: 'session.kill', session: 's1', by: 'sam', reason: 'r', from: 'gw-b' }))).toEqual({ type: 'session.kill', session: 's1', by: 'sam', reason: 'r', from: 'gw-b' });
    expect(parseBusMessage(JSON.stringify({ ...sent, grantRevoked: 'yes', lockedUntil: '2027-01-01' }))).toEqual({ type: 'session.kill', session: 's1', by: 'sam', reason: 'firmware change', from: 'gw-b' });
  });

  it('are said to the vendor after the reason, ending with the code the consoles read', () => {
    expect(killNotice({ by: 'sam', reason: 'firmware change' })).toBe('Session closed: A security officer ended this session. (firmware change) [SESSION_KILLED]');
    expect(killNotice({ by: 'sam', reason: 'firmware change', grantRevoked: true, lockedUntil: Date.parse('2027-01-01T00:00:00Z') })).toBe(
      'Session closed: A security officer ended this session. (firmware change) Your access grant for this device was revoked. Your account is locked until 2027-01-01T00:00:00.000Z. [SESSION_KILLED]',
    );
  });
});
