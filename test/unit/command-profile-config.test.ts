import { describe, expect, it } from 'vitest';
import { parse as parseToml } from 'smol-toml';
import { profilesSchema, toCommandProfiles } from '../../gateway/config/profiles-schema.js';
import { decideCommand } from '../../policy/command-policy.js';
import { parseCommandLine } from '../../gateway/mediation/shell-parse.js';

const SHARED = `
[profiles.ct-diag]
mode = "restricted"
rules = [
  { program = "systemctl", args = ["status", "*"], action = "allow" },
  { program = "ls", action = "allow" },            # any arguments
  { program = "reboot", action = "review" },
]

[profiles.lab-full]
mode = "full"

[profiles.lab-pipes]
mode = "inspected"
allow_constructs = ["pipeline"]
rules = [
  { program = "/^(grep|wc)$/", action = "allow" },
  { program = "cat", args = ["/var/log/analyser/*"], line = "/cat [^ ]+/", action = "allow" },
]
`;

const issuesOf = (toml: string): { path: string; message: string }[] => {
  const r = profilesSchema.safeParse((parseToml(toml) as { profiles?: unknown }).profiles);
  return r.success ? [] : r.error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message }));
};

describe('[profiles.NAME] in gateway.config.toml', () => {
  it('accepts the shared form and turns it into policy profiles', async () => {
    const raw = profilesSchema.parse((parseToml(SHARED) as { profiles: unknown }).profiles);
    const profiles = toCommandProfiles(raw);
    expect([...profiles.keys()]).toEqual(['ct-diag', 'lab-full', 'lab-pipes']);
    expect(profiles.get('ct-diag')).toEqual({
      name: 'ct-diag',
      mode: 'restricted',
      rules: [
        { program: 'systemctl', args: ['status', '*'], action: 'allow' },
        { program: 'ls', action: 'allow' },
        { program: 'reboot', action: 'review' },
      ],
    });
    expect(profiles.get('lab-full')).toEqual({ name: 'lab-full', mode: 'full', rules: [] });
    expect(profiles.get('lab-pipes')?.allowConstructs).toEqual(['pipeline']);

    const ct = profiles.get('ct-diag');
    if (!ct) throw new Error('missing');
    expect(decideCommand(await parseCommandLine('systemctl status nginx'), ct).action).toBe('allow');
    expect(decideCommand(await parseCommandLine('reboot'), ct).action).toBe('review');
    expect(decideCommand(await parseCommandLine('rm -rf /'), ct).action).toBe('deny');
  });

  it('no [profiles] at all is an empty set', () => {
    expect(profilesSchema.parse(undefined)).toEqual({});
  });

  it('a bad regular expression names the profile and the rule index', () => {
    const issues = issuesOf('[profiles.ct-diag]\nmode = "restricted"\nrules = [ { program = "ls", action = "allow" }, { program = "/(/", action = "allow" } ]\n');
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe('ct-diag.rules.1.program');
    expect(issues[0]?.message).toMatch(/^profile ct-diag, rules\[1\]\.program: invalid regular expression \/\(\/: /);
  });

  it('a bad argument pattern names the argument', () => {
    const issues = issuesOf('[profiles.p]\nmode = "restricted"\nrules = [ { program = "ls", args = ["-l", "[a-"], action = "allow" } ]\n');
    expect(issues[0]).toEqual({ path: 'p.rules.0.args.1', message: 'profile p, rules[0].args[1]: glob "[a-" has an unclosed `[`' });
  });

  it('a line pattern must be a regular expression', () => {
    const issues = issuesOf('[profiles.p]\nmode = "restricted"\nrules = [ { program = "ls", line = "ls -l", action = "allow" } ]\n');
    expect(issues[0]?.path).toBe('p.rules.0.line');
  });

  it.each([
    ['an unknown key in a rule', '{ program = "ls", action = "allow", user = "root" }', 'p.rules.0'],
    ['an unknown action', '{ program = "ls", action = "permit" }', 'p.rules.0.action'],
    ['a missing program', '{ action = "allow" }', 'p.rules.0.program'],
    ['** not last', '{ program = "ls", args = ["**", "-l"], action = "allow" }', 'p.rules.0.args.0'],
  ])('%s is a config error', (_n, rule, path) => {
    const issues = issuesOf(`[profiles.p]\nmode = "restricted"\nrules = [ ${rule} ]\n`);
    expect(issues[0]?.path).toBe(path);
  });

  it('only pipeline, and-or and sequence can be allowed as constructs', () => {
    expect(issuesOf('[profiles.p]\nmode = "restricted"\nallow_constructs = ["redirection"]\n')[0]?.path).toBe('p.allow_constructs.0');
  });

  it('an unknown mode or key at profile level is a config error', () => {
    expect(issuesOf('[profiles.p]\nmode = "open"\n')[0]?.path).toBe('p.mode');
    expect(issuesOf('[profiles.p]\nmode = "full"\ndefault = "allow"\n')[0]?.path).toBe('p');
  });

  it('a profile name is a plain identifier', () => {
    expect(issuesOf('[profiles."ct diag"]\nmode = "full"\n')).toHaveLength(1);
  });
});
