/**
 * A benchmark target in its own process (so the load generator does not share its event loop):
 * `trivial` is a bare express endpoint answering 303, `service` the real handoff service on the
 * local store with keys from the given JWKS file. Prints {"port":N} when listening.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { resolveConfig } from '../src/config/load.js';
import { createLogger } from '../src/log.js';
import { startService } from '../src/service.js';

const [mode, jwksFile, dataDir] = process.argv.slice(2);

if (mode === 'trivial') {
  const app = express();
  app.post('/handoff', express.urlencoded({ extended: false, limit: 33792 }), (_req, res) => {
    res.redirect(303, 'https://hub.test/user/x/lab?omnisci&reset');
  });
  const server = createServer(app).listen(0, '127.0.0.1', () => {
    process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
  });
} else {
  const config = resolveConfig({
    listen: { port: 0, internal: { port: 0 } },
    token: { issuer: 'https://immerse.bench', audience: 'omnisci-handoff', algorithms: ['ES256', 'RS256'], keys: { publicKeyFiles: [jwksFile] } },
    omnisci: { host: 'omnisci.bench' },
    redirect: { hubPublicUrl: 'https://hub.test' },
    store: { local: { dir: dataDir } },
    metrics: { enabled: true },
    log: { level: 'warn' },
  });
  const service = await startService(config, { logger: createLogger('warn') });
  process.stdout.write(`${JSON.stringify({ port: service.port })}\n`);
}

// A normal exit on SIGINT, so `node --cpu-prof` can write its profile.
process.on('SIGINT', () => process.exit(0));
