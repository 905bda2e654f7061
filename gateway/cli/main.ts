import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ERROR_CATALOGUE } from '../../policy/error-codes.js';
import { ConfigError, defaultConfigPath, loadConfig, type GatewayConfig } from '../config/load.js';
import { InputError } from '../identity/users.js';
import { createLogger } from '../log/logger.js';
import { initialize, isInitialized } from '../init.js';
import { openRuntime, type Runtime } from '../runtime.js';
import { runWithAuditContext } from '../audit/audit-context.js';
import type { UserRecord } from '../store/store.js';
import { hostOperator, resolveActor, type ActorClaim } from './actor.js';
import { actorCredentialsComeFirstOnStdin, Output, parse, UsageError } from './cli-io.js';
import { deviceCommand } from './device-commands.js';
import { grantCommand } from './grant-commands.js';
import { recordsCommand, requestCommand } from './request-commands.js';
import { auditCommand, commandsCommand, recordingCommand, sessionsCommand, verifyCommand } from './record-commands.js';
import { serviceAccountCommand, tokenCommand } from './token-commands.js';
import { orgCommand, userCommand } from './user-commands.js';

/**
 * Every command's usage, one entry per command or subcommand: `portcullis --help` prints them
 * all, `portcullis CMD [SUB] --help` its own (and acts on nothing).
 */
export const COMMANDS: Array<[string, string]> = [
  ['init', `init [--admin NAME] [--password-stdin]     create keys, certificate, database and the first admin (as the host operator)`],
  ['serve', `serve [--init-if-needed]                   run the gateway`],
  ['org add', `org add ID [--display-name NAME] [--contact TEXT]           add a vendor organisation`],
  ['org list', `org list                                   vendor organisations`],
  ['user add', `user add NAME --role ROLE [--role ROLE] [--org ORG] [--expires T] [--nda-signed T --nda-expires T [--nda-ref REF]] --password-stdin
             a privileged role (admin, security, device_manager, approver) needs a proven --actor`],
  ['user nda', `user nda NAME --nda-signed T --nda-expires T [--nda-ref REF]        record a vendor's confidentiality agreement (R-5.3a)`],
  ['user set', `user set NAME [--role R]… [--org ORG] [--expires T|never]         change roles, organisation, account expiry
             a change to a privileged role needs a proven --actor; a privileged role waits for a second admin; nobody changes their own`],
  ['user role-changes', `user role-changes [--status pending|confirmed|rejected|expired] [--user NAME]   privileged role changes (S-1.3)`],
  ['user confirm-role-change', `user confirm-role-change ID                 a second admin confirms one (not the one who asked, not the person concerned)`],
  ['user reject-role-change', `user reject-role-change ID [--reason TEXT]  any admin rejects one`],
  ['user sso-link', `user sso-link NAME --subject SUB [--issuer URL]   link a staff account to its IdP account (single sign-on)`],
  ['user sso-unlink', `user sso-unlink NAME                       end that link (the account keeps its roles)`],
  ['user reset-totp', `user reset-totp NAME                       forget a lost authenticator: they enrol again at next sign-in`],
  ['user key', `user key NAME --key-file FILE              add an SSH public key (sign-in still needs TOTP)`],
  ['user password', `user password NAME --password-stdin        set a new password`],
  ['user list', `user list                                  people, roles, lock state`],
  ['user unlock', `user unlock NAME                           lift a lockout`],
  ['user disable', `user disable NAME                          revoke their grants, end their sessions (R-5.3d)`],
  ['user enable', `user enable NAME`],
  ['token create', `token create --name N --scope ACTION [--scope ACTION]… --expires T [--user SERVICE_ACCOUNT]   an API token (secret shown once)`],
  ['token list', `token list [--user NAME | --all]`],
  ['token revoke', `token revoke ID`],
  ['service-account add', `service-account add NAME --role ROLE [--role ROLE]… [--org ORG]   automation accounts: tokens only, never a named person's decision`],
  ['service-account list', `service-account list`],
  ['device add', `device add NAME --host H --protocol P [--protocol P] [--port P | --port PROTO=P]… --udi UDI
             --usage-form FORM --contact body|none (--severity minor|harm|serious | --effect none|indirect|important)
             [--ip IP] [--mac MAC] [--type T] [--manufacturer M] [--model M] [--department D] [--location L]`],
  ['device set', `device set NAME [--host H] [--udi UDI] [--ip IP|''] [--mac MAC|''] [--type T] [--manufacturer M] [--model M]
             [--department D] [--location L] [--usage-form FORM] [--contact body|none] [--severity S | --effect E]
             correct identity and classification; a new level is audited and live grants are re-decided`],
  ['device import', `device import FILE.csv                     inventory as CSV (all rows or none)`],
  ['device export', `device export [-o FILE.csv]`],
  ['device list', `device list`],
  ['device show', `device show NAME`],
  ['device credential', `device credential NAME --username U (--password-stdin | --key-file FILE)`],
  ['device trust', `device trust NAME [--expect SHA256:…] [--expect-rdp AA:BB:…]   fetch and pin the SSH host key and/or RDP certificate`],
  ['device quarantine', `device quarantine NAME --reason TEXT       back from external repair: off limits until checked (R-6.4b)`],
  ['device check', `device check NAME (--passed | --failed) --notes TEXT        record the security check (a named security officer)`],
  ['device decommission', `device decommission NAME --method TEXT --data-wiping completed|not-required|pending [--at T] [--notes TEXT]   (R-6.5, a named admin)`],
  ['request create', `request create --device D [--device D]… --protocol P --purpose TEXT --work-order WO --from T (--until T | --duration 2h)
               [--profile NAME] [--upload] [--download]         (a named vendor; --file-transfer = both)`],
  ['request list', `request list [--status S] [--mine]`],
  ['request show', `request show ID`],
  ['request approve', `request approve ID [--from T] [--until T] [--profile P] [--no-upload] [--no-download] [--comment C]
             (a named approver; narrow, never widen; --no-file-transfer = both)`],
  ['request deny', `request deny ID --reason TEXT                (a named approver)`],
  ['request cancel', `request cancel ID                            (the requester)`],
  ['request revoke', `request revoke ID --reason TEXT              (a named approver, device manager, security officer or admin)`],
  ['grant add', `grant add --user U --device D --protocol ssh --from T --until T [--profile NAME] [--upload] [--download]   (T: ISO 8601, now, +2h)
             with --upload or --download (--file-transfer = both), a named grantor (R-6.3e)`],
  ['grant list', `grant list [--user U] [--device D]`],
  ['grant revoke', `grant revoke ID [--reason TEXT]`],
  ['records', `records [--device D] [--vendor U] [--org O] [--from T] [--to T] [--format text|csv|json] [-o FILE]   maintenance records (R-6.4c)`],
  ['commands', `commands [--program P] [--text T] [--device D] [--vendor U] [--session S] [--decision allow|deny|review|logged] [--from T] [--to T]
             [--limit N] [--format text|csv|json] [-o FILE]   the command log across sessions, newest first (R-A.3d)`],
  ['sessions', `sessions [--limit N]                       recent sessions with their recording ids`],
  ['recording export', `recording export ID --format asciicast -o FILE`],
  ['audit', `audit [--type T] [--channel web|ssh|cli|token|sso|system] [--after SEQ] [--limit N]   print audit entries`],
  ['verify', `verify [--anchor SEQ:HASH]…                check the audit chain (against anchors kept elsewhere) and every sealed recording`],
];

