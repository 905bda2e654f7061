import { randomUUID } from 'node:crypto';
import { decideCommand, type CommandDecision, type CommandProfile, type ParsedLine } from '../../policy/command-policy.js';
import type { AuditLog } from '../audit/audit-log.js';
import type { ExitInfo } from '../broker/session-io.js';
import type { ClusterBus } from '../cluster/bus.js';
import type { Logger } from '../log/logger.js';
import type { Notifier } from '../notify/notifier.js';
import type { CommandRecord, Store } from '../store/store.js';
import type { WriteSpool } from '../store/write-spool.js';
import { parseCommandLine } from './shell-parse.js';

export interface MediatorDeps {
  store: Store;
  audit: AuditLog;
  /** What has already happened (a command finished) waits here through a store outage. */
  spool: WriteSpool;
  bus: ClusterBus;
  notifier: Notifier;
  log: Logger;
  clock: () => number;
  reviewTimeoutMs: number;
  /** Resolves when someone answers review `id` on any node (the broker hears the bus), or never. */
  reviewAnswered(id: string): Promise<void>;
}

export interface SessionFacts {
  id: string;
  user: string;
  device: string;
}

/**
 * The rule that decided, as people read it: the profile and the rule's position in it (from 1);
 * for a line of several commands, each command's rule ("lab-analyser#2+3").
 */
export function ruleLabel(d: CommandDecision): string | null {
  if (d.rule !== null) return `${d.profile}#${d.rule + 1}`;
  if (d.perCommand.length > 1 && d.perCommand.every((c) => c.rule !== null)) return `${d.profile}#${d.perCommand.map((c) => (c.rule as number) + 1).join('+')}`;
  return null;
}
const ruleName = ruleLabel;

/**
 * One session's command mediation (R-6.3c): every command line is decided by the profile,
 * entered in the command log and the audit chain (R-6.4c, R-A.3d), and a `review` decision is
 * held until an approver answers (on any node) or the timeout denies it.
 */
export class CommandMediator {
  constructor(private readonly deps: MediatorDeps, readonly session: SessionFacts, readonly profile: CommandProfile) {}

  get mode(): CommandProfile['mode'] {
    return this.profile.mode;
  }

  /** Parses and decides one line, and logs the decision. A gateway that cannot log it does not allow it. */
  async decide(line: string, parsed?: ParsedLine): Promise<{ decision: CommandDecision; commandId: string; parsed: ParsedLine }> {
    const p = parsed ?? (await parseCommandLine(line));
    let decision = decideCommand(p, this.profile);
    const commandId = randomUUID();
    try {
      await this.log(commandId, line, decision.action === 'allow' && this.mode === 'full' ? 'logged' : decision.action, decision);
    } catch (err) {
      this.deps.log.error('command could not be logged; refused', { session: this.session.id, error: (err as Error).message });
      decision = { ...decision, action: 'deny', code: 'STORE_UNAVAILABLE', reason: 'the gateway could not record this command, so it was not run (fail closed)' };
    }
    return { decision, commandId, parsed: p };
  }

  /** A line the gateway refused before the profile was even asked (inspected mode could not read it). */
  async refused(line: string, reason: string): Promise<void> {
    const d: CommandDecision = { action: 'deny', rule: null, reason, code: 'COMMAND_DENIED', perCommand: [], profile: this.profile.name, mode: this.mode };
    await this.log(randomUUID(), line, 'deny', d);
  }

  /** Full mode and lines the gateway only watches: logged, not decided. Returns the command-log id. */
  async record(line: string): Promise<string> {
    const decision = decideCommand(await parseCommandLine(line), this.profile);
    const id = randomUUID();
    await this.log(id, line, 'logged', decision);
    return id;
  }

