import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { decideCommand } from '../../policy/command-policy.js';
import { parseConfig } from '../../gateway/config/load.js';
import { ruleLabel } from '../../gateway/mediation/command-mediator.js';
import { parseCommandLine } from '../../gateway/mediation/shell-parse.js';
import { REPO } from '../support/gateway-fixture.js';

/**
 * The worked examples of the README's "Command profiles" section (R-6.3c), decided by the
 * profiles gateway.config.toml ships: what the README promises is what the engine does.
 */
const config = parseConfig(readFileSync(path.join(REPO, 'gateway.config.toml'), 'utf8'), path.join(REPO, 'gateway.config.toml'));
const decide = async (profile: string, line: string): Promise<string> => {
  const p = config.commandProfiles.get(profile);
  if (!p) throw new Error(`no profile ${profile}`);
  const d = decideCommand(await parseCommandLine(line), p);
  return d.action === 'deny' ? 'deny' : `${d.action} ${ruleLabel(d) ?? '(every command)'}`;
};

describe('the shipped command profiles decide as the README says', () => {
  it.each([
    ['ct-service', 'systemctl status ct-recon.service', 'allow ct-service#1'],
    ['ct-service', 'journalctl -u ct-recon -n 200', 'allow ct-service#2'],
    ['ct-service', 'cat /var/log/ct/recon.log', 'allow ct-service#4'],
    ['ct-service', 'cat /var/log/ct/../../../etc/shadow', 'deny'],
    ['ct-service', 'cat /etc/shadow', 'deny'],
    ['ct-service', 'systemctl restart ct-recon.service', 'review ct-service#7'],
    ['ct-service', 'systemctl restart sshd', 'deny'],
    ['ct-service', 'systemctl status ct-recon.service; reboot', 'deny'],
    ['ct-service', 'reboot', 'review ct-service#8'],
    ['ct-service', 'vi /etc/ct/recon.conf', 'deny'],
    ['lab-analyser', 'tail -n 100 /opt/analyser/log/run.log | grep -i error', 'allow lab-analyser#2+3'],
    ['lab-analyser', 'tail -n 100 /opt/analyser/log/run.log | sh', 'deny'],
    ['lab-analyser', '/opt/analyser/bin/calibrate --check', 'allow lab-analyser#5'],
    ['lab-analyser', '/opt/analyser/bin/calibrate --apply lot-2417', 'review lab-analyser#6'],
    ['lab-analyser', 'calibrate --check', 'deny'],
    ['lab-analyser', 'ls /opt/analyser/calibration/2026', 'allow lab-analyser#4'],
    ['diagnostics', 'df -h', 'allow diagnostics#2'],
    ['diagnostics', 'df -h; rm -rf /', 'deny'],
    ['full', 'anything at all | sh', 'allow (every command)'],
  ])('%s: %s → %s', async (profile, line, expected) => {
    expect(await decide(profile, line)).toBe(expected);
  });

  it('gives every level a default profile its rule allows, and level 3 only restricted mode', () => {
    for (const level of [1, 2, 3] as const) {
      const name = config.defaultProfiles[level];
      expect(name).toBe('diagnostics');
      expect(config.approvalRules[level].modes).toContain(config.commandProfiles.get(name as string)?.mode);
    }
    expect(config.approvalRules[3].modes).toEqual(['restricted']);
  });
});