const COMMON_HELP = `Every command also takes:
  --config FILE                  (before or after the command) else $PORTCULLIS_CONFIG, else ./gateway.config.toml
  --json                         machine-readable output
  --actor NAME                   act as this person (else $PORTCULLIS_ACTOR); it must be proven: the CLI asks for the
                                 password and current TOTP code on the terminal (no echo), or
  --actor-credentials-stdin      reads them as the first two lines of standard input (password, then TOTP code);
                                 a secret the command reads with --password-stdin follows on the third line
  $PORTCULLIS_TOKEN              an API token as the proof instead (its owner acts, within the token's scope)
  --help, -h                     this text; nothing is done
Without --actor the CLI acts as the host operator, local:<os user>, who may not approve, deny, check,
decommission, grant file transfer or change privileged roles.`;

const USAGE = `portcullis — remote-maintenance gateway for medical devices

Usage: portcullis [--config FILE] <command> [options]

${COMMANDS.map(([, u]) => `  ${u}`).join('\n')}

${COMMON_HELP}`;

/** The usage of one command (`user`) or subcommand (`user add`); null when there is no such command. */
function helpFor(command: string, sub: string | undefined): string | null {
  const exact = sub !== undefined ? COMMANDS.filter(([k]) => k === `${command} ${sub}`) : [];
  const all = COMMANDS.filter(([k]) => k === command || k.startsWith(`${command} `));
  const chosen = exact.length ? exact : all;
  if (!chosen.length) return null;
  return `Usage: portcullis ${chosen.map(([, u]) => u).join('\n       portcullis ')}\n\n${COMMON_HELP}`;
}

export interface CliContext {
  config: GatewayConfig;
  out: Output;
  /** Who the run acts as: a proven person's name, or local:<os user>. Set by withRuntime before its function runs. */
  actor: string;
  /** The proven person, or null for the host operator. */
  person: UserRecord | null;
  withRuntime<T>(fn: (rt: Runtime) => Promise<T>): Promise<T>;
}

