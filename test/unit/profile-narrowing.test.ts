import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { decideCommand, type CommandProfile, type CommandRule } from '../../policy/command-policy.js';
import { provablyNarrower } from '../../policy/profile-narrowing.js';
import { parseConfig } from '../../gateway/config/load.js';
import { parseCommandLine } from '../../gateway/mediation/shell-parse.js';
import { REPO } from '../support/gateway-fixture.js';

/**
 * S-1.3, R-6.3c: an approver may narrow a request's command profile, and a profile that is not
 * provably narrower is a change (its earlier approvals lapse). "Provably" is decided from the
 * profiles' shape alone (policy/profile-narrowing.ts); each "narrower" answer below is also checked
 * against the engine itself, on command lines: nothing the candidate lets through is refused or
 * held by the original.
 */
const config = parseConfig(readFileSync(path.join(REPO, 'gateway.config.toml'), 'utf8'), path.join(REPO, 'gateway.config.toml'));
const shipped = (name: string): CommandProfile => {
  const p = config.commandProfiles.get(name);
  if (!p) throw new Error(`no profile ${name}`);
  return p;
};
const ref = (p: CommandProfile) => ({ name: p.name, definition: p });
const profile = (name: string, mode: CommandProfile['mode'], rules: CommandRule[], allowConstructs?: CommandProfile['allowConstructs']): CommandProfile => ({
  name, mode, rules, ...(allowConstructs ? { allowConstructs } : {}),
});
const narrower = (candidate: CommandProfile, original: CommandProfile): boolean => provablyNarrower(ref(candidate), ref(original)).narrower;

const RANK = { deny: 0, review: 1, allow: 2 } as const;
/** The engine's own verdict: the candidate never lets a line further than the original does. */
async function neverFurther(candidate: CommandProfile, original: CommandProfile, lines: string[]): Promise<void> {
  for (const line of lines) {
    const parsed = await parseCommandLine(line);
    const c = decideCommand(parsed, candidate).action;
    const o = decideCommand(parsed, original).action;
    expect(RANK[c] <= RANK[o], `${line}: ${candidate.name} ${c}, ${original.name} ${o}`).toBe(true);
  }
}

const LINES = ['ls', 'ls -l /var/log/ct/recon.log', 'df -h', 'uptime', 'systemctl status ct-recon.service', 'journalctl -u ct-recon -n 200', 'cat /var/log/ct/recon.log',
  'reboot', 'systemctl restart ct-recon.service', 'uname -a', 'rm -rf /', 'ls | grep x', 'free -m', 'ip addr'];

describe('the issue\'s example: diagnostics → ct-service', () => {
  it('is a change, not a narrowing: ct-service allows journalctl, cat of the CT logs…, which diagnostics does not', async () => {
    const d = provablyNarrower(ref(shipped('ct-service')), ref(shipped('diagnostics')));
    expect(d.narrower).toBe(false);
    expect(d.reason).toMatch(/^ct-service instead of diagnostics: rule 2 of ct-service \(journalctl -u ct-\* -n \/\[0-9\]\{1,4\}\/ → allow\) lets through commands diagnostics does not$/);
    // And the engine agrees that ct-service lets through a line diagnostics refuses.
    const line = await parseCommandLine('journalctl -u ct-recon -n 200');
    expect(decideCommand(line, shipped('ct-service')).action).toBe('allow');
    expect(decideCommand(line, shipped('diagnostics')).action).toBe('deny');
  });

  it('and the other way round, ct-service → diagnostics, too (diagnostics allows free -m, ls with any arguments…)', () => {
    expect(provablyNarrower(ref(shipped('diagnostics')), ref(shipped('ct-service')))).toMatchObject({ narrower: false, reason: expect.stringContaining('rule 3 of diagnostics (free -m → allow)') });
  });
});

