import { z } from 'zod';
import {
  COMMAND_MODES,
  COMPOSABLE_CONSTRUCTS,
  RULE_ACTIONS,
  profileErrors,
  type CommandProfile,
  type CommandRule,
} from '../../policy/command-policy.js';

/**
 * `[profiles.NAME]` tables of gateway.config.toml (R-6.3c): command profiles that grants name.
 * Every pattern is compiled here, so a bad regular expression or glob stops start-up with the
 * profile and the rule index instead of failing closed at the first command.
 *
 *   [profiles.ct-diag]
 *   mode = "restricted"
 *   allow_constructs = ["pipeline"]      # optional: pipeline, and-or, sequence
 *   rules = [
 *     { program = "systemctl", args = ["status", "*"], action = "allow" },
 *     { program = "ls", action = "allow" },            # any arguments
 *     { program = "reboot", action = "review" },
 *   ]
 */
const ruleSchema = z.strictObject({
  program: z.string().min(1).max(512).describe('Exact name or path, a glob (* ? [..]), or a /regular expression/.'),
  args: z
    .array(z.string().max(4096))
    .max(64)
    .optional()
    .describe('One pattern per argument; a final "**" matches any remaining arguments; leave out to allow any arguments.'),
  line: z.string().min(3).max(4096).optional().describe('A /regular expression/ the whole command must match.'),
  action: z.enum(RULE_ACTIONS),
});

const profileSchema = z.strictObject({
  mode: z.enum(COMMAND_MODES),
  rules: z.array(ruleSchema).max(1000).default([]),
  allow_constructs: z.array(z.enum(COMPOSABLE_CONSTRUCTS)).max(COMPOSABLE_CONSTRUCTS.length).optional(),
});

export const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export const profilesSchema = z
  .record(z.string().regex(PROFILE_NAME, { message: 'a profile name is 1-64 letters, digits, _ . - (starting with a letter or digit)' }), profileSchema)
  .default({})
  .superRefine((profiles, ctx) => {
    for (const [name, raw] of Object.entries(profiles)) {
      const profile = toCommandProfile(name, raw);
      // profileErrors words each error as "profile NAME, rules[i].field: why"; the path points at it too.
      for (const message of profileErrors(profile)) {
        const m = /rules\[(\d+)\]\.(program|line|args)(?:\[(\d+)\])?/.exec(message);
        const path: (string | number)[] = m
          ? [name, 'rules', Number(m[1]), m[2] as string, ...(m[3] !== undefined ? [Number(m[3])] : [])]
          : [name];
        ctx.addIssue({ code: 'custom', path, message });
      }
    }
  });

export type RawProfile = z.output<typeof profileSchema>;
export type RawProfiles = z.output<typeof profilesSchema>;

/** The policy/ view of one validated profile. */
export function toCommandProfile(name: string, raw: RawProfile): CommandProfile {
  const rules: CommandRule[] = raw.rules.map((r) => ({
    program: r.program,
    action: r.action,
    ...(r.args !== undefined ? { args: r.args } : {}),
    ...(r.line !== undefined ? { line: r.line } : {}),
  }));
  return {
    name,
    mode: raw.mode,
    rules,
    ...(raw.allow_constructs !== undefined ? { allowConstructs: [...new Set(raw.allow_constructs)] } : {}),
  };
}

/** Every validated profile, by name, ready for decideCommand. */
export function toCommandProfiles(raw: RawProfiles): Map<string, CommandProfile> {
  return new Map(Object.entries(raw).map(([name, p]) => [name, toCommandProfile(name, p)]));
}