/** Options that belong to the whole run, taken out wherever they stand (before or after the command). */
interface GlobalOptions {
  command: string | undefined;
  rest: string[];
  configFile: string | null;
  actor: string | null;
  credentialsOnStdin: boolean;
  help: boolean;
}

function globalOptions(argv: string[]): GlobalOptions {
  const g: GlobalOptions = { command: undefined, rest: [], configFile: null, actor: null, credentialsOnStdin: false, help: false };
  // Options given before the command go after its own words (`device list`), where it parses them.
  const before: string[] = [];
  const value = (i: number, flag: string): string => {
    const a = argv[i] as string;
    const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[i + 1];
    if (!v || (!a.includes('=') && v.startsWith('--'))) throw new UsageError(`${flag} needs a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--') {
      g.rest.push(...argv.slice(i));
      break;
    }
    if (a === '--config' || a.startsWith('--config=')) {
      const v = value(i, '--config');
      if (g.configFile !== null && g.configFile !== v) throw new UsageError('--config is given twice');
      g.configFile = v;
      if (!a.includes('=')) i += 1;
    } else if (a === '--actor' || a.startsWith('--actor=')) {
      const v = value(i, '--actor');
      if (g.actor !== null && g.actor !== v) throw new UsageError('--actor is given twice');
      g.actor = v;
      if (!a.includes('=')) i += 1;
    } else if (a === '--actor-credentials-stdin') {
      g.credentialsOnStdin = true;
    } else if (a === '--help' || a === '-h') {
      g.help = true;
    } else if (g.command === undefined && !a.startsWith('-')) {
      g.command = a;
    } else if (g.command === undefined && a === '--json') {
      before.push(a);
    } else if (g.command === undefined) {
      throw new UsageError(`${a} before the command: only --config, --json, --actor, --actor-credentials-stdin and --help go there`);
    } else {
      g.rest.push(a);
    }
  }
  g.rest.push(...before);
  return g;
}

export async function main(argv: string[]): Promise<number> {
  const json = argv.includes('--json');
  try {
    const g = globalOptions(argv);
    const { command, rest } = g;
    if (!command || command === 'help') {
      process.stdout.write(`${USAGE}\n`);
      return g.help || command === 'help' ? 0 : 2;
    }
    // Help before anything else: no configuration read, no data directory touched, no prompt.
    if (g.help) {
      const text = helpFor(command, rest.find((a) => !a.startsWith('-')));
      if (text === null) throw new UsageError(`unknown command ${JSON.stringify(command)}; see portcullis --help`);
      process.stdout.write(`${text}\n`);
      return 0;
    }
    const osUser = os.userInfo().username;
    const envActor = process.env.PORTCULLIS_ACTOR;
    const envToken = process.env.PORTCULLIS_TOKEN;
    const claim: ActorClaim = {
      name: g.actor ?? (envActor ? envActor : null), credentialsOnStdin: g.credentialsOnStdin, token: envToken ? envToken : null, osUser,
    };
    if (claim.credentialsOnStdin) {
      if (claim.name === null) throw new UsageError('--actor-credentials-stdin goes with --actor NAME (or $PORTCULLIS_ACTOR)');
      actorCredentialsComeFirstOnStdin();
    }
    if ((command === 'init' || command === 'serve') && (g.actor !== null || claim.credentialsOnStdin)) {
      throw new UsageError(`${command} runs as the host operator (${hostOperator(osUser)}); leave --actor out`);
    }
    const config = loadConfig(g.configFile !== null ? path.resolve(g.configFile) : defaultConfigPath());
    const out = new Output(json);
    const ctx: CliContext = {
      config, out, actor: hostOperator(osUser), person: null,
      withRuntime: async (fn) => {
        if (!isInitialized(config)) throw new UsageError(`the gateway is not initialised (no keys or database under ${config.dataDir}); run \`portcullis init\``);
        // The CLI's audit entries are its output; the log mirror is for the server.
        const rt = await openRuntime(config, { log: createLogger('warn') });
        try {
          const who = await resolveActor(rt, claim);
          ctx.actor = who.name;
          ctx.person = who.user;
          return await fn(rt);
        } finally {
          await rt.close();
        }
      },
    };
    // The CLI's front door: every audit entry of this run says cli, and which OS user ran it.
    return await runWithAuditContext({ channel: 'cli', source: osUser }, async () => {
      switch (command) {
        case 'init': return await initCommand(ctx, rest);
        case 'serve': return await serveCommand(ctx, rest);
        case 'user': return await userCommand(ctx, rest);
        case 'org': return await orgCommand(ctx, rest);
        case 'token': return await tokenCommand(ctx, rest);
        case 'service-account': return await serviceAccountCommand(ctx, rest);
        case 'device': return await deviceCommand(ctx, rest);
        case 'grant': return await grantCommand(ctx, rest);
        case 'request': return await requestCommand(ctx, rest);
        case 'records': return await recordsCommand(ctx, rest);
        case 'commands': return await commandsCommand(ctx, rest);
        case 'sessions': return await sessionsCommand(ctx, rest);
        case 'recording': return await recordingCommand(ctx, rest);
        case 'audit': return await auditCommand(ctx, rest);
        case 'verify': return await verifyCommand(ctx, rest);
        default: throw new UsageError(`unknown command ${JSON.stringify(command)}; see portcullis --help`);
      }
    });
  } catch (err) {
    return report(err, json);
  }
}

