/**
 * The internal listener (listen.internal): `GET /healthz` (alive), `GET /readyz` (the store and, with
 * a hub, the hub answer; not draining) and `GET /metrics` (Prometheus). It is not behind the hub proxy:
 * only kubelet probes and Prometheus reach it, so an anonymous request never costs a store or hub call.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorFields } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';

export interface InternalDeps {
  /** Resolves when the service can serve; throws (a HandoffError) when it cannot. */
  ready(): Promise<void>;
  /** Undefined when metrics are off. */
  metrics: Metrics | undefined;
  logger: Pick<Logger, 'warn'>;
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' }).end(body);
}

export function internalHandler(deps: InternalDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const json = (res: ServerResponse, status: number, body: unknown) => send(res, status, 'application/json', JSON.stringify(body));
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') return json(res, 405, { error: 'method_not_allowed' });
    switch (path) {
      case '/healthz':
        return json(res, 200, { status: 'ok' });
      case '/readyz':
        deps.ready().then(
          () => json(res, 200, { status: 'ready' }),
          (e: unknown) => {
            const fields = errorFields(e);
            deps.logger.warn(fields, 'not ready');
            json(res, 503, { status: 'not ready', error: fields.code });
          },
        );
        return;
      case '/metrics':
        if (!deps.metrics) break;
        deps.metrics.registry.metrics().then(
          (text) => send(res, 200, deps.metrics!.registry.contentType, text),
          () => json(res, 500, { error: 'internal' }),
        );
        return;
    }
    json(res, 404, { error: 'not_found' });
  };
}
