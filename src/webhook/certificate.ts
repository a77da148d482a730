/**
 * The webhook's serving certificate, re-read every webhook.certReloadSeconds: a changed pair is
 * handed to `apply` (the server's setSecureContext: new connections use it), so cert-manager style
 * rotation needs no restart. A pair that cannot be read or does not load (e.g. caught half-written)
 * is skipped and the current one kept, with one warning per differing content.
 */
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';

export interface KeyPair {
  cert: string;
  key: string;
}

export async function readKeyPair(certFile: string, keyFile: string): Promise<KeyPair> {
  return { cert: await readFile(certFile, 'utf8'), key: await readFile(keyFile, 'utf8') };
}

/** Starts watching from `current`; returns the function that stops it. */
export function watchKeyPair(
  o: { certFile: string; keyFile: string; intervalSeconds: number; current: KeyPair; apply(pair: KeyPair): void },
  log: Pick<Logger, 'info' | 'warn'>,
): () => void {
  let current = o.current;
  let lastSeen = current;
  const reload = async () => {
    let next: KeyPair;
    try {
      next = await readKeyPair(o.certFile, o.keyFile);
    } catch (e) {
      log.warn({ err: (e as NodeJS.ErrnoException).code ?? String(e) }, 'cannot read the webhook certificate files; keeping the current pair');
      return;
    }
    if (next.cert === current.cert && next.key === current.key) return;
    try {
      o.apply(next);
      current = next;
      log.info('webhook certificate reloaded');
    } catch (e) {
      if (next.cert !== lastSeen.cert || next.key !== lastSeen.key)
        log.warn({ err: (e as Error).message }, 'the new webhook certificate/key do not load; keeping the current pair');
    }
    lastSeen = next;
  };
  const timer = setInterval(() => void reload(), o.intervalSeconds * 1000);
  timer.unref();
  return () => clearInterval(timer);
}
