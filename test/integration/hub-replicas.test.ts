/**
 * Replicas (issue #11): `serve` processes (the built CLI) on the Kubernetes store of a real
 * kube-apiserver, running as the chart's ServiceAccount, behind a per-request round-robin proxy
 * (test/support/round-robin.ts) standing in for the chart's Service. A real JupyterHub 5 knows that
 * proxy as the service's url, so both the browsers' requests (through the hub's proxy, at
 * /services/omnisci-handoff/) and the shipped authenticator's login-token exchange spread over the
 * replicas: consecutive requests never reach the same one. Nothing but the hub API token and the
 * Secrets is shared.
 *
 * Each flow — login mode `handoff` (with the confirmation page), `handoff` + identityCheck, `sso`,
 * `sso` + identityCheck — runs once in Chromium and in bulk in cookie-keeping clients without
 * JavaScript, and must land on the user's lab with the handed-over session in the user's Secret,
 * while every replica answered some of its requests and every ticket issued by one replica was used on
 * another (a progress page, a parked handoff, a hub login token, the way back from the hub's login, an
 * OAuth state). Nothing is left to the rotation's luck: the proxy steers each use of a ticket away
 * from the replica that issued it (the uses of one ticket in turn over the others), and a Chromium
 * flow's spawn is held by the test spawner until the browser shows the progress page. Then one of
 * three replicas is killed (SIGKILL) while 30 browsers poll their progress pages, and their spawns are
 * released only after the kill.
 *
 * The replicas restart between flows with the flow's config; the hub, the store and the proxy stay.
 */
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { Browser, BrowserContext } from 'playwright-core';
import { randomSessionId } from '../../src/handoff/mint.js';
import { launchChromium } from '../support/browser.js';
import { hmacKey, mint } from '../support/core.js';
import { NoJsBrowser } from '../support/hub-service.js';
import { originsOf, startKubeStore, startReplicas, type KubeStore } from '../support/hub-replicas.js';
import { freePort, SERVICE_SCOPES_CREATE, SHIPPED_AUTHENTICATOR, startHub, waitFor, type RunningHub } from '../support/jupyterhub.js';
import type { Served } from '../support/process.js';
import { startRoundRobin, type Forwarded, type RoundRobin } from '../support/round-robin.js';

jest.setTimeout(180_000);
const key = hmacKey('HS256');
const PREFIX = '/services/omnisci-handoff/';
const REPLICAS = 3;

let kube: KubeStore;
let rr: RoundRobin;
let hub: RunningHub;
let chromium: Browser;
let immerse: Server;
let immersePort: number;
let served: Served[] = [];

const svcUrl = () => `${hub.publicUrl}${PREFIX}`;
/** The lab a handoff lands on (`base` + path): a server that kept running gets the stored session's fingerprint too (src/hub/lab-url.ts). */
const labPattern = (user: string, base = hub.publicUrl) =>
  new RegExp(`^${`${base}/user/${user}/lab?omnisci&reset`.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(&omnisci-handoff=[A-Za-z0-9_-]{43})?$`);

beforeAll(async () => {
  kube = await startKubeStore({ chartRbac: true });
  rr = await startRoundRobin([], { keepBodies: true });
  immersePort = await freePort();
  hub = await startHub({
    serviceScopes: SERVICE_SCOPES_CREATE,
    // The hub reaches the service (its proxy routes, the authenticator's exchange) through the "Service".
    serviceUrl: rr.url,
    slowSeconds: 1,
    extraConfig: `
${SHIPPED_AUTHENTICATOR}c.JupyterHub.load_roles.append({'name': 'user', 'scopes': ['self', 'access:services!service=omnisci-handoff']})
`,
  });
  // Immerse stand-in for Chromium: a page whose form posts a freshly minted token for ?user with ?session.
  immerse = createServer((req, res) => {
    const q = new URL(req.url ?? '/', 'http://x').searchParams;
    void mint(key, { subject: q.get('user') ?? 'nobody', omnisci: { session: q.get('session') ?? randomSessionId() } }).then((token) => {
      res.setHeader('content-type', 'text/html');
      res.end(`<!doctype html><title>Immerse</title><form method="post" action="${svcUrl()}handoff">
<input type="hidden" name="token" value="${token}"><button id="open">Open in notebook</button></form>`);
    });
  });
  await new Promise<void>((r) => immerse.listen(immersePort, 'localhost', () => r()));
  chromium = await launchChromium();
}, 300_000);

