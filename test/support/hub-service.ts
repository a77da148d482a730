/**
 * The real service (startService: local store, real verifier, the JupyterHub landing) on a loopback
 * port, for tests against a real hub; plus a cookie-keeping HTTP client that follows
 * redirects like a browser without JavaScript would.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolveConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { safeSlug } from '../../src/k8s/slug.js';
import { AUDIENCE, HMAC_SECRET, ISSUER, startTestService, TYP, tempDir, type LogCapture } from './core.js';
import type { RunningHub } from './jupyterhub.js';

export interface HubServiceOptions {
  /** A real hub (startHub) or the API stand-in (startHubStandin). */
  hub: Pick<RunningHub, 'publicUrl' | 'apiUrl' | 'serviceToken'>;
  /** hub.* settings (apiUrl defaults to the hub's). */
  hubConfig?: Record<string, unknown>;
  /** token.* settings over the defaults. */
  tokenConfig?: Record<string, unknown>;
  /** Base path, e.g. /services/omnisci-handoff/ when the hub proxies to the service. */
  basePath?: string;
  port?: number;
  /** The hub API token the service runs with (default: the hub's token for it). */
  apiToken?: string;
  /** store.local.dir (default: a fresh temporary directory). */
  storeDir?: string;
  /** redirect.hubPublicUrl (default: the hub's own public URL), e.g. a reverse proxy in front of the hub. */
  hubPublicUrl?: string;
  /** Further config sections, replacing the defaults' (e.g. heavydb, notebook, omnisci). */
  sections?: Record<string, unknown>;
}

export interface HubService {
  /** Public base URL of the service (through the hub proxy when basePath is the service prefix). */
  url: string;
  /** The internal listener (/readyz, /metrics). */
  internalUrl: string;
  config: Config;
  logs: LogCapture;
  close(): Promise<void>;
}

export async function startHubService(o: HubServiceOptions): Promise<HubService> {
  const basePath = o.basePath ?? '/';
  const env = { TEST_HMAC: HMAC_SECRET, JUPYTERHUB_API_TOKEN: o.apiToken ?? o.hub.serviceToken };
  const config = resolveConfig(
    {
      listen: { host: '127.0.0.1', port: o.port ?? 0, basePath, internal: { port: 0 } },
      token: { issuer: ISSUER, audience: AUDIENCE, type: TYP, algorithms: ['HS256'], keys: { hmacSecretEnv: 'TEST_HMAC' }, ...o.tokenConfig },
      omnisci: { protocol: 'https', host: 'omnisci.test', port: 443, allowedHosts: ['omnisci.test'], allowedPorts: [6274, 6278] },
      redirect: { hubPublicUrl: o.hubPublicUrl ?? o.hub.publicUrl },
      store: { local: { dir: o.storeDir ?? tempDir('oh-hubstore-') } },
      hub: { enabled: true, apiUrl: o.hub.apiUrl, spawnTimeoutSeconds: 60, requestTimeoutMs: 5000, ...o.hubConfig },
      log: { level: 'info' },
      ...o.sections,
    },
    env,
  );
  const service = await startTestService(config, { env });
  const proxied = basePath !== '/';
  return {
    url: proxied ? `${new URL(o.hub.publicUrl).origin}${basePath}` : `http://127.0.0.1:${service.port}/`,
    internalUrl: service.internalUrl,
    config,
    logs: service.logs,
    close: () => service.close(),
  };
}

export interface Hop {
  url: string;
  status: number;
}

/**
 * `send`, and once more if the server closed the reused keep-alive connection before any response
 * (the hub's proxy closes idle ones; under load the close crosses the next request), whatever the
 * method: what Chromium does (HttpNetworkTransaction::ShouldResendRequest).
 */
export async function resentOnClose<T>(send: () => Promise<T>, onResend: () => void = () => undefined): Promise<T> {
  return send().catch((e: unknown) => {
    if ((e as { cause?: { code?: string } }).cause?.code !== 'UND_ERR_SOCKET') throw e;
    onResend();
    return send();
  });
}

