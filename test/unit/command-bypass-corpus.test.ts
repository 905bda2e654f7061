import { beforeAll, describe, expect, it } from 'vitest';
import { decideCommand, type ParsedLine } from '../../policy/command-policy.js';
import { parseCommandLine } from '../../gateway/mediation/shell-parse.js';
import { ALLOWED_CONTROLS, BYPASS_CORPUS, BYPASS_PROFILE } from '../support/bypass-corpus.js';

// R-6.3c: a restricted profile is a security boundary. Each attempt goes through the real
// parser and the engine, exactly as a typed line would.
describe('bypass attempts against a restricted profile', () => {
  // Each line is parsed once, by the real parser, and decided by each mode below.
  const parsed = new Map<string, ParsedLine>();
  beforeAll(async () => {
    for (const c of BYPASS_CORPUS) parsed.set(c.line, await parseCommandLine(c.line));
  });
  const parsedLine = (line: string): ParsedLine => {
    const p = parsed.get(line);
    if (!p) throw new Error(`not parsed: ${line}`);
    return p;
  };

  it('has at least 80 attempts with distinct names', () => {
    expect(BYPASS_CORPUS.length).toBeGreaterThanOrEqual(80);
    expect(new Set(BYPASS_CORPUS.map((c) => c.name)).size).toBe(BYPASS_CORPUS.length);
  });

  it.each(BYPASS_CORPUS.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const decision = decideCommand(parsedLine(c.line), BYPASS_PROFILE);
    expect({ line: c.line, action: decision.action }).toEqual({ line: c.line, action: c.expect });
    expect(decision.code).toBe(c.expect === 'deny' ? 'COMMAND_DENIED' : 'COMMAND_REVIEW_REQUIRED');
    expect(decision.reason.length).toBeGreaterThan(0);
  });

  it.each(ALLOWED_CONTROLS.map((l) => [l]))('the same profile allows %j', async (line) => {
    const decision = decideCommand(await parseCommandLine(line), BYPASS_PROFILE);
    expect(decision).toMatchObject({ action: 'allow', code: null });
  });

  it('in inspected mode the same attempts are refused too', () => {
    const inspected = { ...BYPASS_PROFILE, mode: 'inspected' as const };
    for (const c of BYPASS_CORPUS) {
      const decision = decideCommand(parsedLine(c.line), inspected);
      expect({ line: c.line, action: decision.action }).toEqual({ line: c.line, action: c.expect });
    }
  });
});