afterAll(async () => {
  await chromium?.close();
  immerse?.close();
  for (const s of served) await s.stop();
  await hub?.stop();
  await rr?.close();
  await kube?.stop();
}, 60_000);

/** Replaces the replicas by `REPLICAS` (or `n`) new ones with this hub config; the proxy's counts start over. */
async function replicas(hubConfig: Record<string, unknown>, n = REPLICAS): Promise<void> {
  for (const s of served) await s.stop();
  served = await startReplicas({
    hub,
    kube,
    replicas: n,
    basePath: PREFIX,
    hubConfig,
    tokenConfig: { allowedOrigins: [`http://localhost:${immersePort}`] },
  });
  rr.reset(originsOf(served));
  rr.steer = steerTicketsAway;
}

const stored = async (user: string) => (await kube.store.get(user))?.session;

/** What the proxy saw from `from` on. */
const since = (from: number): Forwarded[] => rr.log.filter((e) => e.seq >= from);

/** Fully URL-decoded, so that a ticket nested in a `next` parameter is found too. */
function decoded(s: string): string {
  for (let prev = ''; prev !== s; ) {
    prev = s;
    try {
      s = decodeURIComponent(s);
    } catch {
      return s;
    }
  }
  return s;
}

/** The ticket a request uses, if any: a progress page (and its events, go, retry), a parked handoff, a hub login token, the way back from the hub's login, an OAuth state. */
function ticketOf(e: Pick<Forwarded, 'url' | 'body'>): { kind: string; ticket: string } | undefined {
  const u = new URL(e.url, 'http://x');
  const one = (kind: string, ticket: string | null | undefined) => (ticket ? { kind, ticket } : undefined);
  if (u.pathname.endsWith('/login-token/exchange') && e.body) return one('login', (JSON.parse(e.body) as { token?: string }).token);
  if (u.pathname.endsWith('/oauth_callback')) return one('oauth-state', u.searchParams.get('state'));
  if (u.pathname.endsWith('/login/continue')) return one('login-return', u.searchParams.get('ticket'));
  if (u.pathname.endsWith('/confirm') && e.body) return one('parked', new URLSearchParams(e.body).get('ticket'));
  const progress = /\/progress\/([^/]+)(?:\/(?:events|go|retry))?$/.exec(u.pathname);
  return one('progress', progress?.[1]);
}

/** The replica that issued `ticket`: the first answer before `seq` that carried it (in a redirect or a page). */
function issuerOf(log: Forwarded[], seq: number, ticket: string): number | undefined {
  const carrier = log.find((x) => x.seq < seq && x.upstream >= 0 && ((x.location !== undefined && decoded(x.location).includes(ticket)) || x.responseBody?.includes(ticket)));
  return carrier?.upstream;
}

/**
 * The proxy's steering: the k-th use of a ticket goes to the (k mod (n-1))+1-th replica after its
 * issuer, so that no use is answered by the issuer and the uses of one ticket spread over the others.
 */
function steerTicketsAway(e: Forwarded): number | undefined {
  const t = ticketOf(e);
  const issuer = t && issuerOf(rr.log, e.seq, t.ticket);
  if (!t || issuer === undefined) return undefined;
  const uses = rr.log.filter((x) => x.seq < e.seq && ticketOf(x)?.ticket === t.ticket).length;
  return issuer + 1 + (uses % (rr.upstreams.length - 1));
}

/** Tickets used in `log` with the replica that issued each and the one that took it. */
function ticketHops(log: Forwarded[]): { kind: string; issuedBy: number; usedBy: number }[] {
  const out: { kind: string; issuedBy: number; usedBy: number }[] = [];
  for (const e of log) {
    const t = ticketOf(e);
    const issuer = t && e.upstream >= 0 ? issuerOf(log, e.seq, t.ticket) : undefined;
    if (t && issuer !== undefined) out.push({ kind: t.kind, issuedBy: issuer, usedBy: e.upstream });
  }
  return out;
}

/** Every replica answered some of `log`'s requests. */
function expectAllReplicasAnswered(log: Forwarded[]): void {
  const by = new Set(log.filter((e) => e.upstream >= 0).map((e) => e.upstream));
  expect([...by].sort()).toEqual(served.map((_, i) => i));
}

