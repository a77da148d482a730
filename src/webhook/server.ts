/**
 * The mutating admission webhook's HTTPS listener: `POST /mutate` takes an AdmissionReview
 * (admission.k8s.io/v1) and answers with the request's uid and, for KubeSpawner single-user pods,
 * a base64 JSON Patch (src/webhook/patch.ts). `GET /healthz` is for probes.
 *
 * Its certificate is reloaded when it changes (./certificate.ts).
 */
import { createServer } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { V1Pod } from '@kubernetes/client-node';
import { pino, type Logger } from 'pino';
import { Registry } from 'prom-client';
import type { Config } from '../config/types.js';
import { HandoffError, toHandoffError } from '../errors.js';
import { configuredNamespace } from '../k8s/layout.js';
import { listen } from '../listen.js';
import { createMetrics, type Metrics } from '../metrics.js';
import { readKeyPair, watchKeyPair } from './certificate.js';
import { injectionSpec, podPatch, type PodOutcome } from './patch.js';

export const MUTATE_PATH = '/mutate';

export interface WebhookDeps {
  /** The app's metrics (private ones when absent). */
  metrics?: Pick<Metrics, 'webhookAdmissions' | 'webhookSeconds'>;
  logger?: Logger;
  /** Namespace of the user Secrets; pods elsewhere are left alone. Default: as the Kubernetes store resolves it. */
  namespace?: string;
}

export interface WebhookServer {
  port: number;
  close(): Promise<void>;
}

/** `invalid`: the review was malformed (400); `skipped`: not a pod CREATE, or another namespace. */
type Outcome = PodOutcome | 'skipped' | 'invalid' | 'error';

/** The request body, bounded; plain events rather than async iteration (this is the hot path). */
function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const tooLarge = () => new HandoffError('review_too_large', `AdmissionReview larger than ${max} bytes`);
    if (Number(req.headers['content-length']) > max) return reject(tooLarge());
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        req.removeAllListeners('data');
        req.resume();
        reject(tooLarge());
      } else chunks.push(chunk);
    });
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)));
    req.on('error', reject);
  });
}

interface AdmissionRequest {
  uid: string;
  kind?: { group?: string; version?: string; kind?: string };
  operation?: string;
  namespace?: string;
  object?: V1Pod;
}

function parseReview(body: Buffer): AdmissionRequest {
  let review: unknown;
  try {
    review = JSON.parse(body.toString('utf8'));
  } catch {
    throw new HandoffError('review_malformed', 'the body is not JSON');
  }
  const r = review as { apiVersion?: unknown; kind?: unknown; request?: Partial<AdmissionRequest> } | null;
  if (!r || typeof r !== 'object' || Array.isArray(r)) throw new HandoffError('review_malformed', 'not a JSON object');
  if (r.apiVersion !== 'admission.k8s.io/v1' || r.kind !== 'AdmissionReview')
    throw new HandoffError('review_malformed', 'expected apiVersion admission.k8s.io/v1, kind AdmissionReview');
  const req = r.request;
  if (!req || typeof req !== 'object') throw new HandoffError('review_malformed', 'request is missing');
  if (typeof req.uid !== 'string' || !req.uid) throw new HandoffError('review_malformed', 'request.uid is missing');
  return req as AdmissionRequest;
}

export async function startWebhookServer(config: Config, deps: WebhookDeps = {}): Promise<WebhookServer> {
  const wh = config.webhook;
  const log = (deps.logger ?? pino({ level: 'silent' })).child({ component: 'webhook' });
  const metrics = deps.metrics ?? createMetrics(new Registry(), false);
  const spec = injectionSpec(config);
  const namespace = deps.namespace ?? configuredNamespace(config.store.kubernetes);
  if (!wh.certFile || !wh.keyFile) throw new HandoffError('config_invalid', 'webhook.certFile and webhook.keyFile are required');
  const { certFile, keyFile } = wh;
  const pair = await readKeyPair(certFile, keyFile);

  function review(req: AdmissionRequest): { outcome: Outcome; response: Record<string, unknown> } {
    const base = { uid: req.uid, allowed: true };
    const k = req.kind;
    if (req.operation !== 'CREATE' || k?.kind !== 'Pod' || (k.group ?? '') !== '' || k.version !== 'v1')
      return { outcome: 'skipped', response: base };
    if (!req.object || typeof req.object !== 'object' || Array.isArray(req.object))
      throw new HandoffError('review_malformed', 'request.object is not a pod');
    if (namespace && req.namespace && req.namespace !== namespace) return { outcome: 'skipped', response: base };
    const { outcome, user, ops } = podPatch(req.object, spec);
    if (outcome === 'patched' || outcome === 'no_container')
      log.info(
        { outcome, user, pod: req.object.metadata?.name ?? req.object.metadata?.generateName, namespace: req.namespace, ops: ops.length },
        outcome === 'patched' ? 'injected the OmniSci session into a single-user pod' : `single-user pod has no container "${spec.containerName}"`,
      );
    if (!ops.length) return { outcome, response: base };
    return {
      outcome,
      response: { ...base, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(ops)).toString('base64') },
    };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz' && req.method === 'GET') {
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok\n');
      return;
    }
    if (path !== MUTATE_PATH) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
      return;
    }
    const started = process.hrtime.bigint();
    let outcome: Outcome = 'error';
    try {
      if (req.method !== 'POST') throw new HandoffError('method_not_allowed', 'use POST');
      if (!/^application\/json\b/i.test(req.headers['content-type'] ?? ''))
        throw new HandoffError('unsupported_media_type', 'an AdmissionReview must be sent as application/json');
      const request = parseReview(await readBody(req, wh.maxBodyBytes));
      const result = review(request);
      outcome = result.outcome;
      // A Buffer: TLS sockets write a large string markedly slower than bytes.
      const body = Buffer.from(
        JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: result.response }),
      );
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': body.length }).end(body);
    } catch (e) {
      const err = toHandoffError(e);
      outcome = err.code === 'internal' ? 'error' : 'invalid';
      if (outcome === 'error') log.error({ err: e }, 'admission review failed');
      else log.warn({ code: err.code, reason: err.detail }, 'rejected a malformed admission review');
      if (!res.headersSent)
        res.writeHead(err.status, { 'Content-Type': 'text/plain', Connection: 'close' }).end(`${err.code}: ${err.detail ?? err.message}\n`);
    } finally {
      metrics.webhookAdmissions.inc({ outcome });
      metrics.webhookSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
    }
  }

  const server = createServer(pair, (req, res) => {
    void handle(req, res);
  });
  server.keepAliveTimeout = 65_000;
  const stopWatching = watchKeyPair(
    { certFile, keyFile, intervalSeconds: wh.certReloadSeconds, current: pair, apply: (p) => server.setSecureContext(p) },
    log,
  );
  const port = await listen(server, wh.port, wh.host);
  log.info({ host: wh.host, port, namespace }, 'admission webhook listening');

  return {
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        stopWatching();
        server.close((e) => (e ? reject(e) : resolve()));
        server.closeIdleConnections();
      }),
  };
}