  private async log(id: string, line: string, decision: CommandRecord['decision'], d: CommandDecision): Promise<void> {
    const at = this.deps.clock();
    const record: CommandRecord = {
      id, session: this.session.id, user: this.session.user, device: this.session.device, at, line, mode: this.mode, decision,
      rule: ruleName(d), reason: d.reason, reviewer: null, exitStatus: null, exitSignal: null,
    };
    await this.deps.store.createCommand(record);
    await this.deps.audit.record('command', {
      actor: this.session.user, outcome: decision === 'deny' ? 'denied' : decision === 'allow' ? 'ok' : 'info', code: decision === 'deny' ? d.code : null,
      data: { command: id, session: this.session.id, device: this.session.device, line, mode: this.mode, profile: d.profile, decision, rule: record.rule, reason: d.reason },
    });
  }

  /**
   * Holds a `review` line until an approver confirms or rejects it from the API (any node), or
   * the timeout passes (deny). The answer is settled in the store first-wins, so an answer and
   * the timeout racing on two nodes still give one outcome.
   */
  async review(commandId: string, line: string, decision: CommandDecision): Promise<CommandDecision> {
    const { store, audit, notifier, clock } = this.deps;
    const deadline = clock() + this.deps.reviewTimeoutMs;
    const held = {
      command: commandId, session: this.session.id, user: this.session.user, device: this.session.device, line, rule: ruleName(decision),
      reason: decision.reason, timeoutAt: new Date(deadline).toISOString(),
    };
    await audit.record('command.review_requested', { actor: this.session.user, outcome: 'info', data: held });
    notifier.notify('command.review_requested', held);
    const answered = this.deps.reviewAnswered(commandId);
    for (;;) {
      const left = deadline - clock();
      if (left <= 0) break;
      // Woken by the bus; every second the store is read again in case a message was lost.
      await Promise.race([answered, new Promise((r) => setTimeout(r, Math.min(left, 1000)))]);
      const c = await store.getCommand(commandId).catch(() => null);
      if (c && c.decision !== 'review') return this.outcome(decision, c);
    }
    if (await store.resolveCommandReview(commandId, { decision: 'deny', reviewer: null, reason: 'no approver answered in time' })) {
      await audit.record('command.review_timed_out', { actor: 'portcullis', outcome: 'denied', code: 'COMMAND_DENIED', data: { command: commandId, session: this.session.id, line } });
    }
    const c = await store.getCommand(commandId);
    return this.outcome(decision, c);
  }

  private outcome(held: CommandDecision, c: CommandRecord | null): CommandDecision {
    if (c?.decision === 'allow') return { ...held, action: 'allow', code: null, reason: `confirmed by ${c.reviewer ?? 'an approver'}` };
    const why = c?.reviewer ? `rejected by ${c.reviewer}${c.reason ? `: ${c.reason}` : ''}` : (c?.reason ?? 'no approver answered in time');
    return { ...held, action: 'deny', code: 'COMMAND_DENIED', reason: why };
  }

  /**
   * A command the gateway ran as its own exec request has finished (an exec request in any mode,
   * a line of restricted mode): its exit status, or the signal the device reported instead, goes
   * into its command-log row and the audit chain (`command.finished`). Both are null when the
   * device reported neither (the connection was lost, or the gateway ended the session first).
   * It has already happened, so both writes go through the spool: a store outage delays them,
   * never loses them, and never fails the session. Lines typed into the device's own shell
   * (inspected and full mode) never come here: an interactive shell reports no status per line.
   */
  async finished(commandId: string, exit: ExitInfo | null): Promise<void> {
    const exitStatus = exit?.code ?? null;
    const exitSignal = exitStatus === null ? (exit?.signal ?? null) : null;
    try {
      await this.deps.spool.submit({ op: 'finishCommand', id: commandId, patch: { exitStatus, exitSignal } });
      await this.deps.audit.recordEventually('command.finished', {
        actor: this.session.user, outcome: 'info',
        data: { command: commandId, session: this.session.id, device: this.session.device, mode: this.mode, exitStatus, exitSignal },
      });
    } catch (err) {
      this.deps.log.warn('the end of a command could not be recorded', { command: commandId, session: this.session.id, error: (err as Error).message });
    }
  }
}