/** Tickets of each kind were used, each on another replica than the one that issued it (and it worked: the flows landed). */
function expectCrossReplicaTickets(log: Forwarded[], kinds: string[]): void {
  const hops = ticketHops(log);
  for (const kind of kinds) {
    const of = hops.filter((h) => h.kind === kind);
    expect({ kind, used: of.length > 0, onTheIssuer: of.filter((h) => h.issuedBy === h.usedBy) }).toEqual({ kind, used: true, onTheIssuer: [] });
  }
}

/**
 * Chromium: Immerse's form → (confirmation) → progress page (SSE) → (hub login / authorize) → the lab.
 * `held`: the user's spawn (a `held-*` user) is released once the browser shows the progress page.
 */
async function chromeHandoff(context: BrowserContext, user: string, session: string, o: { confirm: boolean; held: boolean }): Promise<string[]> {
  const page = await context.newPage();
  const seen: string[] = [];
  page.on('framenavigated', (f) => {
    if (f === page.mainFrame()) seen.push(f.url());
  });
  await page.goto(`http://localhost:${immersePort}/?user=${user}&session=${session}`);
  await page.click('#open');
  if (o.confirm) {
    await page.waitForSelector('#confirm');
    expect(await page.textContent('#confirm')).toBe(`Continue as ${user}`);
    await page.click('#confirm');
  }
  if (o.held) {
    await page.waitForURL((u) => u.pathname.startsWith(`${PREFIX}progress/`));
    await page.waitForSelector('#bar');
    hub.releaseSpawn(user);
  }
  await page.waitForURL((u) => u.pathname === `/user/${user}/lab`, { timeout: 90_000 });
  expect(page.url()).toMatch(labPattern(user));
  expect(await page.textContent('#path')).toMatch(labPattern(user, ''));
  await page.close();
  return seen;
}

/** `n` handoffs for distinct users at once, each in its own cookie-keeping client; all must land. */
async function bulk(users: string[], browsers = users.map(() => new NoJsBrowser())): Promise<void> {
  const sessions = users.map(() => randomSessionId());
  const ends = await Promise.all(users.map(async (u, i) => browsers[i]!.postHandoff(svcUrl(), await mint(key, { subject: u, omnisci: { session: sessions[i]! } }))));
  expect(ends.map((e) => e.url)).toEqual(users.map((u) => expect.stringMatching(labPattern(u))));
  expect(browsers.flatMap((b) => b.hops.filter((h) => h.status >= 500))).toEqual([]);
  for (let i = 0; i < users.length; i++) expect(await stored(users[i]!)).toBe(sessions[i]);
}

describe('login mode handoff: confirmation page, hub login token', () => {
  beforeAll(() => replicas({ loginMode: 'handoff' }), 60_000);

  test('Chromium: confirmation, progress page and hub login land on the lab; every replica answered, each ticket crossed replicas', async () => {
    const from = rr.received();
    const context = await chromium.newContext();
    const session = randomSessionId();
    const seen = await chromeHandoff(context, 'held-rr-chrome', session, { confirm: true, held: true });
    await context.close();
    expect(await stored('held-rr-chrome')).toBe(session);
    const log = since(from);
    expectAllReplicasAnswered(log);
    expectCrossReplicaTickets(log, ['parked', 'progress', 'login', 'login-return']);
    // The hub's authenticator exchanged the login token through the "Service".
    expect(log.some((e) => e.url.endsWith('/login-token/exchange') && e.status === 200)).toBe(true);
    expect(seen.some((u) => u.includes('/progress/'))).toBe(true);
    // No URL of the hub or the service carried the session (the Immerse stand-in's own URL does).
    expect(seen.filter((u) => u.startsWith(hub.publicUrl) && u.includes(session))).toEqual([]);
  });

  test('in bulk (8 users at once, no JavaScript): every browser lands with its session', async () => {
    const from = rr.received();
    const users = Array.from({ length: 8 }, (_, i) => `slow-rr-h${i}`);
    const browsers = users.map(() => new NoJsBrowser());
    await bulk(users, browsers);
    expect(browsers.every((b) => b.confirmations === 1)).toBe(true);
    const log = since(from);
    expectAllReplicasAnswered(log);
    expectCrossReplicaTickets(log, ['parked', 'progress', 'login', 'login-return']);
    expect(rr.failed).toBe(0);
  });

  test('single use holds across replicas: every replica refuses a used hub login token, parked handoff and handoff token', async () => {
    const b = new NoJsBrowser();
    const from = rr.received();
    const token = await mint(key, { subject: 'slow-rr-once' });
    expect((await b.postHandoff(svcUrl(), token)).url).toMatch(labPattern('slow-rr-once'));
    const log = since(from);
    const exchanged = log.find((e) => e.url.endsWith('/login-token/exchange') && e.status === 200)!;
    const confirmed = log.find((e) => e.url.endsWith('/confirm') && e.status === 303)!;
    // The replay steered to each replica in turn.
    const upstreamsOf = async (send: () => Promise<Response>, expected: [number, string]) => {
      const at = rr.received();
      try {
        for (let i = 0; i < REPLICAS; i++) {
          rr.steer = () => i;
          const r = await send();
          expect([r.status, ((await r.json()) as { error: string }).error]).toEqual(expected);
        }
      } finally {
        rr.steer = steerTicketsAway;
      }
      return since(at).map((e) => e.upstream);
    };
    // The hub's authenticator presenting the login token again (as a replayed /hub/login would make it).
    const exchange = () =>
      fetch(`${rr.url}${PREFIX}login-token/exchange`, {
        method: 'POST',
        headers: { authorization: `token ${hub.serviceToken}`, 'content-type': 'application/json', accept: 'application/json' },
        body: exchanged.body!,
      });
    expect(await upstreamsOf(exchange, [404, 'login_token_invalid'])).toEqual([0, 1, 2]);
    // The same browser posting its confirmation again (as its first one: a browser without Fetch Metadata naming its origin).
    const confirm = () =>
      b.request(`${svcUrl()}confirm`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: new URL(svcUrl()).origin, accept: 'application/json' },
        body: confirmed.body!,
      });
    expect(await upstreamsOf(confirm, [400, 'identity_state_invalid'])).toEqual([0, 1, 2]);
    // The handoff token again.
    const handoff = () => b.request(`${svcUrl()}handoff`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }, body: new URLSearchParams({ token }).toString() });
    expect(await upstreamsOf(handoff, [409, 'token_replayed'])).toEqual([0, 1, 2]);
  });
});

