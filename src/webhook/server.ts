/**
 * The mutating admission webhook's HTTPS listener: `POST /mutate` takes an AdmissionReview
 * (admission.k8s.io/v1) and answers with the request's uid and, for KubeSpawner single-user pods,
 * a base64 JSON Patch (src/webhook/patch.ts). `GET /healthz` is for probes.
 *
 * The certificate and key are re-read every webhook.certReloadSeconds; a changed pair is swapped in
 * with setSecureContext (new connections use it), so cert-manager style rotation needs no restart.
 * A pair that does not load (e.g. caught half-written) is skipped and the old one kept.
 */
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { V1Pod } from '@kubernetes/client-node';
import { pino, type Logger } from 'pino';
import { Counter, Histogram, Registry } from 'prom-client';
import type { Config } from '../config/types.js';
import { configuredNamespace } from '../k8s/layout.js';
import { injectionSpec, podPatch, type PodOutcome } from './patch.js';

export const MUTATE_PATH = '/mutate';

export interface WebhookDeps {
  /** The app's shared registry (a private one when absent). */
  registry?: Registry;
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

class BadReview extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function metric<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

/** The request body, bounded; plain events rather than async iteration (this is the hot path). */
function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const tooLarge = () => new BadReview(413, `AdmissionReview larger than ${max} bytes`);
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
    throw new BadReview(400, 'malformed AdmissionReview: the body is not JSON');
  }
  const r = review as { apiVersion?: unknown; kind?: unknown; request?: Partial<AdmissionRequest> } | null;
  if (!r || typeof r !== 'object' || Array.isArray(r)) throw new BadReview(400, 'malformed AdmissionReview: not a JSON object');
  if (r.apiVersion !== 'admission.k8s.io/v1' || r.kind !== 'AdmissionReview')
    throw new BadReview(400, 'malformed AdmissionReview: expected apiVersion admission.k8s.io/v1, kind AdmissionReview');
  const req = r.request;
  if (!req || typeof req !== 'object') throw new BadReview(400, 'malformed AdmissionReview: request is missing');
  if (typeof req.uid !== 'string' || !req.uid) throw new BadReview(400, 'malformed AdmissionReview: request.uid is missing');
  return req as AdmissionRequest;
}

export async function startWebhookServer(config: Config, deps: WebhookDeps = {}): Promise<WebhookServer> {
  const wh = config.webhook;
  const log = (deps.logger ?? pino({ level: 'silent' })).child({ component: 'webhook' });
  const registry = deps.registry ?? new Registry();
  const admissions = metric(
    registry,
    'omnisci_handoff_webhook_admissions_total',
    () =>
      new Counter({
        name: 'omnisci_handoff_webhook_admissions_total',
        help: 'Admission reviews answered by the webhook, by outcome.',
        labelNames: ['outcome'],
        registers: [registry],
      }),
  );
  const latency = metric(
    registry,
    'omnisci_handoff_webhook_admission_duration_seconds',
    () =>
      new Histogram({
        name: 'omnisci_handoff_webhook_admission_duration_seconds',
        help: 'Time to answer one admission review (body read to response written).',
        buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
        registers: [registry],
      }),
  );
  const spec = injectionSpec(config);
  const namespace = deps.namespace ?? configuredNamespace(config.store.kubernetes);
  if (!wh.certFile || !wh.keyFile) throw new Error('webhook.certFile and webhook.keyFile are required');
  const certFile = wh.certFile;
  const keyFile = wh.keyFile;

  const readPair = async () => ({ cert: await readFile(certFile, 'utf8'), key: await readFile(keyFile, 'utf8') });
  let current = await readPair();

  function review(req: AdmissionRequest): { outcome: Outcome; response: Record<string, unknown> } {
    const base = { uid: req.uid, allowed: true };
    const k = req.kind;
    if (req.operation !== 'CREATE' || k?.kind !== 'Pod' || (k.group ?? '') !== '' || k.version !== 'v1')
      return { outcome: 'skipped', response: base };
    if (!req.object || typeof req.object !== 'object' || Array.isArray(req.object))
      throw new BadReview(400, 'malformed AdmissionReview: request.object is not a pod');
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
      if (req.method !== 'POST') throw new BadReview(405, 'use POST');
      if (!/^application\/json\b/i.test(req.headers['content-type'] ?? ''))
        throw new BadReview(415, 'an AdmissionReview must be sent as application/json');
      const request = parseReview(await readBody(req, wh.maxBodyBytes));
      const result = review(request);
      outcome = result.outcome;
      // A Buffer: TLS sockets write a large string markedly slower than bytes.
      const body = Buffer.from(
        JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: result.response }),
      );
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': body.length }).end(body);
    } catch (e) {
      const bad = e instanceof BadReview ? e : undefined;
      outcome = bad ? 'invalid' : 'error';
      if (!bad) log.error({ err: e }, 'admission review failed');
      else log.warn({ status: bad.status, reason: bad.message }, 'rejected a malformed admission review');
      if (!res.headersSent)
        res.writeHead(bad?.status ?? 500, { 'Content-Type': 'text/plain', Connection: 'close' }).end(`${bad?.message ?? 'internal error'}\n`);
    } finally {
      admissions.inc({ outcome });
      latency.observe(Number(process.hrtime.bigint() - started) / 1e9);
    }
  }

  const server: Server = createServer({ cert: current.cert, key: current.key }, (req, res) => {
    void handle(req, res);
  });
  server.keepAliveTimeout = 65_000;

  let lastSeen = current;
  const reload = async () => {
    let next: typeof current;
    try {
      next = await readPair();
    } catch (e) {
      log.warn({ err: (e as NodeJS.ErrnoException).code ?? String(e) }, 'cannot read the webhook certificate files; keeping the current pair');
      return;
    }
    if (next.cert === current.cert && next.key === current.key) return;
    try {
      server.setSecureContext({ cert: next.cert, key: next.key });
      current = next;
      log.info('webhook certificate reloaded');
    } catch (e) {
      // Warn once per differing content, not on every tick.
      if (next.cert !== lastSeen.cert || next.key !== lastSeen.key)
        log.warn({ err: (e as Error).message }, 'the new webhook certificate/key do not load; keeping the current pair');
    }
    lastSeen = next;
  };
  const timer = setInterval(() => void reload(), wh.certReloadSeconds * 1000);
  timer.unref();

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(wh.port, wh.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  log.info({ host: wh.host, port, namespace }, 'admission webhook listening');

  return {
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        clearInterval(timer);
        server.close((e) => (e ? reject(e) : resolve()));
        server.closeIdleConnections();
      }),
  };
}
