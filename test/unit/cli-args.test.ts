import { describe, expect, it } from 'vitest';
import { parse, UsageError } from '../../gateway/cli/cli-io.js';

describe('CLI arguments', () => {
  const opts = { from: { type: 'string' }, until: { type: 'string' }, passed: { type: 'boolean' } } as const;

  it('takes a negative relative time as the value of the option before it', () => {
    const r = parse(['--from', '-5m', '--until', '-365d', 'x'], opts, 1);
    expect(r.values).toMatchObject({ from: '-5m', until: '-365d' });
    expect(r.positionals).toEqual(['x']);
    expect(parse(['--from=-1m'], opts).values.from).toBe('-1m');
  });

  it('still refuses what is not an option, and a boolean does not swallow the next word', () => {
    expect(() => parse(['--passed', '-5m'], opts)).toThrow(UsageError);
    expect(() => parse(['--nope', '-5m'], opts)).toThrow(/nope/);
    expect(() => parse(['--from'], opts)).toThrow(UsageError);
  });
});
