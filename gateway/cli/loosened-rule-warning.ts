import { loosenedRules } from '../../policy/approval-rules.js';
import type { GatewayConfig } from '../config/load.js';

/**
 * A command that applies a level's approval rule says on stderr when that rule is looser than the
 * default, as `serve` does at start-up: the operator who applies it should read it too.
 */
export function warnLoosenedRules(config: GatewayConfig, levels: ReadonlyArray<number | null>): void {
  const wanted = new Set(levels.filter((l): l is number => l !== null));
  for (const w of loosenedRules(config.approvalRules)) {
    if (wanted.has(w.level)) process.stderr.write(`portcullis: warning: ${w.message}\n`);
  }
}
