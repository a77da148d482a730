/**
 * A webhook benchmark target in its own process (the load generator must not share its event
 * loop): `trivial` is a bare HTTPS endpoint that reads the body and answers a canned response,
 * `webhook` the real admission webhook. Both use the given certificate. Prints {"port":N}.
 */
import { createServer } from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { resolveConfig } from '../src/config/load.js';
import { createMetrics } from '../src/metrics.js';
import { startWebhookServer } from '../src/webhook/server.js';

const [mode, certFile, keyFile, responseFile] = process.argv.slice(2) as [string, string, string, string?];
const announce = (port: number) => process.stdout.write(`${JSON.stringify({ port })}\n`);

if (mode === 'trivial') {
  // The canned response the webhook gives for the benchmark pod (same bytes on the wire), so the
  // comparison isolates the webhook's own work from TLS and transfer of the payload.
  const body = readFileSync(responseFile!);
  const server = createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, (req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': body.length }).end(body));
  });
  server.listen(0, '127.0.0.1', () => announce((server.address() as AddressInfo).port));
} else {
  const config = resolveConfig(
    {
      token: { issuer: 'bench', audience: 'bench', algorithms: ['HS256'], keys: { hmacSecretEnv: 'BENCH_HMAC' } },
      store: { backend: 'kubernetes', kubernetes: { namespace: 'hub' } },
      webhook: { enabled: true, host: '127.0.0.1', port: 0, certFile, keyFile },
    },
    { BENCH_HMAC: 'x'.repeat(32) },
  );
  const server = await startWebhookServer(config, { metrics: createMetrics(new Registry(), false), namespace: 'hub' });
  announce(server.port);
}

// A normal exit on SIGINT, so `node --cpu-prof` can write its profile.
process.on('SIGINT', () => process.exit(0));
