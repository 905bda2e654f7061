import { sweepLeftoverRdpDisplays } from './desktop/rdp-display.js';
import type { AddressInfo } from 'node:net';
import { buildWebApp } from '../web-console/server/app.js';
import { SessionBroker } from './broker/session-broker.js';
import { loosenedRules } from '../policy/approval-rules.js';
import { expireRequests } from './access/requests.js';
import { IntegritySchedule } from './audit/integrity-schedule.js';
import { expireRoleChanges } from './identity/role-changes.js';
import { Membership } from './cluster/membership.js';
import { inBackground } from './log/background.js';
import { splitListen, type GatewayConfig } from './config/load.js';
import type { Logger } from './log/logger.js';
import { openRuntime, type Runtime } from './runtime.js';
import { SshFrontDoor } from './ssh/ssh-front-door.js';
import { readMetricsToken, serveMetricsOnConsole, startMetricsListener, type MetricsListener } from './metrics/metrics-endpoint.js';

export interface RunningGateway {
  runtime: Runtime;
  broker: SessionBroker;
  ssh: AddressInfo;
  web: AddressInfo;
  /** Every HTTP route the web server answers (method and URL pattern). */
  webRoutes: ReadonlyArray<{ method: string; url: string }>;
  /** The separate /metrics listener ([metrics] listen), if configured. */
  metrics: AddressInfo | null;
  stop(): Promise<void>;
}

/** Starts the gateway: store, cluster membership, broker, SSH front door and web server. */
export async function startGateway(config: GatewayConfig, opts: { log?: Logger; clock?: () => number } = {}): Promise<RunningGateway> {
  const runtime = await openRuntime(config, { ...opts, spool: true });
  // RDP displays left by a gateway process that died without stopping them (checked by pid and start time).
  const swept = sweepLeftoverRdpDisplays();
  if (swept > 0) runtime.log.warn('stopped RDP displays left by a gateway that died', { count: swept });
  const { store, audit, vault, log, authenticator, node, spool, bus, notifier, metrics } = runtime;
  let metricsToken: string | null;
  try {
    metricsToken = readMetricsToken(config);
  } catch (err) {
    await runtime.close();
    throw err;
  }
  const broker = new SessionBroker({ config, store, audit, vault, log, node, spool, bus, notifier, ...(metrics ? { metrics } : {}), ...(opts.clock ? { clock: opts.clock } : {}) });
  const sshDoor = new SshFrontDoor({ config, store, audit, authenticator, broker, log });
  const web = await buildWebApp(runtime, broker);
  // /metrics: on its own loopback listener if one is configured, else on this port for the token only.
  if (metrics && metricsToken !== null && !config.metrics.listen) serveMetricsOnConsole(web, metrics, metricsToken);
  let metricsListener: MetricsListener | null = null;
  const sshListen = splitListen(config.ssh.listen);
  const webListen = splitListen(config.web.listen);
  let ssh: AddressInfo;
  let membership: Membership | null = null;
  try {
    ssh = await sshDoor.listen(sshListen.host, sshListen.port);
    await web.listen({ host: webListen.host, port: webListen.port });
    if (metrics && config.metrics.listen) metricsListener = await startMetricsListener(config.metrics.listen, metrics, metricsToken);
    const webAddr = web.server.address() as AddressInfo;
    membership = new Membership(store, audit, log, {
      node, heartbeatMs: config.cluster.heartbeat_interval, nodeTimeoutMs: config.cluster.node_timeout,
      ssh: `${ssh.address}:${ssh.port}`, web: `${webAddr.address}:${webAddr.port}`, liveHere: () => broker.liveIds(),
      ...(opts.clock ? { clock: opts.clock } : {}),
    });
    await membership.start();
  } catch (err) {
    await membership?.stop();
    await metricsListener?.close();
    await broker.shutdown();
    await sshDoor.close().catch(() => undefined);
    await web.close().catch(() => undefined);
    await runtime.close();
    throw err;
  }
  const webAddr = web.server.address() as AddressInfo;
  for (const w of loosenedRules(config.approvalRules)) log.warn('approval rule looser than the default', { deviceLevel: w.level, clause: w.clause, detail: w.message });
  // Undecided requests whose window has passed become `expired` (one node wins each, by version);
  // so do privileged role changes nobody confirmed in time (one node settles each, S-1.3).
  const sweeper = setInterval(() => {
    inBackground(log, 'request expiry', expireRequests(runtime));
    inBackground(log, 'role change expiry', expireRoleChanges(runtime));
  }, 30_000);
  sweeper.unref();
  runtime.syslog?.start();
  runtime.alerts.start();
  const integrity = new IntegritySchedule(runtime);
  integrity.start();
  await audit.record('gateway.started', { actor: 'portcullis', data: { node, backend: store.backend, ssh: `${ssh.address}:${ssh.port}`, web: `${webAddr.address}:${webAddr.port}` } });
  const metricsAt = metricsListener ? `http://${metricsListener.address.address}:${metricsListener.address.port}/metrics` : metricsToken ? `https://${webAddr.address}:${webAddr.port}/metrics` : 'off';
  log.info('gateway listening', { node, ssh: `${ssh.address}:${ssh.port}`, web: `https://${webAddr.address}:${webAddr.port}`, metrics: metricsAt });
  let stopping: Promise<void> | null = null;
  return {
    runtime, broker, ssh, web: webAddr, webRoutes: web.registeredRoutes, metrics: metricsListener?.address ?? null,
    stop: () => {
      stopping ??= (async () => {
        clearInterval(sweeper);
        await integrity.stop();
        await broker.shutdown();
        await sshDoor.close();
        await web.close();
        await metricsListener?.close();
        await membership?.stop();
        await audit.recordEventually('gateway.stopped', { actor: 'portcullis', data: { node } });
        await runtime.close();
      })();
      return stopping;
    },
  };
}