/**
 * A browser without JavaScript and without Fetch Metadata (Node's fetch would send Sec-Fetch-Mode: cors
 * whatever it is told): keeps cookies (by name; every test peer is on 127.0.0.1) and follows redirects.
 */
export class NoJsBrowser {
  readonly cookies = new Map<string, string>();
  readonly hops: Hop[] = [];
  /** Click "Continue as …" on a sign-in confirmation page (login mode handoff), as its user would; each one is counted. */
  autoConfirm = true;
  confirmations = 0;
  /** Pause before reloading a progress page (the page's own <noscript> refresh says 2 s; tests reload sooner). */
  reloadMs = 200;

  private header(): Record<string, string> {
    return this.cookies.size ? { cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ') } : {};
  }

  /** Requests sent again because the server closed the reused connection before answering. */
  socketRetries = 0;

  async request(url: string, init: RequestInit = {}): Promise<Response> {
    const send = () => fetch(url, { ...init, redirect: 'manual', headers: { ...this.header(), ...(init.headers as Record<string, string>) } });
    const res = await resentOnClose(send, () => this.socketRetries++);
    for (const c of res.headers.getSetCookie()) {
      const [pair = ''] = c.split(';');
      const eq = pair.indexOf('=');
      const value = pair.slice(eq + 1);
      if (/max-age=0|expires=thu, 01 jan 1970/i.test(c) || value === '') this.cookies.delete(pair.slice(0, eq));
      else this.cookies.set(pair.slice(0, eq), value);
    }
    this.hops.push({ url, status: res.status });
    return res;
  }

  /** Follows redirects; a progress page (200 with a <noscript> refresh) is reloaded until it redirects. */
  async follow(first: Response, from: string, maxReloads = 600): Promise<{ url: string; status: number; text: string }> {
    let res = first;
    let url = from;
    for (let reloads = 0; ; ) {
      const location = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && location) {
        await res.body?.cancel();
        url = new URL(location, url).toString();
        res = await this.request(url);
        continue;
      }
      const text = await res.text();
      const confirm = /<form method="post" action="([^"]+)"><input type="hidden" name="ticket" value="([^"]+)"><button type="submit" id="confirm">/.exec(text);
      if (res.status === 200 && confirm && this.autoConfirm) {
        this.confirmations++;
        url = new URL(confirm[1]!.replaceAll('&#47;', '/'), url).toString();
        res = await this.request(url, {
          method: 'POST',
          // As a browser without Fetch Metadata posts a same-origin form: naming its origin.
          headers: { 'content-type': 'application/x-www-form-urlencoded', origin: new URL(url).origin },
          body: new URLSearchParams({ ticket: confirm[2]! }).toString(),
        });
        continue;
      }
      if (res.status === 200 && text.includes('http-equiv="refresh"') && reloads++ < maxReloads) {
        await new Promise((r) => setTimeout(r, this.reloadMs));
        res = await this.request(url);
        continue;
      }
      return { url, status: res.status, text };
    }
  }

  /** POSTs the token as the issuer's form would; the response is not followed. */
  postToken(serviceUrl: string, token: string): Promise<Response> {
    return this.request(`${serviceUrl}handoff`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' },
      body: new URLSearchParams({ token }).toString(),
    });
  }

  async postHandoff(serviceUrl: string, token: string): Promise<{ url: string; status: number; text: string }> {
    return this.follow(await this.postToken(serviceUrl, token), `${serviceUrl}handoff`);
  }
}

/**
 * Where a handoff to a user's running server lands: `lab` plus the fingerprint of the session the
 * service stored (its session file in the local store), which the lab waits for (src/hub/lab-url.ts).
 */
export function runningLab(svc: Pick<HubService, 'config'>, lab: string, user: string): string {
  const file = join(svc.config.store.local.dir, 'users', safeSlug(user), svc.config.notebook.sessionFileName);
  const { fingerprint } = JSON.parse(readFileSync(file, 'utf8')) as { fingerprint: string };
  return `${lab}&omnisci-handoff=${fingerprint}`;
}
