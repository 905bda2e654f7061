/**
 * When is one command profile provably narrower than another (R-6.3c, S-1.3)? An approver may
 * narrow a request; swapping its profile for one that lets through anything the original would
 * not is a change of the request, which the earlier approvers never saw. "Provably" means from
 * the profiles' shape alone (policy/command-policy.ts), without trying to compare what two
 * different globs or regular expressions match: where that would be needed, the answer is no.
 *
 * The rules decide by first match, with anything unmatched denied (restricted and inspected
 * modes), and a full-mode profile lets everything through. So a candidate C is narrower than the
 * original O when:
 *  - C is O (the same name), or O runs in full mode and C in any mode (full allows every line); or
 *  - C's mode is no more permissive than O's (restricted < inspected < full) and O is not full, and
 *  - C allows no composite form (pipeline, `&&`, `;`) that O does not, and
 *  - every rule of C that lets a command through (allow, or review: held for an approver) is a
 *    copy of a rule of O (same program, arguments and line patterns) whose action is at least as
 *    permissive, such that each rule of O before that one which is stricter than C's rule (a deny,
 *    or a review before C's allow) also appears in C, with an action no more permissive, before
 *    C's rule — unless the two name different plain programs (`reboot`, `ls`), which can never
 *    match the same command. Then any command C lets through reaches, in O, the same rule first
 *    (every O rule before it that could have stopped it is in C before, where it did not match,
 *    or cannot match it) and O lets it through at least as far. Deny rules in C only take away.
 */
import { COMMAND_MODES, type CommandMode, type CommandProfile, type CommandRule, type RuleAction } from './command-policy.js';

/** A program pattern that is plain text (no glob, regex or escape): it matches that one name and nothing else. */
const PLAIN_NAME = /^[A-Za-z0-9._+/:@,-]+$/;
const plainName = (p: string): boolean => PLAIN_NAME.test(p) && !(p.length > 2 && p.startsWith('/') && p.endsWith('/'));
/** Two rules naming different plain programs can never match the same command; anything else might. */
const mayOverlap = (a: CommandRule, b: CommandRule): boolean => !(plainName(a.program) && plainName(b.program) && a.program !== b.program);

/** Least permissive first. */
const ACTION_RANK: Record<RuleAction, number> = { deny: 0, review: 1, allow: 2 };
const modeRank = (m: CommandMode): number => COMMAND_MODES.indexOf(m);

const sameMatcher = (a: CommandRule, b: CommandRule): boolean =>
  a.program === b.program
  && a.line === b.line
  && (a.args === undefined ? b.args === undefined : b.args !== undefined && a.args.length === b.args.length && a.args.every((x, i) => x === b.args?.[i]));

const ruleText = (r: CommandRule): string => `${r.program}${r.args === undefined ? '' : r.args.length === 0 ? ' (no arguments)' : ` ${r.args.join(' ')}`}${r.line ? ` [${r.line}]` : ''} → ${r.action}`;

export interface ProfileComparison {
  narrower: boolean;
  /** Why (or why not), for the approver, the audit entry and the requester. */
  reason: string;
}

/** A profile by name, with its definition when it is configured (null: unknown, so nothing about it can be proven). */
export interface NamedProfile {
  name: string;
  /** Its mode, when known without the definition (a request names its profile's mode). */
  mode?: CommandMode;
  definition?: CommandProfile | null;
}

/** Is `candidate` provably no more permissive than `original`? */
export function provablyNarrower(candidateRef: NamedProfile, originalRef: NamedProfile): ProfileComparison {
  if (candidateRef.name === originalRef.name) return { narrower: true, reason: `the same profile ${originalRef.name}` };
  const candidate = candidateRef.definition ?? null;
  const original = originalRef.definition ?? null;
  const candidateMode = candidate?.mode ?? candidateRef.mode;
  const originalMode = original?.mode ?? originalRef.mode;
  // Full mode lets every line through: any profile of any mode is narrower, whatever its rules.
  if (originalMode === 'full' && candidateMode !== undefined) {
    return { narrower: true, reason: `${candidateRef.name} instead of ${originalRef.name}: ${originalRef.name} runs in full mode, which lets every command through` };
  }
  if (candidate === null || original === null) {
    return { narrower: false, reason: `profile ${candidate === null ? candidateRef.name : originalRef.name} is not configured, so nothing about it can be compared` };
  }
  const from = `${candidateRef.name} instead of ${originalRef.name}`;
  if (modeRank(candidate.mode) > modeRank(original.mode)) {
    return { narrower: false, reason: `${from}: ${candidate.mode} mode is more permissive than ${original.mode} mode` };
  }
  const extraConstructs = (candidate.allowConstructs ?? []).filter((c) => !(original.allowConstructs ?? []).includes(c));
  if (extraConstructs.length > 0) return { narrower: false, reason: `${from}: ${candidate.name} also allows ${extraConstructs.join(', ')}` };
  for (let k = 0; k < candidate.rules.length; k++) {
    const rule = candidate.rules[k] as CommandRule;
    if (rule.action === 'deny') continue;
    const before = candidate.rules.slice(0, k);
    const covered = original.rules.some((o, j) => {
      if (!sameMatcher(o, rule) || ACTION_RANK[o.action] < ACTION_RANK[rule.action]) return false;
      // Each stricter rule of the original ahead of this one must stand ahead of it in the candidate too.
      return original.rules.slice(0, j).every((earlier) => ACTION_RANK[earlier.action] >= ACTION_RANK[rule.action] || !mayOverlap(earlier, rule)
        || before.some((c) => sameMatcher(c, earlier) && ACTION_RANK[c.action] <= ACTION_RANK[earlier.action]));
    });
    if (!covered) {
      return { narrower: false, reason: `${from}: rule ${k + 1} of ${candidate.name} (${ruleText(rule)}) lets through commands ${original.name} does not` };
    }
  }
  return { narrower: true, reason: `${from}: every command ${candidate.name} lets through, ${original.name} lets through too` };
}
