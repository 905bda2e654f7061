import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ERROR_CATALOGUE } from '../../policy/error-codes.js';
import { ConfigError, defaultConfigPath, loadConfig, type GatewayConfig } from '../config/load.js';
import { InputError } from '../identity/users.js';
import { createLogger } from '../log/logger.js';
import { initialize, isInitialized } from '../init.js';
import { openRuntime, type Runtime } from '../runtime.js';
import { Output, parse, UsageError } from './cli-io.js';
import { deviceCommand } from './device-commands.js';
import { grantCommand } from './grant-commands.js';
import { recordsCommand, requestCommand } from './request-commands.js';
import { auditCommand, commandsCommand, recordingCommand, sessionsCommand, verifyCommand } from './record-commands.js';
import { serviceAccountCommand, TOKEN_USAGE, tokenCommand } from './token-commands.js';
import { orgCommand, userCommand } from './user-commands.js';

const USAGE = `portcullis — remote-maintenance gateway for medical devices

Usage: portcullis <command> [options]        (every command takes --config FILE and --json)

  init [--admin NAME] [--password-stdin]     create keys, certificate, database and the first admin
  serve [--init-if-needed]                   run the gateway
  org add ID [--display-name NAME] [--contact TEXT] | org list         vendor organisations
  user add NAME --role ROLE [--role ROLE] [--org ORG] [--expires T] [--nda-signed T --nda-expires T [--nda-ref REF]] --password-stdin
  user nda NAME --nda-signed T --nda-expires T [--nda-ref REF]        record a vendor's confidentiality agreement (R-5.3a)
  user set NAME [--role R]… [--org ORG] [--expires T|never]         change roles, organisation, account expiry
                                             (a privileged role waits for a second admin; nobody changes their own)
  user role-changes [--status pending|confirmed|rejected|expired] [--user NAME]   privileged role changes (S-1.3)
  user confirm-role-change ID | user reject-role-change ID [--reason TEXT]     a second admin decides one
  user reset-totp NAME                       forget a lost authenticator: they enrol again at next sign-in
  user sso-link NAME --subject SUB [--issuer URL]   link a staff account to its IdP account (single sign-on)
  user sso-unlink NAME                       end that link (the account keeps its roles)
  user key NAME --key-file FILE              add an SSH public key (sign-in still needs TOTP)
  user password NAME --password-stdin          set a new password
  user list | user unlock NAME | user disable NAME | user enable NAME
${TOKEN_USAGE}
  device add NAME --host H --protocol P [--protocol P] [--port P | --port PROTO=P]… --udi UDI
             --usage-form FORM --contact body|none (--severity minor|harm|serious | --effect none|indirect|important)
             [--ip IP] [--mac MAC] [--type T] [--manufacturer M] [--model M] [--department D] [--location L]
  device import FILE.csv | device export [-o FILE.csv]       inventory as CSV (all rows or none)
  device list | device show NAME
  device credential NAME --username U (--password-stdin | --key-file FILE)
  device trust NAME [--expect SHA256:…] [--expect-rdp AA:BB:…]   fetch and pin the SSH host key and/or RDP certificate
  device quarantine NAME --reason TEXT       back from external repair: off limits until checked (R-6.4b)
  device check NAME (--passed | --failed) --notes TEXT        record the security check (security role)
  device decommission NAME --method TEXT --data-wiping completed|not-required|pending [--at T] [--notes TEXT]   (R-6.5, admin)
  request create --device D [--device D]… --protocol P --purpose TEXT --work-order WO --from T (--until T | --duration 2h)
                 [--profile NAME] [--upload] [--download]         (as --actor NAME, a vendor; --file-transfer = both)
  request list [--status S] [--mine] | request show ID
  request approve ID [--from T] [--until T] [--profile P] [--no-upload] [--no-download] [--comment C]   (narrow, never widen; --no-file-transfer = both)
  request deny ID --reason TEXT | request cancel ID | request revoke ID --reason TEXT
  grant add --user U --device D --protocol ssh --from T --until T [--profile NAME] [--upload] [--download]   (T: ISO 8601, now, +2h; --file-transfer = both)
  grant list [--user U] | grant revoke ID [--reason TEXT]
  records [--device D] [--vendor U] [--org O] [--from T] [--to T] [--format text|csv|json] [-o FILE]   maintenance records (R-6.4c)
  commands [--program P] [--text T] [--device D] [--vendor U] [--session S] [--decision allow|deny|review|logged] [--from T] [--to T]
           [--limit N] [--format text|csv|json] [-o FILE]   the command log across sessions, newest first (R-A.3d)
  sessions [--limit N]                       recent sessions with their recording ids
  recording export ID --format asciicast -o FILE
  audit [--after SEQ] [--limit N]            print audit entries
  verify [--anchor SEQ:HASH]…                check the audit chain (against anchors kept elsewhere) and every sealed recording

Configuration: --config FILE, else $PORTCULLIS_CONFIG, else ./gateway.config.toml.
Actor recorded in the audit log for CLI changes: --actor NAME, else $PORTCULLIS_ACTOR, else local:<os user>.`;

export interface CliContext {
  config: GatewayConfig;
  out: Output;
  actor: string;
  withRuntime<T>(fn: (rt: Runtime) => Promise<T>): Promise<T>;
}

function configPathFrom(args: string[]): string {
  const i = args.findIndex((a) => a === '--config' || a.startsWith('--config='));
  if (i < 0) return defaultConfigPath();
  const a = args[i] as string;
  const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : args[i + 1];
  if (!v) throw new UsageError('--config needs a file');
  return path.resolve(v);
}

function actorFrom(args: string[]): { actor: string; rest: string[] } {
  const rest = [...args];
  const i = rest.findIndex((a) => a === '--actor');
  let actor = process.env.PORTCULLIS_ACTOR ?? `local:${os.userInfo().username}`;
  if (i >= 0) {
    const v = rest[i + 1];
    if (!v) throw new UsageError('--actor needs a name');
    actor = v;
    rest.splice(i, 2);
  }
  return { actor, rest };
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest0] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return command ? 0 : 2;
  }
  const json = rest0.includes('--json');
  try {
    const { actor, rest } = actorFrom(rest0);
    const config = loadConfig(configPathFrom(rest));
    const out = new Output(json);
    const ctx: CliContext = {
      config, out, actor,
      withRuntime: async (fn) => {
        if (!isInitialized(config)) throw new UsageError(`the gateway is not initialised (no keys or database under ${config.dataDir}); run \`portcullis init\``);
        // The CLI's audit entries are its output; the log mirror is for the server.
        const rt = await openRuntime(config, { log: createLogger('warn') });
        try {
          return await fn(rt);
        } finally {
          await rt.close();
        }
      },
    };
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
