/**
 * The demo's stand-in for Immerse's "Open in notebook": on every visit of its link it logs in to
 * HeavyDB (a fresh session, as an Immerse login makes one), signs a handoff token carrying that
 * session and the query, and answers a page whose form posts the token to omnisci-handoff.
 *
 * - The link holds a random key (128 bits): a visit hands a session over to the demo's hub user —
 *   a lab and a terminal as the account running the demo — so other local accounts, which can reach
 *   the port, must not be able to guess it. Any other path answers 404.
 * - The page is served with `Referrer-Policy: strict-origin`: the browser's POST carries
 *   `Origin: http://127.0.0.1:<port>`, the origin the demo lists in the service's
 *   `token.allowedOrigins` as an admin lists Immerse's (`no-referrer` would make it `Origin: null`,
 *   which the service refuses as cross-site), and no Referer ever carries the key.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { heavyDbConnect, type HeavyDbLogin } from './heavydb-login.ts';

export interface ImmerseOptions {
  heavydb: HeavyDbLogin;
  /** The service's POST {base}handoff. */
  handoffUrl: string;
  /** The hub user the handoff is for. */
  user: string;
  query: string;
  /** Signs a handoff token for `user` with this session and query. */
  mint(session: string, query: string): Promise<string>;
}

export interface Immerse {
  server: Server;
  /** What the browser opens: http://127.0.0.1:<port>/<key>/ */
  link: string;
  /** http://127.0.0.1:<port>: the origin its form posts from. */
  origin: string;
}

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(o: ImmerseOptions, token: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Immerse (demo stand-in)</title></head>
<body style="font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto">
<h1>Opening your notebook…</h1>
<p>This page plays Immerse: it logged in to HeavyDB at <code>${escape(o.heavydb.url)}</code> as <b>${escape(o.heavydb.user)}</b>,
signed a handoff token with that session and the query <code>${escape(o.query)}</code> for the hub user
<b>${escape(o.user)}</b>, and posts it to omnisci-handoff.</p>
<form id="handoff" method="post" action="${escape(o.handoffUrl)}"><input type="hidden" name="token" value="${escape(token)}">
<noscript><button type="submit">Continue</button></noscript></form>
<script>document.getElementById('handoff').submit();</script></body></html>`;
}

function failure(o: ImmerseOptions, message: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Immerse (demo stand-in)</title></head>
<body style="font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto">
<h1>Could not log in to HeavyDB</h1><p>${escape(message)}</p>
<p>The demo logs in to <code>${escape(o.heavydb.url)}</code> as <b>${escape(o.heavydb.user)}</b> (HEAVYDB_USER, HEAVYDB_PASSWORD, HEAVYDB_DATABASE).</p></body></html>`;
}

export async function startImmerse(o: ImmerseOptions): Promise<Immerse> {
  const key = randomBytes(16).toString('base64url');
  const path = Buffer.from(`/${key}/`);
  const isLink = (url: string | undefined) => {
    const p = Buffer.from(new URL(url ?? '/', 'http://x').pathname);
    return p.length === path.length && timingSafeEqual(p, path);
  };
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || !isLink(req.url)) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found\n');
      return;
    }
    const headers = { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'referrer-policy': 'strict-origin', 'x-frame-options': 'DENY' };
    heavyDbConnect(o.heavydb)
      .then(async (session) => res.writeHead(200, headers).end(page(o, await o.mint(session, o.query))))
      .catch((e: unknown) => res.writeHead(502, headers).end(failure(o, (e as Error).message)));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { server, origin, link: `${origin}/${key}/` };
}