describe('one replica killed while 30 browsers poll their progress pages', () => {
  beforeAll(() => replicas({ loginMode: 'handoff' }), 60_000);

  test("30 handoffs for 15 users, one of 3 replicas SIGKILLed: only requests in flight on it fail, each such browser lands on its one retry, no session lost, nobody on another user's lab", async () => {
    const users = Array.from({ length: 15 }, (_, i) => `held-kill${i}`);
    const now = Math.floor(Date.now() / 1000);
    interface Attempt { user: string; iat: number; jti: string; session: string; token: string }
    const attempt = async (user: string, iat: number): Promise<Attempt> => {
      const a = { user, iat, jti: randomUUID(), session: randomSessionId() };
      return { ...a, token: await mint(key, { subject: user, iat, jti: a.jti, lifetimeSeconds: 300, omnisci: { session: a.session } }) };
    };
    // Two handoffs per user with distinct iat (the newer must win wherever it lands).
    const first = await Promise.all(users.flatMap((u) => [attempt(u, now - 20), attempt(u, now - 19)]));
    const from = rr.received();
    const victim = 1;
    const run = async (a: Attempt, b = new NoJsBrowser()) => {
      const end = await b.postHandoff(svcUrl(), a.token).catch((e: unknown) => ({ url: '', status: -1, text: String(e) }));
      return { a, b, end };
    };
    const burst = Promise.all(first.map((a) => run(a)));

    // The spawns are held: every browser gets to its progress page and reloads it (each reload waits
    // up to 1 s on the replica for the spawn to settle) until the spawns are released.
    const progressPages = () => new Set(since(from).filter((e) => e.status === 200 && /\/progress\/[^/]+$/.test(e.url)).map((e) => e.url)).size;
    await waitFor(async () => (progressPages() === first.length ? true : undefined));
    // Killed while one of its requests is well inside that wait: that request cannot have been answered.
    const waiting = () => since(from).filter((e) => e.sentTo === victim && e.end === undefined && e.status === 0);
    await waitFor(async () => (waiting().some((e) => performance.now() - e.start > 100 && performance.now() - e.start < 700) ? true : undefined), 1200);
    expect(rr.failed).toBe(0);
    const died = new Promise((r) => served[victim]!.child.once('exit', r));
    served[victim]!.child.kill('SIGKILL');
    await died;
    const killedAt = rr.received();
    // The polls go on; those steered to the dead replica are refused and passed on (until it leaves the Endpoints).
    await waitFor(async () => (rr.refused[victim]! > 0 ? true : undefined));
    for (const u of users) hub.releaseSpawn(u);
    const results = await burst;
    const log = since(from);
    // What the kill cut: the requests it left unanswered (the proxy's 502 for them) or half-answered (a
    // response that never ended; a redirect's head is enough for a browser). Every later request to it
    // was refused before reaching it and passed on to a live replica (each tried once).
    const cut = log.filter((e) => e.sentTo === victim && (e.status === 502 || (e.end === undefined && !(e.status >= 300 && e.status < 400))));
    expect(log.some((e) => e.upstream === victim && e.seq < killedAt)).toBe(true);
    expect(log.filter((e) => e.seq > killedAt && e.upstream === victim)).toEqual([]);
    rr.withdraw(victim);

    const otherLab = (r: (typeof results)[number]) =>
      r.b.hops.filter((h) => /\/user\/[^/]+\/lab/.test(h.url) && !h.url.startsWith(`${hub.publicUrl}/user/${r.a.user}/`));
    const failed: typeof results = [];
    for (const r of results) {
      // Nobody ever lands on (or is sent to) another user's lab.
      expect(otherLab(r)).toEqual([]);
      const saw5xx = r.end.status < 0 || r.b.hops.some((h) => h.status >= 500);
      if (labPattern(r.a.user).test(r.end.url)) continue;
      // A browser that got no 5xx on the way landed; one that did ended on an error page.
      expect({ user: r.a.user, saw5xx, end: r.end.url, status: r.end.status }).toMatchObject({ saw5xx: true });
      failed.push(r);
    }
    console.log(
      `kill: ${cut.length} requests cut on the victim, ${failed.length}/${results.length} browsers failed and retried once; ` +
        `requests per replica ${JSON.stringify(rr.counts)}, refused ${JSON.stringify(rr.refused)}, proxy 502s ${rr.failed}, ` +
        `connections resent ${results.reduce((n, r) => n + r.b.socketRetries, 0)}`,
    );
    // The kill cost exactly what it cut, one browser per request (a browser has one request out at a
    // time; the hub's exchange is its browser's): at least the request it was sure to cut.
    expect(cut.length).toBeGreaterThanOrEqual(1);
    expect(failed.length).toBe(cut.length);
    expect(rr.failed).toBe(cut.filter((e) => e.status === 502).length);

    // A failed browser opens the notebook again from Immerse, once: a fresh token, the same browser; it lands.
    // Distinct iat per user (the newer must win), all newer than the burst's.
    const retryAt = Math.floor(Date.now() / 1000);
    const nth = (r: (typeof failed)[number]) => failed.filter((f) => f.a.user === r.a.user).indexOf(r);
    const retryFrom = rr.received();
    const retries = await Promise.all(failed.map(async (r) => run(await attempt(r.a.user, retryAt - 1 + nth(r)), r.b)));
    for (const r of retries) {
      const hops = r.b.hops.slice(r.b.hops.findLastIndex((h) => h.url.endsWith('/handoff')));
      const text = labPattern(r.a.user).test(r.end.url) ? '' : r.end.text.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').slice(0, 600);
      if (!labPattern(r.a.user).test(r.end.url)) {
        const proxied = since(retryFrom).filter((e) => e.status >= 500).map(({ seq, upstream, url, status, error }) => ({ seq, upstream, url, status, error }));
        const replicaExits = served.map((s) => s.child.exitCode ?? s.child.signalCode);
        throw new Error(`retry of ${r.a.user} did not land: ${JSON.stringify({ end: r.end.url, status: r.end.status, text, hops, proxied, replicaExits })}`);
      }
      expect(otherLab(r)).toEqual([]);
    }

    // Every user's Secret holds the newest handoff of that user (every newest one landed), and every
    // handoff that landed is recorded (accepted, not merely reserved): none was lost.
    const landed = [...results, ...retries].filter((r) => labPattern(r.a.user).test(r.end.url)).map((r) => r.a);
    const all = [...first, ...retries.map((r) => r.a)];
    for (const u of users) {
      const newest = all.filter((a) => a.user === u).reduce((m, a) => (a.iat > m.iat ? a : m));
      expect(landed).toContainEqual(newest);
      const record = await kube.store.get(u);
      expect({ user: u, session: record?.session, iat: record?.iat }).toEqual({ user: u, session: newest.session, iat: newest.iat });
      for (const a of landed.filter((x) => x.user === u)) expect(record?.jtis.find((j) => j.jti === a.jti && !j.reserved)).toBeDefined();
    }
  });
});

