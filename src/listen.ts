/** Starting a listener: the service's public and internal ports and the webhook's HTTPS port alike. */
import type { Server } from 'node:net';
import type { AddressInfo } from 'node:net';

/** Listens on `host:port` (0: a free port); resolves the port, rejects with the listen error (EADDRINUSE…). */
export function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
