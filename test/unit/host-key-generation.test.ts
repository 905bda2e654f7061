import { describe, expect, it } from 'vitest';
import ssh2 from 'ssh2';
import { generateHostKey } from '../../gateway/init.js';

const { utils } = ssh2;

// ssh2's ed25519 generator makes an unreadable key about once in 270; init must never write one
// (seen as a gateway that would not start: "Malformed OpenSSH private key").
describe('the gateway host key made by init', () => {
  it('is always a readable Ed25519 key (3000 in a row)', () => {
    for (let i = 0; i < 3000; i++) {
      const pair = generateHostKey();
      const parsed = utils.parseKey(pair.private);
      expect(parsed instanceof Error ? parsed.message : parsed.type).toBe('ssh-ed25519');
    }
  });
});