describe('provably narrower', () => {
  const original = profile('ct-wide', 'inspected', [
    { program: 'systemctl', args: ['status', '*'], action: 'allow' },
    { program: 'cat', args: ['/var/log/ct/*'], action: 'allow' },
    { program: 'reboot', args: [], action: 'review' },
    { program: 'ls', action: 'allow' },
  ], ['pipeline']);

  it.each([
    ['the same profile (by name)', original],
    ['a copy of some of its allow rules, in restricted mode', profile('ct-narrow', 'restricted', [{ program: 'cat', args: ['/var/log/ct/*'], action: 'allow' }, { program: 'ls', action: 'allow' }])],
    ['an allow rule turned into review, or deny', profile('ct-held', 'inspected', [{ program: 'ls', action: 'review' }, { program: 'cat', args: ['/var/log/ct/*'], action: 'deny' }])],
    ['a review rule kept as review', profile('ct-reboot', 'restricted', [{ program: 'reboot', args: [], action: 'review' }])],
    ['extra deny rules anywhere', profile('ct-deny', 'inspected', [{ program: 'rm', action: 'deny' }, { program: 'ls', action: 'allow' }, { program: '/.*/', action: 'deny' }])],
    ['no rules at all', profile('ct-none', 'restricted', [])],
    ['fewer composite forms', profile('ct-plain', 'inspected', [{ program: 'ls', action: 'allow' }], [])],
  ])('%s', async (_name, candidate) => {
    const d = provablyNarrower(ref(candidate), ref(original));
    expect(d.narrower, d.reason).toBe(true);
    await neverFurther(candidate, original, LINES);
  });

  it('anything, against a full-mode profile (it lets every line through): even with no definition at hand', async () => {
    const full = shipped('full');
    expect(narrower(shipped('ct-service'), full)).toBe(true);
    expect(provablyNarrower({ name: 'gone', mode: 'restricted' }, { name: 'full', mode: 'full' }).narrower).toBe(true);
    await neverFurther(shipped('ct-service'), full, LINES);
  });
});

describe('not provably narrower: a change', () => {
  const original = profile('orig', 'restricted', [
    { program: 'rm', action: 'deny' },
    { program: 'reboot', action: 'review' },
    { program: '*', action: 'allow' },
  ]);

  it.each([
    ['a more permissive mode', profile('c', 'inspected', [{ program: 'ls', action: 'allow' }]), 'inspected mode is more permissive than restricted mode'],
    ['a rule the original does not have', profile('c', 'restricted', [{ program: 'ls', action: 'allow' }]), 'rule 1 of c (ls → allow)'],
    ['a rule whose arguments differ', profile('c', 'restricted', [{ program: '*', args: ['-l'], action: 'allow' }]), 'rule 1 of c'],
    // The original's `*` rule comes after its rm deny and reboot review: a copy alone would let both through.
    ['a copy of an allow rule without the stricter rules before it', profile('c', 'restricted', [{ program: '*', action: 'allow' }]), 'rule 1 of c (* → allow)'],
    ['the stricter rules before it, but one of them loosened', profile('c', 'restricted', [{ program: 'rm', action: 'deny' }, { program: 'reboot', action: 'allow' }, { program: '*', action: 'allow' }]), 'rule 2 of c (reboot → allow)'],
    ['a review rule that is an allow in the original but after a stricter one it lacks', profile('c', 'restricted', [{ program: '*', action: 'review' }]), 'rule 1 of c (* → review)'],
    ['a composite form the original does not allow', profile('c', 'restricted', [], ['sequence']), 'also allows sequence'],
  ])('%s', async (_name, candidate, reason) => {
    const d = provablyNarrower(ref(candidate), ref(original));
    expect(d.narrower).toBe(false);
    expect(d.reason).toContain(reason);
  });

  it('the stricter rules ahead, kept ahead, make the copy narrower: and the engine agrees', async () => {
    const candidate = profile('c', 'restricted', [{ program: 'rm', action: 'deny' }, { program: 'reboot', action: 'deny' }, { program: '*', action: 'allow' }]);
    expect(narrower(candidate, original)).toBe(true);
    await neverFurther(candidate, original, LINES);
    // A review before an allow needs nothing ahead of a review copy: review is as strict as review.
    expect(narrower(profile('c2', 'restricted', [{ program: 'rm', action: 'deny' }, { program: '*', action: 'review' }]), original)).toBe(true);
  });

  it('a profile that is not configured (on either side) proves nothing', () => {
    expect(provablyNarrower({ name: 'gone' }, ref(original))).toEqual({ narrower: false, reason: 'profile gone is not configured, so nothing about it can be compared' });
    expect(provablyNarrower(ref(original), { name: 'gone', mode: 'restricted' }).narrower).toBe(false);
  });
});
