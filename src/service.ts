/**
 * Composition root: builds the verifier, store, landing and HTTP app from a resolved Config,
 * listens, and shuts down gracefully on SIGTERM/SIGINT (stop accepting, finish requests in
 * flight, flush the store).
 */
import { createServer, type Server } from 'node:http';
import { takesTokens } from './config/rules.js';
import type { Config } from './config/types.js';
import { isLocalOnly } from './dev.js';
import { keySourcesFromConfig } from './handoff/keys.js';
import { createVerifier } from './handoff/verify.js';
import { createSessionCheck } from './heavydb/session.js';
import type { KubeApi } from './k8s/client.js';
import { listen } from './listen.js';
import { createLogger, type Logger } from './log.js';
import { createMetrics, type Metrics } from './metrics.js';
import { createStore } from './store/index.js';
import type { SessionStore } from './store/types.js';
import { createApp } from './web/app.js';
import { internalHandler } from './web/internal.js';
import { createHubLanding } from './web/landing/hub.js';
import { createLocalLanding } from './web/landing/local.js';
import { startWebhookServer } from './webhook/server.js';

export interface ServiceOptions {
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  metrics?: Metrics;
  /** Overrides the store built from the config (tests, benchmarks). */
  store?: SessionStore;
  /** Local mode only: mints a fresh demo token for GET {base}dev/demo. */
  demoToken?: () => Promise<string>;
}

export interface RunningService {
  url: string;
  port: number;
  /** The internal listener (/healthz, /readyz, /metrics), with a trailing slash. */
  internalUrl: string;
  /** The admission webhook's HTTPS port, when webhook.enabled. */
  webhookPort?: number;
  server: Server;
  store: SessionStore;
  logger: Logger;
  metrics: Metrics;
  close(): Promise<void>;
}

export async function buildApp(config: Config, o: ServiceOptions = {}) {
  const env = o.env ?? process.env;
  const logger = o.logger ?? createLogger(config.log.level);
  const metrics = o.metrics ?? createMetrics();
  // The Kubernetes API (and with it the hub namespace) is resolved once, for the store and the webhook.
  const kube: KubeApi | undefined =
    config.store.backend === 'kubernetes' && !o.store
      ? (await import('./k8s/client.js')).connectKubernetes(config.store.kubernetes, logger)
      : undefined;
  const store = o.store ?? (await createStore(config, logger, kube));
  // No key source: no token is verified (header mode only); the token entries say so (tokens_disabled).
  const verifier = takesTokens(config) ? createVerifier(config, await keySourcesFromConfig(config.token.keys, env), logger) : undefined;
  // With a hub, make sure the user's server runs (progress page) before landing; local mode without
  // a hub ends on the service's own page of what the notebook would receive; else land directly.
  const hub = config.hub.enabled ? createHubLanding(config, { store, env, logger, metrics }) : undefined;
  const local = !hub && isLocalOnly(config) ? createLocalLanding(config, store, { demoLink: Boolean(o.demoToken) }) : undefined;
  const app = createApp({
    config,
    ...(verifier ? { verifier } : {}),
    store,
    logger,
    metrics,
    ...(hub ? { hub } : {}),
    ...(local ? { local } : {}),
    ...(o.demoToken ? { demoToken: o.demoToken } : {}),
    // Header mode (stock HEAVY.AI): the authenticator hands over sessions that HeavyDB confirms.
    ...(hub && config.heavydb.enabled ? { sessionCheck: createSessionCheck(config) } : {}),
  });
  return { app, store, logger, metrics, namespace: kube?.namespace };
}

/** A URL of a local listener, for logs and tests (0.0.0.0 is reached as 127.0.0.1). */
function localUrl(host: string, port: number, path: string): string {
  const h = host.includes(':') ? `[${host}]` : host;
  return `http://${h === '0.0.0.0' ? '127.0.0.1' : h}:${port}${path}`;
}

export async function startService(config: Config, o: ServiceOptions = {}): Promise<RunningService> {
  const { app, store, logger, metrics, namespace } = await buildApp(config, o);
  const server = createServer(app.handler);
  server.keepAliveTimeout = 65_000;
  const port = await listen(server, config.listen.port, config.listen.host);
  const url = localUrl(config.listen.host, port, config.listen.basePath);
  const internal = createServer(
    internalHandler({ ready: () => app.ready(), metrics: config.metrics.enabled ? metrics : undefined, logger }),
  );
  const internalPort = await listen(internal, config.listen.internal.port, config.listen.internal.host);
  // The webhook has its own HTTPS port and shares logs and metrics; it does no API calls.
  // It filters pods on the namespace the store resolved (one answer for both).
  const webhook = config.webhook.enabled
    ? await startWebhookServer(config, { metrics, logger, ...(namespace ? { namespace } : {}) })
    : undefined;
  logger.info({ port, basePath: config.listen.basePath, internalPort, store: store.backend, webhookPort: webhook?.port }, 'listening');

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      app.drain();
      const done = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const grace = setTimeout(() => server.closeAllConnections(), config.listen.shutdownGraceSeconds * 1000);
      await done;
      clearTimeout(grace);
      // Probes keep answering (not ready) until the requests in flight are done.
      const internalClosed = new Promise<void>((resolve) => internal.close(() => resolve()));
      internal.closeAllConnections();
      await internalClosed;
      await webhook?.close();
      await store.close();
      logger.info('stopped');
    })());
  return {
    url,
    port,
    internalUrl: localUrl(config.listen.internal.host, internalPort, '/'),
    ...(webhook ? { webhookPort: webhook.port } : {}),
    server,
    store,
    logger,
    metrics,
    close,
  };
}

/** SIGTERM/SIGINT → graceful close, then exit. */
export function exitOnSignals(service: RunningService): void {
  const stop = (signal: string) => {
    service.logger.info({ signal }, 'shutting down');
    service.close().then(
      () => process.exit(0),
      (e: unknown) => {
        service.logger.error({ err: e }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
