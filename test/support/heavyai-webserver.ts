/**
 * A stand-in for the HEAVY.AI web server with Jupyter enabled (`--jupyter-url <hub>`,
 * `--jupyter-prefix /jupyter`, `"enableJupyter": true`), as far as header mode meets it:
 *
 * - `/` is "Immerse": a page with the Jupyter button, a link to
 *   `/jupyter/hub/login?newnotebook=true[&sql=<SQL>]` (what Immerse opens);
 * - `/jupyter/…` is reverse-proxied to the hub, path and Host unchanged. On `/jupyter/hub/login`
 *   only, the request header `X-OmniSci-SessionID` is set to the user's HeavyDB session, which
 *   this stand-in takes from its own cookie `heavyai_session` (the real one from its session
 *   store). Like the real one it strips `X-HeavyDB-Username` and leaves every other header alone:
 *   a browser's own `X-OmniSci-SessionID` on any other path reaches the hub as sent.
 *
 * Every proxied request is recorded (path, and the session header the hub received).
 */
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';

export const SESSION_HEADER = 'x-omnisci-sessionid';
export const SESSION_COOKIE = 'heavyai_session';
const PREFIX = '/jupyter';

export interface ProxiedRequest {
  path: string;
  /** The X-OmniSci-SessionID the hub received, if any. */
  session: string | undefined;
}

export interface HeavyAiWebServer {
  /** Origin, e.g. http://127.0.0.1:40123 (no trailing slash). */
  url: string;
  /** The hub as the browser sees it through this server: `{url}/jupyter` (redirect.hubPublicUrl). */
  jupyterUrl: string;
  /** The URL Immerse's Jupyter button opens. */
  buttonUrl(sql?: string): string;
  proxied: ProxiedRequest[];
  close(): Promise<void>;
}

function cookieValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  for (const part of (headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

/** `hubOrigin`: where the hub's proxy listens (its base_url must be /jupyter/). */
export async function startHeavyAiWebServer(hubOrigin: string): Promise<HeavyAiWebServer> {
  const hub = new URL(hubOrigin);
  const proxied: ProxiedRequest[] = [];
  const buttonPath = (sql?: string) => `${PREFIX}/hub/login?newnotebook=true${sql === undefined ? '' : `&sql=${encodeURIComponent(sql)}`}`;

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/') {
      const sql = url.searchParams.get('sql') ?? undefined;
      res.setHeader('content-type', 'text/html');
      res.end(`<!doctype html><title>Immerse</title><a id="jupyter" href="${buttonPath(sql).replaceAll('&', '&amp;')}">Jupyter</a>`);
      return;
    }
    if (url.pathname !== PREFIX && !url.pathname.startsWith(`${PREFIX}/`)) {
      res.writeHead(404).end();
      return;
    }
    const headers = { ...req.headers };
    delete headers['x-heavydb-username'];
    if (url.pathname === `${PREFIX}/hub/login`) {
      const session = cookieValue(req.headers, SESSION_COOKIE);
      if (session) headers[SESSION_HEADER] = session;
      else delete headers[SESSION_HEADER];
    }
    const sessionSent = headers[SESSION_HEADER];
    proxied.push({ path: url.pathname, session: typeof sessionSent === 'string' ? sessionSent : undefined });
    const upstream = request({ host: hub.hostname, port: hub.port, method: req.method, path: req.url, headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    // A browser gone mid-answer (or close()) ends the upstream request: unread, its keep-alive socket would stay open.
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  });
  // WebSockets (kernels) pass through as raw bytes; close() ends them.
  const tunnels = new Set<{ destroy(): void }>();
  server.on('upgrade', (req, socket, head) => {
    const up = connect(Number(hub.port), hub.hostname, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      up.write(`${lines.join('\r\n')}\r\n\r\n`);
      up.write(head);
      up.pipe(socket).pipe(up);
    });
    up.on('error', () => socket.destroy());
    socket.on('error', () => up.destroy());
    tunnels.add(up).add(socket);
    up.on('close', () => tunnels.delete(up));
    socket.on('close', () => tunnels.delete(socket));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    jupyterUrl: `${url}${PREFIX}`,
    buttonUrl: (sql) => `${url}${buttonPath(sql)}`,
    proxied,
    close: () =>
      new Promise<void>((r) => {
        for (const t of tunnels) t.destroy();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