describe('login mode handoff + identityCheck: OAuth state and login tokens across replicas', () => {
  let loggedIn: BrowserContext;
  const bulkBrowsers = Array.from({ length: 4 }, () => new NoJsBrowser());
  beforeAll(() => replicas({ loginMode: 'handoff', identityCheck: true }), 60_000);
  afterAll(() => loggedIn?.close());

  test('Chromium: confirmation, hub login on the way to authorize, callback on another replica, lab', async () => {
    const from = rr.received();
    loggedIn = await chromium.newContext();
    const session = randomSessionId();
    await chromeHandoff(loggedIn, 'held-rr-ic', session, { confirm: true, held: true });
    expect(await stored('held-rr-ic')).toBe(session);
    const log = since(from);
    expectAllReplicasAnswered(log);
    expectCrossReplicaTickets(log, ['oauth-state', 'parked', 'login', 'login-return', 'progress']);
  });

  test('in bulk (4 users at once, no JavaScript): every browser lands', async () => {
    const from = rr.received();
    await bulk(['slow-rr-ic0', 'slow-rr-ic1', 'slow-rr-ic2', 'slow-rr-ic3'], bulkBrowsers);
    const log = since(from);
    expectAllReplicasAnswered(log);
    expectCrossReplicaTickets(log, ['oauth-state', 'parked', 'login', 'login-return']);
  });

  describe('login mode sso', () => {
    beforeAll(() => replicas({ loginMode: 'sso' }), 60_000);

    test('Chromium: progress page on the replicas, lab', async () => {
      const from = rr.received();
      const context = await chromium.newContext();
      const session = randomSessionId();
      const seen = await chromeHandoff(context, 'held-rr-sso', session, { confirm: false, held: true });
      await context.close();
      expect(await stored('held-rr-sso')).toBe(session);
      expect(seen.some((u) => u.includes('/progress/'))).toBe(true);
      const log = since(from);
      // handoff, progress page, its events and its final hop: more requests than replicas.
      expectAllReplicasAnswered(log);
      expectCrossReplicaTickets(log, ['progress']);
    });

    test('in bulk (8 users at once, no JavaScript): every browser lands', async () => {
      const from = rr.received();
      await bulk(Array.from({ length: 8 }, (_, i) => `slow-rr-s${i}`));
      expectAllReplicasAnswered(since(from));
      expectCrossReplicaTickets(since(from), ['progress']);
    });
  });

  describe('login mode sso + identityCheck (browsers logged in to the hub by the flows above)', () => {
    beforeAll(async () => {
      await replicas({ loginMode: 'sso', identityCheck: true });
      // Browsers logged in to the hub (as by the identity provider) that the service does not know yet:
      // without its identity cookie, the hub is asked.
      await loggedIn.clearCookies({ name: 'ohu' });
      for (const b of bulkBrowsers) b.cookies.delete('ohu');
    }, 60_000);

    test('Chromium logged in as the handed-over user lands (authorize, callback on another replica); as another user it is refused', async () => {
      const from = rr.received();
      const session = randomSessionId();
      // Her server runs (the flow above started it): straight on to the lab.
      await chromeHandoff(loggedIn, 'held-rr-ic', session, { confirm: false, held: false });
      expect(await stored('held-rr-ic')).toBe(session);
      expectCrossReplicaTickets(since(from), ['oauth-state']);

      const page = await loggedIn.newPage();
      await page.goto(`http://localhost:${immersePort}/?user=slow-rr-other`);
      await page.click('#open');
      await page.waitForURL((u) => u.pathname.endsWith('/oauth_callback'));
      expect(await page.textContent('body')).toContain('You are logged in to JupyterHub as held-rr-ic, but Immerse handed over slow-rr-other.');
      await page.close();
      expect((await kube.store.get('slow-rr-other'))?.session ?? '').toBe('');
      expectAllReplicasAnswered(since(from));
    });

    test('in bulk (the 4 logged-in clients at once): every browser lands', async () => {
      const from = rr.received();
      await bulk(['slow-rr-ic0', 'slow-rr-ic1', 'slow-rr-ic2', 'slow-rr-ic3'], bulkBrowsers);
      const log = since(from);
      expectAllReplicasAnswered(log);
      expectCrossReplicaTickets(log, ['oauth-state']);
    });
  });
});