function report(err: unknown, json: boolean): number {
  let code: string;
  let message: string;
  let exit = 1;
  if (err instanceof UsageError) {
    code = 'USAGE';
    message = err.message;
    exit = 2;
  } else if (err instanceof ConfigError) {
    code = 'CONFIG_INVALID';
    message = `invalid configuration: ${err.message}`;
    exit = 78; // EX_CONFIG
  } else if (err instanceof InputError) {
    code = err.code;
    message = err.message;
  } else {
    code = (err as { code?: string }).code && (err as { code: string }).code in ERROR_CATALOGUE ? (err as { code: string }).code : 'ERROR';
    message = (err as Error).message ?? String(err);
  }
  if (json) process.stdout.write(`${JSON.stringify({ error: { code, message } })}\n`);
  process.stderr.write(`portcullis: ${message}\n`);
  return exit;
}

async function initCommand(ctx: CliContext, args: string[]): Promise<number> {
  const { values } = parse(args, { admin: { type: 'string' }, 'password-stdin': { type: 'boolean', default: false } });
  const { readStdinSecret } = await import('./cli-io.js');
  const adminPassword = values['password-stdin'] ? readStdinSecret('admin password') : undefined;
  const r = await initialize(ctx.config, { ...(values.admin ? { adminName: values.admin } : {}), ...(adminPassword ? { adminPassword } : {}) });
  ctx.out.result(r, initLines(ctx.config, r));
  return 0;
}

function initLines(config: GatewayConfig, r: Awaited<ReturnType<typeof initialize>>): string[] {
  const lines = r.created.length ? [`Initialised ${config.dataDir}:`, ...r.created.map((c) => `  created ${c}`)] : [`${config.dataDir} is already initialised.`];
  if (r.admin) {
    lines.push('', `First admin: ${r.admin.name}`);
    if (r.admin.password) lines.push(`  password: ${r.admin.password}   (shown once; change it with: portcullis user password NAME --password-stdin)`);
    lines.push(`  TOTP enrolment (shown once; scan as a QR code or paste into an authenticator):`, `  ${r.admin.otpauthUri}`);
  }
  return lines;
}

async function serveCommand(ctx: CliContext, args: string[]): Promise<number> {
  const { values } = parse(args, { 'init-if-needed': { type: 'boolean', default: false } });
  if (!isInitialized(ctx.config)) {
    if (!values['init-if-needed']) throw new UsageError(`the gateway is not initialised; run \`portcullis init\` (or serve --init-if-needed)`);
    const r = await initialize(ctx.config);
    // A service's stdout ends up in journald or container logs: the first admin's password and
    // TOTP seed go to a 0600 file instead, to be read once and deleted.
    const lines = initLines(ctx.config, { ...r, admin: null });
    if (r.admin) {
      const file = path.join(ctx.config.dataDir, 'first-admin.txt');
      writeFileSync(file, `${initLines(ctx.config, { created: [], admin: r.admin }).slice(1).join('\n')}\n`, { mode: 0o600 });
      lines.push('', `The first admin account (${r.admin.name}) was created; its password and TOTP enrolment are in ${file} (mode 0600). Read it, enrol, and delete it.`);
    }
    process.stdout.write(`${lines.join('\n')}\n\n`);
  }
  // Last line of defence: a stray rejection is logged, not allowed to end every live session.
  process.on('unhandledRejection', (err) => {
    process.stderr.write(`${JSON.stringify({ ts: new Date().toISOString(), level: 'error', msg: 'unhandled rejection', error: String((err as Error)?.message ?? err) })}\n`);
  });
  const { startGateway } = await import('../server.js');
  const gw = await startGateway(ctx.config);
  // The handlers go in before the line that tells a supervisor (or a test) the gateway is up:
  // a SIGTERM sent the moment it reads that line must still stop the gateway cleanly.
  const stopped = new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  process.stdout.write(`Portcullis is serving: ssh on ${gw.ssh.address}:${gw.ssh.port}, web on https://${gw.web.address}:${gw.web.port}\n`);
  await stopped;
  await gw.stop();
  return 0;
}
